"""The geometry step as the loop runs it: no implicit host transfer, and the same result however a
step's frames are spread over devices (1, 2 or 4 of the simulated CPU devices of tests/conftest.py)."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ngd_jax import loop
from ngd_jax import placement
from ngd_jax import train
from tests.train_fixtures import placed_start
from tests.train_fixtures import placed_step_inputs
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loop_steps(config, streamed: bool, steps: int = 3):
  """`steps` steps as train_geometry takes them (its explicit per-step placement of the batch and, when
  the frames are streamed, of the next step's frames; then the step), 4 frames per step over 4
  simulated devices, under jax.transfer_guard('disallow'): the final state and the mean loss."""
  config.train.frames_per_step = 4
  config.train.device_frames_max_gb = 0.0 if streamed else 4.0
  run, settings, (state, mesh, constants) = placed_start(config, 4)
  assert settings.streamed == streamed and settings.devices == 4
  pose_codes = run.pose_codes(constants)
  frames, slots = placement.step_frames_on_device(run, placement.step_indices(run, 0), settings.devices, streamed)
  log = placement.place(loop.LogSums.zeros(train.METRICS), settings.devices)
  with jax.transfer_guard('disallow'):
    for step in range(steps):
      batch = placement.step_batch(run, step, 1.0, pose_codes, slots, settings.devices)
      state, log = train.jit_geometry_step(state, mesh, constants, frames, batch, log, settings=settings,
                                           dynamic=True)
      if streamed:
        frames, slots = placement.step_frames_on_device(run, placement.step_indices(run, step + 1), settings.devices,
                                                        streamed)
    means = log.means()
  return state, means['total']


def test_loop_steps_make_no_implicit_transfer_and_streamed_frames_train_as_resident(sequence_path):
  """Three loop steps with every frame on the devices and with only each step's frames put there one
  step ahead: no implicit transfer, and the same parameters after three steps (a frame streamed for
  the wrong step would show). The steps are test_sharded_step_equals_unsharded's '4' and '4s': one
  compile for both tests."""
  resident, resident_total = loop_steps(tiny_config(sequence_path), streamed=False)
  streamed, streamed_total = loop_steps(tiny_config(sequence_path), streamed=True)
  assert int(resident.step) == int(streamed.step) == 3 and np.isfinite(resident_total) and resident_total > 0
  np.testing.assert_allclose(streamed_total, resident_total, rtol=1e-5)
  for leaf, expected in zip(jax.tree.leaves((streamed.params, streamed.solutions)),
                            jax.tree.leaves((resident.params, resident.solutions)), strict=True):
    np.testing.assert_allclose(np.asarray(leaf), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_sharded_step_equals_unsharded(sequence_path):
  """One dynamic step over 4 frames on 1, 2 and 4 devices, and streamed to 4 (only the step's frames
  on the devices): the updated state and the loss agree."""
  config = tiny_config(sequence_path)
  config.train.frames_per_step = 4
  out = {}
  for variant in ('1', '2', '4', '4s'):
    config.train.device_frames_max_gb = 0.0 if variant.endswith('s') else 4.0
    settings, (state, mesh, constants, frames, batch, log) = placed_step_inputs(config, int(variant.rstrip('s')))
    state, log = train.jit_geometry_step(state, mesh, constants, frames, batch, log, settings=settings,
                                         dynamic=True)
    out[variant] = [np.asarray(leaf) for leaf in jax.tree.leaves((state.params, state.solutions, state.scores))]
    out[variant].append(np.float64(log.means()['total']))
  for variant in ('2', '4', '4s'):
    for i, (leaf, unsharded) in enumerate(zip(out[variant], out['1'], strict=True)):
      np.testing.assert_allclose(leaf, unsharded, rtol=1e-5, atol=1e-6, err_msg=f'leaf {i}, variant {variant}')


@pytest.mark.parametrize('solver', ['cg', 'dense'])
def test_poisson_solve_is_reported(sequence_path, solver):
  """The step's metrics carry the final solve's CG iterations and relative residual (direct: 0
  iterations, a float32-level residual)."""
  config = tiny_config(sequence_path)
  config.geometry.solver = solver
  config.geometry.cg_warm_start = False  # At step 0 the warm start is the template: the solution itself.
  settings, inputs = placed_step_inputs(config, 1)
  _, log = train.jit_geometry_step(*inputs, settings=settings, dynamic=False)
  means = log.means()
  if solver == 'cg':
    assert 0 < means['poisson_iterations'] < config.geometry.cg_maxiter and means['poisson_capped'] == 0
    assert means['poisson_residual'] <= 2 * config.geometry.cg_tol
  else:
    assert means['poisson_iterations'] == 0 and means['poisson_residual'] < 1e-5


def step_cache_events(sequence: str, jacobian_weight: float) -> None:
  """Prints the persistent-cache events of one geometry step compile (run in a fresh process, with the
  test session's cache, where the programs that prepare its inputs are cached whatever their compile
  time). The step, at a Jacobian weight no other test uses, is a program that cache does not hold yet;
  it is cached at JAX's default threshold, as a run caches it."""
  events = []
  jax.monitoring.register_event_listener(lambda name, **kwargs: events.append(name))
  config = tiny_config(sequence)
  config.loss.jacobian_weight = jacobian_weight
  threshold = jax.config.jax_persistent_cache_min_compile_time_secs
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  settings, inputs = placed_step_inputs(config, 1)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', threshold)
  events.clear()
  jax.block_until_ready(train.jit_geometry_step(*inputs, settings=settings, dynamic=False))
  print(' '.join(sorted({name.rsplit('/', 1)[-1] for name in events if 'compilation_cache' in name})))


def test_step_compiles_once_per_machine(sequence_path):
  """The default CPU step has no host callback, so JAX's persistent compilation cache stores it: a
  second process loads the compiled step instead of compiling it."""
  # A weight of this test run only: the step is new to the cache even where JAX_COMPILATION_CACHE_DIR
  # names a folder kept between test sessions.
  weight = 0.25 + np.random.default_rng().uniform(1e-3, 1e-2)
  script = (f'from tests import test_train_step\n'
            f'test_train_step.step_cache_events({sequence_path!r}, {weight!r})')
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=_ROOT)
  env.pop('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', None)  # JAX's default threshold, as a run has it.
  runs = [subprocess.run([sys.executable, '-c', script], check=True, cwd=_ROOT, env=env, capture_output=True,
                         text=True).stdout.split() for _ in range(2)]
  assert 'cache_misses' in runs[0] and 'cache_hits' not in runs[0], runs
  assert 'cache_hits' in runs[1] and 'cache_misses' not in runs[1], runs
