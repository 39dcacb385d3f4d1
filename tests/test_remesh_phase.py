"""remesh_phase.py: a remesh refines where the epoch's face scores are high and carries the state over,
so that the garment does not jump: J^S keeps the canonical shape, and after the warm-up the old J^D
becomes the blend target that the first blended epoch (network weight 0) reproduces."""

import types

import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import remesh_phase
from ngd_jax import run as run_lib
from tests.train_fixtures import fresh_trained
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config


@pytest.fixture(scope='module')
def trained(sequence_path):
  return fresh_trained(tiny_config(sequence_path))


def scored(state: run_lib.GeometryState) -> run_lib.GeometryState:
  """The state with distinct epoch scores, rising with the face index (the last ones are refined)."""
  capacity = state.faces.shape[0]
  return state._replace(scores=state.scores._replace(average_sum=jnp.arange(capacity, dtype=jnp.float32),
                                                     visible_frames=jnp.ones(capacity, jnp.int32)))


def remeshed(trained, epoch: int):
  run, (constants, state, mesh, _) = trained.run, trained.geometry
  messages = []
  new_state, new_mesh = remesh_phase.remesh_state(run, scored(state), mesh, constants, 0, epoch,
                                                  types.SimpleNamespace(write=messages.append))
  assert len(messages) == 1 and messages[0].startswith(f'Remesh 1/1 after epoch {epoch}:')
  return run_lib.GeometryResult(constants, new_state, new_mesh, {})


def test_warm_up_remesh_refines_and_keeps_the_canonical_shape(trained):
  run = trained.run
  result = remeshed(trained, 0)  # Epoch 0 < train.warmup_epochs: no J^D to blend from.
  state = result.state
  assert int(state.num_faces) > len(run.inputs.template_faces)
  assert state.blend_target is None and int(state.blend_start_epoch) == run_lib.NO_BLEND_EPOCH
  assert float(jnp.sum(state.scores.average_sum)) == 0  # A new epoch's scores start empty.
  canonical, faces = run_lib.canonical_mesh(run, result)
  np.testing.assert_array_equal(faces, np.asarray(state.faces)[: int(state.num_faces)])
  # J^S blended from the 3 nearest old faces: the shape moves by millimetres (the garment spans 0.4 m).
  np.testing.assert_allclose(canonical, run_lib.unpadded_template(state).vertices, atol=1e-2)


def test_dynamic_remesh_blends_from_the_old_deformation(trained):
  run = trained.run
  epoch = run.config.train.warmup_epochs
  before = run_lib.deform_all_frames(run, trained.geometry.state, trained.geometry.mesh, trained.geometry.constants,
                                     epoch, True).posed[:, : trained.posed.shape[1]]
  result = remeshed(trained, epoch)
  state = result.state
  assert state.blend_target.shape == (run.bank.num_frames,) + state.params['static'].shape
  assert int(state.blend_start_epoch) == epoch and run_lib.blend_weight(run.config, epoch, epoch) == 0
  after = run_lib.deform_all_frames(run, state, result.mesh, result.constants, epoch, True).posed
  # The old vertices are the new template's first ones (splits append midpoints).
  np.testing.assert_allclose(after[:, : before.shape[1]], before, atol=1e-2)
  assert np.isfinite(np.asarray(state.blend_target)).all()
