"""placement.py: a step's frames from its epoch's order, and how its inputs are laid out over 2 of the
simulated devices of tests/conftest.py."""

import types

import jax
import ml_collections
import numpy as np

from ngd_jax import loop
from ngd_jax import placement
from ngd_jax import run as run_lib


def fake_run(num_frames: int, frames_per_step: int) -> types.SimpleNamespace:
  """What placement reads of a Run: the schedule and the training frames (here a frame's value is its index)."""
  frames = {'target': np.arange(num_frames, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)}
  steps = num_frames // frames_per_step
  return types.SimpleNamespace(
      config=ml_collections.ConfigDict({'seed': 3, 'train': {'frames_per_step': frames_per_step}}),
      bank=types.SimpleNamespace(num_frames=num_frames), steps_per_epoch=steps, epoch_of=lambda step: step // steps,
      training_frames=lambda ts=None: frames if ts is None else jax.tree.map(lambda values: values[ts], frames))


def test_an_epochs_steps_take_its_order_in_slices():
  run = fake_run(6, 2)
  for epoch in (0, 1):
    steps = [placement.step_indices(run, 3 * epoch + i) for i in range(3)]
    np.testing.assert_array_equal(np.concatenate(steps), loop.epoch_order(3, epoch, 6))


def test_batch_is_split_and_schedule_values_replicated():
  batch = run_lib.StepBatch(t=np.arange(4), slot=np.arange(4), pose_code=np.zeros((4, 2), np.float32),
                            blend_weight=np.float32(1), vertex_noise_std=np.float32(0), seed=np.int32(0),
                            step=np.int32(7))
  batch = placement.place(batch, 2, placement.batch_specs())
  assert [shard.data.shape for shard in batch.t.addressable_shards] == [(2,), (2,)]
  np.testing.assert_array_equal(batch.t.addressable_shards[1].data, [2, 3])
  assert [shard.data.shape for shard in batch.step.addressable_shards] == [(), ()]


def test_streamed_frames_are_the_steps_own_split_like_its_batch():
  run = fake_run(8, 4)
  ts = np.array([6, 1, 4, 3])
  frames, slots = placement.step_frames_on_device(run, ts, 2, streamed=True)
  np.testing.assert_array_equal(slots, [0, 1, 0, 1])  # Frame i of the step is row slots[i] of its device's part.
  shards = [np.asarray(shard.data)[:, 0] for shard in frames['target'].addressable_shards]
  np.testing.assert_array_equal(shards, [[6, 1], [4, 3]])
  resident, slots = placement.step_frames_on_device(run, ts, 2, streamed=False)
  assert slots is None
  for shard in resident['target'].addressable_shards:
    np.testing.assert_array_equal(np.asarray(shard.data)[:, 0], np.arange(8))
