"""Host: a trained run restored from its workdir and posed per frame: what evaluation and export read.

Kept apart from both so that evaluation can draw the export's pictures (evaluate imports export)
while export restores runs itself: imports flow train -> trained -> export -> evaluate.
"""

from typing import NamedTuple

import ml_collections
import numpy as np

from ngd_jax import checkpoint as checkpoint_lib
from ngd_jax import pipeline
from ngd_jax import texturing
from ngd_jax import train


class Trained(NamedTuple):
  """A restored run: inputs, geometry and (if trained) appearance."""

  run: train.Run
  geometry: train.GeometryResult
  appearance: texturing.AppearanceState | None
  posed: np.ndarray  # float32 [T, V, 3], final garment per training frame.
  faces: np.ndarray  # int32 [F, 3]
  step: int  # The restored checkpoint's step: where evaluation's TensorBoard entries go.


def load_trained(config: ml_collections.ConfigDict, workdir: str) -> Trained:
  """Host: restores checkpoint eval.checkpoint_step (-1: latest) and poses the garment per frame."""
  run = train.Run(config, pipeline.load_inputs(config))
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.train.keep_checkpoints)
  step = None if config.eval.checkpoint_step < 0 else config.eval.checkpoint_step
  try:
    restored = train.restore_run(run, checkpointer, step)
    # restore_run moves unreadable checkpoints aside, so the latest left is the one restored.
    restored_step = step if step is not None else checkpointer.latest_step()
  finally:
    checkpointer.close()
  if restored is None:
    raise checkpoint_lib.CheckpointError(f'{checkpointer.directory}: no checkpoint. Fix: train first (--mode=train).')
  geometry = train.GeometryResult(restored.constants, restored.geometry, run.mesh_of_state(restored.geometry),
                                  restored.meta)
  posed, faces = texturing.posed_frames(run, geometry)
  return Trained(run, geometry, restored.appearance, posed, faces, int(restored_step))
