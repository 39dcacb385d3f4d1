"""Where a run's configuration comes from: a shipped config by name, a configs/*.py file, or a run's config.json.

The shipped configs (the repository's configs/ folder) are installed as the top-level package
`configs`, so `--config=demo` finds configs/demo.py from any folder; each file imports the default
as `from configs import default`. A workdir's config.json is laid over configs/default.py, so its
values keep the default's types (tuples stay tuples). Mistyped `--config.*` keys are refused here,
before ml_collections meets them, with one line naming the key and the nearest existing one.
Key listing (`--list_config`) reads each key's comment from configs/default.py's own source.
"""

import ast
import difflib
import importlib
import importlib.util
import io
import json
import os
import re
import sys
import tokenize
from typing import Any

import ml_collections
from ml_collections.config_flags import config_flags as ml_config_flags

from ngd_jax import errors

SHIPPED_PACKAGE = 'configs'
RUN_CONFIG = 'config.json'  # The configuration a workdir was trained with (workdir.record writes it).
# Keys added to configs/default.py after runs were recorded, each with the value that does what the code did
# before the key existed. A run's config.json without one is read with that value (load_json, and
# workdir.check's comparison), so a run recorded before continues, evaluates and exports as it was trained.
ADDED_KEYS = {
    'data.body_occlusion': False,
    'loss.depth_min_gap': 0.0,
    'skinning.contact_distance': -1.0,
    'appearance.texture_from_frames': False,
    'loss.shading_erode': 0,
    'loss.shading_region': 'mask',
    'loss.depth_correlation_weight': 0.0,
    'loss.posed_penetration_weight': 0.0,
    'loss.posed_penetration_samples': 4096,
}


class ConfigFileError(errors.UserError):
  """A --config that names no shipped config or file, a config.json that does not fit, or a mistyped key.

  Not a ValueError: absl would prefix the message with the flag's whole value.
  """


