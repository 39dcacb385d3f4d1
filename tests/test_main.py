"""Command line and configuration checks: errors come before any work starts."""

import os
import subprocess
import sys

import pytest

from configs import default, demo, seq187
from ngd_jax import config_files
from ngd_jax import configuration
from ngd_jax import workdir

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_main(*args, cwd=_ROOT):
  return subprocess.run(
      [sys.executable, '-m', 'ngd_jax.main', *args], cwd=cwd, capture_output=True, text=True, timeout=120
  )


def test_helpfull_lists_flags():
  result = _run_main('--helpfull')  # absl prints the help and exits with status 1.
  for flag in ('--config', '--workdir', '--mode', '--list_config'):
    assert flag in result.stdout


def _listed(stdout):
  """{key: (value, comment)} of --list_config's output."""
  rows = {}
  for line in stdout.splitlines():
    setting, _, comment = line.partition('  # ')
    key, _, value = setting.partition(' = ')
    rows[key] = (value, comment)
  return rows


def test_list_config_has_every_key_its_value_and_its_comment_in_default_py():
  with open(os.path.join(_ROOT, 'configs', 'default.py')) as f:
    comments = config_files.comments(f.read())
  config = seq187.get_config()
  rows = _listed(config_files.listing(config))
  leaves = config_files.leaves(config)
  assert rows.keys() == leaves.keys()
  for key, value in leaves.items():
    assert rows[key] == (repr(value), comments[key]) and comments[key], key
  assert comments['geometry.anchor'].endswith('from which the garment hangs (pipeline.anchor_weights).')
  assert 'Priors' not in comments['loss.jacobian_visible_only']  # A heading after a blank line is no key's.


def test_shipped_config_by_name_from_any_folder(tmp_path):
  """Resolved through the installed package, not the working directory (here an empty one)."""
  result = _run_main('--config=seq187', '--list_config', '--config.train.num_epochs=7', cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  rows = _listed(result.stdout)
  assert rows['train.num_epochs'][0] == '7' and rows['data.resolution'][0] == repr(seq187.get_config().data.resolution)
  assert rows['data.resolution'][1].endswith('(the paper: 1080).')


def test_console_script_runs_from_any_folder(tmp_path):
  script = os.path.join(os.path.dirname(sys.executable), 'ngd-jax')
  result = subprocess.run([script, '--config=demo', '--list_config'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0 and _listed(result.stdout)['train.num_epochs'][0] == '45', result.stderr
  stderr = _one_line_error(subprocess.run([script, '--config=demo'], cwd=tmp_path, capture_output=True, text=True,
                                          timeout=120))
  assert stderr == 'ngd_jax: error: --workdir: missing. Fix: pass --workdir=DIR, the folder of the run.\n'


def _recorded_run(tmp_path):
  """A workdir as training leaves it: config.json (demo, 3 epochs) next to a checkpoint."""
  config = demo.get_config()
  config.train.num_epochs = 3
  config.train.warmup_epochs = 1
  config.remesh.epochs = (1,)
  config.data.path = str(tmp_path / 'seq')
  (tmp_path / 'seq').mkdir()
  workdir.record(config, tmp_path / 'seq', str(tmp_path / 'run'))
  (tmp_path / 'run' / 'checkpoints' / '3').mkdir(parents=True)
  return tmp_path / 'run'


def test_a_workdir_alone_brings_its_config(tmp_path):
  run = _recorded_run(tmp_path)
  for args in ([f'--workdir={run}'], ['--workdir', str(run)], [f'--config={run}/config.json']):
    result = _run_main(*args, '--list_config', '--config.eval.max_frames=2', cwd=tmp_path)
    rows = _listed(result.stdout)
    assert result.returncode == 0, result.stderr
    assert (rows['train.num_epochs'][0], rows['remesh.epochs'][0], rows['eval.max_frames'][0]) == ('3', '(1,)', '2')
  # Eval reads the recorded sequence folder (here an empty one: the first thing it finds wrong).
  stderr = _one_line_error(_run_main(f'--workdir={run}', '--mode=eval', '--config.eval.max_frames=2', cwd=tmp_path))
  assert f'{tmp_path}/seq/sequence.json' in stderr


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
    ('--config.trian.num_epochs=3', ['--config.trian.num_epochs: no such key. Did you mean train? Fix: --list_config']),
    ('--config.train.num_epoch=3', ['--config.train.num_epoch: no such key. Did you mean train.num_epochs? Fix: ']),
    ('--config.train.nope=3', ['ngd_jax: error: --config.train.nope: no such key. Fix: --list_config lists every']),
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


@pytest.mark.parametrize('args, message', [
    (['--config=demoo', '--workdir=w'], '--config=demoo: neither a file nor a shipped config. Fix: pass one of '),
    (['--workdir=w'], '--config: missing. Fix: pass one of '),
    (['--config=w/config.json'], '--config=w/config.json: unreadable ('),
    (['--config=dress4d'], "--config=dress4d: get_config failed: TypeError: get_config() missing 1 required "
                           "positional argument: 'garment'. Fix: correct the file; a config that takes an argument"),
])
def test_no_config_is_one_line(tmp_path, args, message):
  stderr = _one_line_error(_run_main(*args, cwd=tmp_path))
  assert stderr.startswith(f'ngd_jax: error: {message}'), stderr
  if 'one of' in message:
    assert ' default, demo, ' in stderr and ' seq187, ' in stderr


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
        ('data.num_frames', 0, r'data.num_frames=0 must be -1 \(all frames\) or > 0'),
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


def test_every_shipped_config_loads_by_name():
  """A new configs/*.py must import the default as `from configs import default` to load from any folder."""
  names = config_files.shipped_names()
  assert {'default', 'demo', 'seq187'} <= set(names)
  for name in names:
    argument = 'dress4d:skirt' if name == 'dress4d' else name  # Its get_config takes the garment.
    config = config_files.ConfigParser('config').parse(argument)
    assert config.to_dict().keys() == default.get_config().to_dict().keys(), name
