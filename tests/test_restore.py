"""restore.py: restoring a workdir's checkpoint (the state as saved, a blend target included) and the
checks made before anything is restored."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import checkpoint
from ngd_jax import restore
from ngd_jax import workdir as workdir_lib
from tests.train_fixtures import fresh_trained
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config


def test_restore_gives_back_the_saved_state(sequence_path, tmp_path):
  """A checkpoint saved mid-blend (a blend target of the run's frames, step 6) restores leaf by leaf;
  none saved: None; eval and export refuse an empty workdir and one trained from other inputs."""
  config = tiny_config(sequence_path)
  workdir = str(tmp_path)
  trained = fresh_trained(config)
  run, (constants, state, _, _) = trained.run, trained.geometry
  state = state._replace(step=jnp.int32(6), blend_start_epoch=jnp.int32(1),
                         blend_target=jnp.full((run.bank.num_frames,) + state.params['static'].shape, 0.25))
  checkpointer = checkpoint.Checkpointer(workdir, keep=2)
  assert restore.restore_run(run, checkpointer) is None
  with pytest.raises(checkpoint.CheckpointError, match=r'no checkpoint\. Fix: train first'):
    restore.load_trained(config, workdir)
  meta = {'phase': 'geometry', 'remeshes': 1, 'wall_seconds': 1.0, 'blend_target': True}
  checkpointer.save(6, {'constants': constants, 'geometry': state}, meta)
  restored = restore.restore_run(run, checkpointer)
  checkpointer.close()
  assert restored.meta == meta and restored.appearance is None
  saved, back = jax.tree_util.tree_leaves_with_path((constants, state)), jax.tree.leaves(
      (restored.constants, restored.geometry))
  assert len(saved) == len(back)
  for (path, value), again in zip(saved, back):
    np.testing.assert_array_equal(np.asarray(again), np.asarray(value), err_msg=jax.tree_util.keystr(path))
  workdir_lib.record(config, sequence_path, workdir)
  other = tiny_config(sequence_path)
  other.seed = 5
  with pytest.raises(workdir_lib.WorkdirError, match=r'changed: seed: 0 -> 5'):
    restore.load_trained(other, workdir)
  assert restore.load_trained(config, workdir).step == 6
