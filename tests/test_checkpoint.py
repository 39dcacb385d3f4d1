"""Checkpoints restore into a template's structure with the stored (possibly remeshed) shapes."""

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import threading
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


def _truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize('damaged', ['state/_METADATA', 'meta/metadata', 'state/manifest.ocdbt'])
def test_restore_latest_falls_back_past_a_corrupt_checkpoint(tmp_path, caplog, damaged):
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=3)
  for step in (1, 2):
    ckpt.save(step, {'geometry': _state(1, float(step))}, {'step': step})
  _truncate(tmp_path / 'checkpoints' / '2' / damaged)
  with pytest.raises(checkpoint.CheckpointError, match=r'checkpoints/2: unreadable checkpoint .*pick another of \[1, 2\]'):
    ckpt.restore_latest(lambda meta: {'geometry': _state(1, 0.0)}, step=2)
  restored = ckpt.restore_latest(lambda meta: {'geometry': _state(1, 0.0)})
  assert restored.step == 1 and restored.meta == {'step': 1}
  np.testing.assert_array_equal(restored.state['geometry'].params['static'], 1.0)
  assert 'checkpoints/2 is unreadable' in caplog.text and (tmp_path / 'checkpoints' / '2.corrupt').is_dir()
  ckpt.save(2, {'geometry': _state(1, 2.5)}, {'step': 2})  # Training writes that step again.
  assert ckpt.all_steps() == [1, 2]
  _truncate(tmp_path / 'checkpoints' / '1' / damaged)
  _truncate(tmp_path / 'checkpoints' / '2' / damaged)
  with pytest.raises(checkpoint.CheckpointError, match='no readable checkpoint'):
    ckpt.restore_latest(lambda meta: {'geometry': _state(1, 0.0)})


def test_saving_an_existing_step_replaces_it(tmp_path):
  """Earlier versions saved the last step twice; a workdir left so must finish, not crash."""
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2)
  ckpt.save(4, {'geometry': _state(1, 1.0)}, {'phase': 'geometry'})
  ckpt.save(4, {'geometry': _state(1, 1.0)}, {'phase': 'done'})
  assert ckpt.all_steps() == [4] and ckpt.read_meta() == {'phase': 'done'}
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['4']


_DISK_FULL = '''
import resource, signal, sys
import jax.numpy as jnp
from ngd_jax import checkpoint
ckpt = checkpoint.Checkpointer(sys.argv[1], keep=3)
ckpt.save(1, {'a': jnp.ones(10)}, {'step': 1})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Writes past the limit fail with EFBIG, as on a full disk.
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
  ckpt.save(2, {'a': jnp.arange(100_000.0)}, {'step': 2})
except checkpoint.CheckpointError as e:
  print(e)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # Space freed.
ckpt.save(2, {'a': jnp.arange(100_000.0)}, {'step': 2})
print(ckpt.all_steps())
'''


def test_failed_write_leaves_earlier_checkpoints_and_the_next_save_works(tmp_path):
  result = subprocess.run([sys.executable, '-c', _DISK_FULL, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  lines = result.stdout.strip().splitlines()
  assert result.returncode == 0, result.stderr[-2000:]
  assert len(lines) == 2 and lines[-1] == '[1, 2]'
  assert 'could not write checkpoint 2 (' in lines[0] and 'earlier checkpoints [1] are intact' in lines[0]
  assert 'run the same command again' in lines[0]
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['1', '2']


def test_restores_let_unfinished_reads_end_before_their_loop_closes():
  """Orbax's pattern: one read of a gather fails while the others are in flight; those end later from
  another thread (as tensorstore's futures do), which needs the loop still open."""
  reads = [concurrent.futures.Future() for _ in range(3)]
  ended = []

  async def read(i):
    ended.append(await asyncio.wrap_future(reads[i]))

  async def truncated():
    raise ValueError('truncated file')

  async def restore():
    await asyncio.gather(truncated(), *(read(i) for i in range(3)))

  finish = threading.Timer(0.2, lambda: [f.set_result(i) for i, f in enumerate(reads)])
  with checkpoint._draining_loops():  # pylint: disable=protected-access
    loop = asyncio.new_event_loop()
  finish.start()
  with pytest.raises(ValueError, match='truncated'):
    loop.run_until_complete(restore())
  loop.close()
  assert loop.is_closed() and sorted(ended) == [0, 1, 2]
  assert type(asyncio.new_event_loop()) is not type(loop)  # Only restores get such loops.


def test_falling_back_past_a_corrupt_checkpoint_prints_one_warning(tmp_path):
  """A state of many arrays (a real run's) with a truncated data file: the warning, and no tracebacks."""
  program = f'''
import glob, os
import jax.numpy as jnp
from ngd_jax import checkpoint
state = lambda value: {{f'a{{i}}': jnp.full((100_000,), value) for i in range(100)}}
ckpt = checkpoint.Checkpointer({str(tmp_path)!r}, keep=3)
for step in (1, 2):
  ckpt.save(step, state(float(step)), {{'step': step}})
data = sorted(glob.glob({str(tmp_path)!r} + '/checkpoints/2/state/**/d/*', recursive=True))[0]
os.truncate(data, os.path.getsize(data) // 2)
print(ckpt.restore_latest(lambda meta: state(0.0)).step)
ckpt.close()
'''
  result = subprocess.run([sys.executable, '-c', program], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and result.stdout.strip() == '1', result.stderr
  assert 'checkpoints/2 is unreadable' in result.stderr and 'Traceback' not in result.stderr, result.stderr[-2000:]
