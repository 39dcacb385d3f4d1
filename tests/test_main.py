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


def test_config_key_typo_fails_naming_the_key(tmp_path):
  result = _run_main('--config=configs/demo.py', f'--workdir={tmp_path}', '--config.trian.num_epochs=3')
  assert result.returncode != 0
  assert 'trian' in result.stderr
  assert not os.listdir(tmp_path)


def test_bad_value_fails_before_work(tmp_path):
  result = _run_main('--config=configs/demo.py', f'--workdir={tmp_path}', '--config.geometry.solver=lu')
  assert result.returncode != 0
  assert 'geometry.solver' in result.stderr and 'cholesky' in result.stderr
  assert not os.listdir(tmp_path)


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
