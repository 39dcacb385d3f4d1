"""Where a geometry step's data lives: the 1-D device mesh 'frames' its frames are spread over, which
frames a step takes, and the explicit placement of its inputs (replicated state, split batch,
resident or streamed frames): what the loop does each step (tests/test_train_step.py runs it under
jax.transfer_guard('disallow'))."""

from typing import Any

import jax
import numpy as np

from ngd_jax import loop
from ngd_jax import run as run_lib


def device_mesh(devices: int) -> jax.sharding.Mesh:
  """The 1-D mesh 'frames' over the first `devices` local devices, which share a step's frames."""
  return jax.make_mesh((devices,), ('frames',), (jax.sharding.AxisType.Auto,), devices=jax.local_devices()[:devices])


def batch_specs() -> run_lib.StepBatch:
  """How a StepBatch is laid out over the mesh: its frames split, the schedule values replicated."""
  replicated, split = jax.sharding.PartitionSpec(), jax.sharding.PartitionSpec('frames')
  return run_lib.StepBatch(split, split, split, replicated, replicated, replicated, replicated)


def frames_spec(streamed: bool) -> jax.sharding.PartitionSpec:
  """How the TrainingFrames a step receives are laid out: all of them on every device, or the
  step's own split like its batch."""
  return jax.sharding.PartitionSpec('frames') if streamed else jax.sharding.PartitionSpec()


def place(tree: Any, devices: int, specs: Any = jax.sharding.PartitionSpec()) -> Any:
  """Host: puts `tree` on the step's devices explicitly (default: a copy on each)."""
  mesh = device_mesh(devices)
  return jax.device_put(tree, jax.tree.map(lambda spec: jax.sharding.NamedSharding(mesh, spec), specs))


def step_indices(run: run_lib.Run, step: int) -> np.ndarray:
  """Host: the bank indices of geometry step `step`'s frames, int [B]: its slice of its epoch's shuffled order."""
  epoch, position = run.epoch_of(step), step % run.steps_per_epoch
  size = run.config.train.frames_per_step
  return loop.epoch_order(run.config.seed, epoch, run.bank.num_frames)[position * size: (position + 1) * size]


def step_batch(run: run_lib.Run, step: int, blend: float, pose_codes: np.ndarray, slots: np.ndarray | None,
               devices: int) -> run_lib.StepBatch:
  """Host: geometry step `step`'s batch (Run.batch of its frames, a few bytes) put explicitly on its
  devices, its frames split over them."""
  return place(run.batch(step_indices(run, step), step, blend, pose_codes, slots), devices, batch_specs())


def step_frames_on_device(run: run_lib.Run, ts: np.ndarray, devices: int,
                          streamed: bool) -> tuple[run_lib.TrainingFrames, np.ndarray | None]:
  """Host: the frames a step over bank frames `ts` receives, placed on its devices, and the slots
  its batch indexes them by: all frames (slots None: the bank indices) while they fit on the
  device, else the step's own frames split over the devices like its batch."""
  if not streamed:
    return place(run.training_frames(), devices), None
  slots = np.tile(np.arange(len(ts) // devices), devices)
  return place(run.training_frames(ts), devices, frames_spec(True)), slots
