"""Command line and configuration checks: errors come before any work starts."""

import os
import subprocess
import sys

import pytest

from configs import default, demo
from ngd_jax import configuration

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_main(*args):
  return subprocess.run(
      [sys.executable, '-m', 'ngd_jax.main', *args], cwd=_ROOT, capture_output=True, text=True, timeout=120
  )


def test_helpfull_lists_flags():
  result = _run_main('--helpfull')  # absl prints the help and exits with status 1.
  for flag in ('--config', '--workdir', '--mode'):
    assert flag in result.stdout


def _one_line_error(result):
  """The run stopped on a user error: status 2, one line on stderr, no traceback."""
  assert result.returncode == 2, result.stderr
  assert 'Traceback' not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
  return result.stderr


def _existing_workdir(path):
  (path / 'checkpoints' / '3').mkdir(parents=True)
  (path / 'config.json').write_text('{"seed": 0}')
  return {p: p.read_bytes() for p in path.rglob('*') if p.is_file()}


@pytest.mark.parametrize('flag, words', [
    ('--config.trian.num_epochs=3', ['unknown configuration key', 'trian', 'Did you mean "train"']),
    ('--config.geometry.solver=lu', ['geometry.solver', 'cholesky']),
    ('--config.train.num_epochs=many', ['train.num_epochs', 'many']),
])
def test_bad_config_is_one_line_and_leaves_the_workdir(tmp_path, flag, words):
  before = _existing_workdir(tmp_path)
  stderr = _one_line_error(_run_main('--config=configs/demo.py', f'--workdir={tmp_path}', flag))
  assert all(word in stderr for word in words), stderr
  assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == before


def test_missing_config_file_is_one_line(tmp_path):
  missing = tmp_path / 'nope.py'
  stderr = _one_line_error(_run_main(f'--config={missing}', f'--workdir={tmp_path}'))
  assert str(missing) in stderr and 'No such file' in stderr


def test_bad_sequence_is_one_line_and_leaves_the_workdir(tmp_path):
  """A sequence.json that is not JSON: the run stops naming it before touching the workdir."""
  (tmp_path / 'seq').mkdir()
  (tmp_path / 'seq' / 'sequence.json').write_text('{"format": ')
  before = _existing_workdir(tmp_path / 'run')
  stderr = _one_line_error(_run_main('--config=configs/demo.py', f'--workdir={tmp_path / "run"}',
                                     f'--config.data.path={tmp_path / "seq"}'))
  assert 'seq/sequence.json: not valid JSON' in stderr and 'Fix: ' in stderr
  assert {p: p.read_bytes() for p in (tmp_path / 'run').rglob('*') if p.is_file()} == before


def test_default_and_demo_configs_validate(tmp_path):
  config = default.get_config()
  config.data.path = str(tmp_path)
  configuration.validate(config)
  configuration.validate(demo.get_config())


@pytest.mark.parametrize(
    'key, value, message',
    [
        ('train.warmup_epochs', 5000, 'warmup_epochs'),
        ('remesh.epochs', (600, 400), 'remesh.epochs'),
        ('remesh.quantile', 1.5, 'remesh.quantile'),
        ('data.resolution', 0, 'data.resolution'),
        ('data.path', '/nonexistent/sequence', 'not a folder'),
        ('render.backend', 'opengl', 'render.backend'),
        ('loss.smoothness_weight', -1.0, 'smoothness_weight.*>= 0'),
        ('loss.penetration_grid_resolution', 1, 'penetration_grid_resolution'),
        ('geometry.anchor', 'middle', 'geometry.anchor'),
        ('loss.supervision', 'depth', 'loss.supervision'),
    ],
)
def test_validate_rejects(key, value, message):
  config = demo.get_config()
  section, name = key.split('.')
  config[section][name] = value
  with pytest.raises(configuration.ConfigError, match=message):
    configuration.validate(config)


def test_missing_sequence_is_explained():
  config = default.get_config()
  with pytest.raises(configuration.ConfigError, match='data.path'):
    configuration.validate(config)
