"""Host: a run restored from its workdir (what training resumes from, and --mode=eval and export read),
and a trained run posed per frame (what evaluation and export measure and write).

Imports flow run -> appearance_phase -> restore -> views -> evaluate / export (WORKSPACE.md, "Layers").
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ngd_jax import appearance_phase
from ngd_jax import checkpoint as checkpoint_lib
from ngd_jax import pipeline
from ngd_jax import run as run_lib
from ngd_jax import workdir as workdir_lib


class Restored(NamedTuple):
  """The latest checkpoint of a workdir, split by phase (appearance is None before that phase)."""

  constants: run_lib.Constants
  geometry: run_lib.GeometryState
  appearance: appearance_phase.AppearanceState | None
  meta: dict[str, Any]


def restore_run(run: run_lib.Run, checkpointer: checkpoint_lib.Checkpointer,
                step: int | None = None) -> Restored | None:
  """Host: restores checkpoint `step` (default latest) of the workdir, or None if there is none.

  The meta item says which phase wrote it, hence which items the state holds. The caller has checked
  the workdir against the run (workdir.check, once per command).
  """

  def template_of(meta: dict[str, Any]) -> dict[str, Any]:
    constants = run.fit_constants()
    state, _ = run.init_state(constants, jax.random.PRNGKey(0))
    if meta.get('blend_target', False):  # Saved while J^D blended after a remesh.
      state = state._replace(blend_target=jnp.zeros((run.bank.num_frames,) + state.params['static'].shape))
    template = {'constants': constants, 'geometry': state}
    has_appearance = meta['phase'] in ('appearance', 'done') and meta.get('appearance_started', False)
    if has_appearance:
      template['appearance'] = appearance_phase.state_template(run.config, run.bank.pose)
    return template

  restored = checkpointer.restore_latest(template_of, step)  # Skips unreadable checkpoints when step is None.
  if restored is None:
    return None
  return Restored(restored.state['constants'], restored.state['geometry'],
                  restored.state.get('appearance'), restored.meta)


class Trained(NamedTuple):
  """A trained run (just trained, or restored): inputs, geometry and (if trained) appearance."""

  run: run_lib.Run
  geometry: run_lib.GeometryResult
  appearance: appearance_phase.AppearanceState | None
  posed: np.ndarray  # float32 [T, V, 3], the garment per training frame as the state's last step made it.
  faces: np.ndarray  # int32 [F, 3]
  step: int  # The checkpoint's step: where evaluation's TensorBoard entries go.


def pose_trained(run: run_lib.Run, geometry: run_lib.GeometryResult,
                 appearance: appearance_phase.AppearanceState | None, step: int) -> Trained:
  """Host: poses the garment per training frame (what evaluation and export read)."""
  posed, faces = run_lib.posed_frames(run, geometry)
  return Trained(run, geometry, appearance, posed, faces, step)


def load_trained(config: ml_collections.ConfigDict, workdir: str) -> Trained:
  """Host: --mode=eval and export: checks the workdir, restores checkpoint eval.checkpoint_step (-1: latest)
  and poses the garment per frame."""
  run = run_lib.Run(config, pipeline.load_inputs(config))
  workdir_lib.check(config, run.inputs.sequence.path, workdir)
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.train.keep_checkpoints)
  step = None if config.eval.checkpoint_step < 0 else config.eval.checkpoint_step
  try:
    restored = restore_run(run, checkpointer, step)
    # restore_run moves unreadable checkpoints aside, so the latest left is the one restored.
    restored_step = step if step is not None else checkpointer.latest_step()
  finally:
    checkpointer.close()
  if restored is None:
    raise checkpoint_lib.CheckpointError(f'{checkpointer.directory}: no checkpoint. Fix: train first (--mode=train).')
  geometry = run_lib.GeometryResult(restored.constants, restored.geometry, run.mesh_of_state(restored.geometry),
                                    restored.meta)
  return pose_trained(run, geometry, restored.appearance, int(restored_step))
