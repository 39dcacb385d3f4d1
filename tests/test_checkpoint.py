"""Checkpoints restore into a template's structure with the stored (possibly remeshed) shapes."""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngd_jax import checkpoint


class _State(NamedTuple):  # Fields deliberately not in alphabetical order.
  zeta: jnp.ndarray
  params: dict
  opt_state: tuple
  alpha: jnp.ndarray


def _state(num_faces: int, value: float) -> _State:
  params = {'static': jnp.full((num_faces, 3, 3), value), 'net': {'w': jnp.arange(4.0)}}
  opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
  return _State(jnp.int32(7), params, opt.init(params), jnp.array([1, 2], jnp.int32))


def test_round_trip_in_a_new_manager_with_other_shapes(tmp_path):
  saved = _state(5, 0.5)
  writer = checkpoint.Checkpointer(str(tmp_path), keep=2)
  writer.save(3, {'geometry': saved}, {'phase': 'geometry', 'faces': 5})
  writer.close()
  reader = checkpoint.Checkpointer(str(tmp_path), keep=2)  # A new process knows no handlers yet.
  assert reader.read_meta() == {'phase': 'geometry', 'faces': 5}
  restored = reader.restore({'geometry': _state(2, 0.0)})
  state = restored.state['geometry']
  assert restored.step == 3 and isinstance(state, _State)
  assert state.params['static'].shape == (5, 3, 3)
  np.testing.assert_array_equal(state.params['static'], 0.5)
  np.testing.assert_array_equal(state.alpha, [1, 2])
  assert state.alpha.dtype == np.int32 and int(state.zeta) == 7
  assert np.asarray(state.opt_state[1][0].mu['static']).shape == (5, 3, 3)


def test_keeps_last_k_and_restores_named_step(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2)
  for step in (1, 2, 3):
    ckpt.save(step, {'geometry': _state(1, float(step))}, {'step': step})
  assert ckpt.all_steps() == [2, 3]
  restored = ckpt.restore({'geometry': _state(1, 0.0)}, step=2)
  np.testing.assert_array_equal(restored.state['geometry'].params['static'], 2.0)
  with pytest.raises(checkpoint.CheckpointError, match=r'no checkpoint 1\. Fix: pick one of \[2, 3\]'):
    ckpt.restore({'geometry': _state(1, 0.0)}, step=1)


def test_structure_mismatch_is_explained(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=1)
  ckpt.save(1, {'geometry': _state(1, 0.0)}, {})
  with pytest.raises(checkpoint.CheckpointError, match='different configuration'):
    ckpt.restore({'geometry': _state(1, 0.0), 'appearance': {'texture': jnp.zeros(3)}})


def test_no_checkpoint(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=1)
  assert ckpt.read_meta() is None
  with pytest.raises(checkpoint.CheckpointError, match='train first'):
    ckpt.restore({'x': jnp.zeros(1)})
