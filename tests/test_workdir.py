"""The workdir record: what may change within a run, what a sequence fingerprint notices."""

import importlib
import json
import pathlib

import pytest

from configs import default
from configs import demo
from ngd_jax import config_files
from ngd_jax import workdir


def _sequence(root):
  (root / 'rgb').mkdir(parents=True)
  (root / 'rgb' / '000000.png').write_bytes(b'png')
  (root / 'sequence.json').write_text('{"fps": 30}')
  (root / 'body.npz').write_bytes(b'body')
  return root


def _workdir_with_checkpoint(root, config, sequence):
  workdir.record(config, sequence, str(root))
  (root / 'checkpoints' / '3').mkdir(parents=True)
  return str(root)


def test_free_keys_change_freely_others_are_listed(tmp_path):
  config = demo.get_config()
  recorded = json.loads(config.to_json_best_effort())
  config.train.log_every_steps += 1
  config.eval.lpips = not config.eval.lpips
  config.export.preview_frames += 1
  config.data.path = '/moved/sequence'
  assert workdir.config_changes(recorded, json.loads(config.to_json_best_effort())) == []
  config.geometry.hash_levels = 8
  config.remesh.epochs = (1, 2)
  changes = workdir.config_changes(recorded, json.loads(config.to_json_best_effort()))
  assert changes == [f'geometry.hash_levels: {recorded["geometry"]["hash_levels"]} -> 8',
                     f'remesh.epochs: {recorded["remesh"]["epochs"]} -> [1, 2]']


def test_fingerprint_notices_content_files_and_sizes(tmp_path):
  seq = _sequence(tmp_path / 'seq')
  before = workdir.sequence_fingerprint(seq)
  assert workdir.fingerprint_changes(before, workdir.sequence_fingerprint(seq)) == []
  (seq / 'body.npz').write_bytes(b'BODY')  # Same size, other content.
  (seq / 'rgb' / '000000.png').write_bytes(b'png!')
  (seq / 'rgb' / '000001.png').write_bytes(b'png')
  assert workdir.fingerprint_changes(before, workdir.sequence_fingerprint(seq)) == [
      'sequence body.npz differs', '1 sequence files added (e.g. rgb/000001.png)',
      '1 sequence files resized (e.g. rgb/000000.png)']


def test_check_refuses_other_inputs_once_there_is_a_checkpoint(tmp_path):
  config = demo.get_config()
  seq = _sequence(tmp_path / 'seq')
  run = str(tmp_path / 'run')
  workdir.record(config, seq, run)
  config.seed = 5
  workdir.check(config, seq, run)  # No checkpoint yet: nothing to protect.
  _workdir_with_checkpoint(tmp_path / 'run', demo.get_config(), seq)
  workdir.check(demo.get_config(), seq, run)
  (seq / 'sequence.json').write_text('{"fps": 25}')
  with pytest.raises(workdir.WorkdirError, match=r'run: holds a run made from other inputs; changed: seed: 0 -> 5; '
                     r'sequence sequence\.json differs\. Fix: leave out --config to use the run\'s own .*config\.json'):
    workdir.check(config, seq, run)


def test_unwritable_workdir(tmp_path):
  (tmp_path / 'file').write_text('')
  seq = _sequence(tmp_path / 'seq')
  with pytest.raises(workdir.WorkdirError, match=r'file/run: cannot write .* Fix: pass a --workdir you can write'):
    workdir.record(demo.get_config(), seq, str(tmp_path / 'file' / 'run'))
  with pytest.raises(workdir.WorkdirError, match=r'file: not a writable folder'):
    workdir.check(demo.get_config(), seq, str(tmp_path / 'file'))


@pytest.mark.parametrize('name', ['default', 'demo', 'seq187'])
def test_config_json_is_the_whole_config_and_loads_back(tmp_path, monkeypatch, name):
  """What eval, export and resume read when only --workdir is given: every key, same values and types."""
  config = importlib.import_module(f'configs.{name}').get_config()
  config.remesh.epochs = (3, 7)
  config.data.path = 'seq'  # Relative to where the run was started.
  monkeypatch.chdir(tmp_path)
  seq = _sequence(tmp_path / 'seq')
  workdir.record(config, seq, 'run')
  loaded = config_files.load_json(str(tmp_path / 'run' / 'config.json'))
  assert loaded.data.path == str(tmp_path / 'seq')
  loaded.data.path = config.data.path
  assert loaded.to_dict() == config.to_dict() and loaded.remesh.epochs == (3, 7)
  _workdir_with_checkpoint(tmp_path / 'run', config, seq)
  workdir.check(config_files.load_json(str(tmp_path / 'run' / 'config.json')), seq, 'run')


def test_a_run_recorded_before_a_key_existed_reads_it_at_its_earlier_value(tmp_path, monkeypatch):
  """An older config.json lacks the keys added since: read with the values that reproduce that run, it
  continues and evaluates (no change reported); today's defaults differ from them and are reported."""
  config = default.get_config()
  config.data.path = 'seq'
  monkeypatch.chdir(tmp_path)
  seq = _sequence(tmp_path / 'seq')
  _workdir_with_checkpoint(tmp_path / 'run', config, seq)
  path = tmp_path / 'run' / 'config.json'
  recorded = json.loads(path.read_text())
  for key in config_files.ADDED_KEYS:
    section, name = key.split('.')
    del recorded[section][name]
  path.write_text(json.dumps(recorded))
  loaded = config_files.load_json(str(path))
  for key, value in config_files.ADDED_KEYS.items():
    section, name = key.split('.')
    assert loaded[section][name] == value
  workdir.check(loaded, seq, 'run')
  with pytest.raises(workdir.WorkdirError, match="appearance.texture_from_frames: False -> True"):
    workdir.check(config, seq, 'run')


def test_free_keys_are_listed_in_the_readme():
  readme = (pathlib.Path(__file__).parent.parent / 'README.md').read_text()
  assert all(f'`{key}`' in readme for key in workdir.FREE_KEYS)