def shipped_folder() -> str:
  """The installed configs/ folder."""
  spec = importlib.util.find_spec(SHIPPED_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise ConfigFileError(f'the shipped configs (package {SHIPPED_PACKAGE!r}) are not installed. Fix: reinstall '
                          'ngd_jax (pip install .), or pass the path of a config file.')
  return list(spec.submodule_search_locations)[0]


def shipped_names() -> list[str]:
  return sorted(name[:-3] for name in os.listdir(shipped_folder()) if name.endswith('.py') and name[0] != '_')


def resolve(argument: str) -> str:
  """The file a --config value means: a shipped config's name (demo, seq187) or a path, as given."""
  path, colon, rest = argument.partition(':')
  if os.path.exists(path) or os.sep in path or path.endswith(('.py', '.json')):
    return argument
  if path not in shipped_names():
    raise ConfigFileError(f'--config={argument}: neither a file nor a shipped config. Fix: pass one of '
                          f'{", ".join(shipped_names())}, a configs/*.py file, or a run\'s {RUN_CONFIG}.')
  return os.path.join(shipped_folder(), f'{path}.py') + colon + rest


def _default() -> ml_collections.ConfigDict:
  shipped_folder()  # The message for a broken install.
  return importlib.import_module(f'{SHIPPED_PACKAGE}.default').get_config()


def leaves(value: Any, prefix: str = '') -> dict[str, Any]:
  """{'a.b': leaf} of nested dicts or ConfigDicts (a config, or its JSON)."""
  if not isinstance(value, (dict, ml_collections.ConfigDict)):
    return {prefix: value}
  out = {}
  for key, item in value.items():
    out.update(leaves(item, f'{prefix}.{key}' if prefix else key))
  return out


def recorded_leaves(recorded: dict[str, Any]) -> dict[str, Any]:
  """{'a.b': leaf} of a run's config.json, with ADDED_KEYS it was recorded without at their earlier values."""
  return {**ADDED_KEYS, **leaves(recorded)}


def load_json(path: str) -> ml_collections.ConfigDict:
  """A run's config.json laid over configs/default.py (JSON lists become the default's tuples; keys it was
  recorded without take their ADDED_KEYS values)."""
  try:
    with open(path) as f:
      saved = recorded_leaves(json.load(f))
  except (OSError, ValueError) as e:
    raise ConfigFileError(f'--config={path}: unreadable ({e}). Fix: pass a config.json written by a run.') from e
  config = _default()
  known = leaves(config)
  unknown = sorted(saved.keys() - known.keys())
  if unknown:
    raise ConfigFileError(f'--config={path}: keys this version does not have: {", ".join(unknown)}. Fix: use the '
                          'ngd_jax version that wrote it.')
  for key, value in saved.items():
    *sections, name = key.split('.')
    node = config
    for section in sections:
      node = node[section]
    node[name] = tuple(value) if isinstance(known[key], tuple) else value
  return config


def check_overrides(config: ml_collections.ConfigDict, argv: list[str], name: str = 'config') -> None:
  """ConfigFileError for the first --config.key=... of `argv` that `config` does not have."""
  for arg in argv:
    match = re.match(rf'-{{1,2}}(?:no)?{name}\.([^=]+)', arg)
    if not match:
      continue
    node, done = config, []
    for part in match.group(1).split('.'):
      if not isinstance(node, ml_collections.ConfigDict):
        break
      if part not in node:
        close = difflib.get_close_matches(part, list(node.keys()), n=1)
        hint = f"Did you mean {'.'.join(done + close)}? " if close else ''
        raise ConfigFileError(f'--{name}.{match.group(1)}: no such key. {hint}Fix: --list_config lists every key '
                              'with its value and meaning.')
      node, done = node[part], done + [part]


class ConfigParser(ml_config_flags.ConfigFileFlagParser):
  """ml_collections' config file parser, also taking shipped names and a run's config.json."""

  def parse(self, argument: str) -> ml_collections.ConfigDict:
    path = resolve(argument)
    if path.endswith('.json'):
      config = load_json(path)
      if self._lock_config:
        config.lock()
    else:
      try:
        config = super().parse(path)
      except (TypeError, ValueError) as e:  # Raised by the file's get_config; ml_collections adds its traceback.
        raise ConfigFileError(
            f'--config={argument}: get_config failed: {str(e).strip().splitlines()[-1]}. Fix: correct the file; a '
            'config that takes an argument is passed as --config=NAME:ARGUMENT (e.g. dress4d:skirt).') from e
    if isinstance(config, ml_collections.ConfigDict):  # Otherwise ml_collections' file error, raised at first use.
      check_overrides(config, sys.argv, self.name)
    return config


def with_run_config(argv: list[str]) -> list[str]:
  """`argv` with --config=WORKDIR/config.json added when it names no --config but a --workdir holding one."""
  if any(re.match(r'-{1,2}config(=|$)', arg) for arg in argv):
    return argv
  workdirs = [arg.split('=', 1)[1] if '=' in arg else following
              for arg, following in zip(argv, argv[1:] + ['']) if re.match(r'-{1,2}workdir(=|$)', arg)]
  if workdirs and os.path.isfile(os.path.join(workdirs[-1], RUN_CONFIG)):
    return argv[:1] + [f'--config={os.path.join(workdirs[-1], RUN_CONFIG)}'] + argv[1:]
  return argv


def comments(source: str) -> dict[str, str]:
  """{'data.resolution': its comment} of every `config.a.b = ...` in a config file's source.

  A key's comment is the one on its line and the comment-only lines right below it.
  """
  notes = {}
  lines = set()
  for token in tokenize.generate_tokens(io.StringIO(source).readline):
    if token.type == tokenize.COMMENT:
      notes[token.start[0]] = token.string.lstrip('#').strip()
      if token.line.strip().startswith('#'):
        lines.add(token.start[0])
  out = {}
  for node in ast.walk(ast.parse(source)):
    if not isinstance(node, ast.Assign) or len(node.targets) != 1:
      continue
    key = ast.unparse(node.targets[0])
    if not key.startswith('config.'):
      continue
    parts = [notes[line] for line in range(node.lineno, node.end_lineno + 1) if line in notes]
    line = node.end_lineno + 1
    while line in lines:
      parts.append(notes[line])
      line += 1
    out[key[len('config.'):]] = ' '.join(parts)
  return out


def listing(config: ml_collections.ConfigDict) -> str:
  """Every key of `config`, one a line: `key = value  # comment from configs/default.py`."""
  with open(resolve('default')) as f:
    notes = comments(f.read())
  rows = []
  for key, value in leaves(config).items():
    note = notes.get(key, '')
    rows.append(f'{key} = {value!r}' + (f'  # {note}' if note else ''))
  return '\n'.join(rows)
