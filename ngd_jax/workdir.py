"""Host: a workdir remembers what it was made from, and refuses to continue from anything else.

config.json holds the configuration (every key, data.path made absolute, so that `ngd-jax
--workdir=W` alone continues, evaluates or exports the run from any folder) and
sequence_fingerprint.json a fingerprint of the sequence folder: every file's relative path and size,
and the SHA-256 of sequence.json, body.npz and template.obj. Once the workdir holds a checkpoint, a
run whose configuration differs in a key outside FREE_KEYS, or whose sequence differs, stops with a
WorkdirError listing the differences. `record` writes both files (atomically) and is called only
after the inputs and the configuration were validated.
"""

import hashlib
import json
import os
import pathlib
from typing import Any

import ml_collections

from ngd_jax import config_files
from ngd_jax import errors
from ngd_jax import files
from ngd_jax import pipeline

# Keys that may change between the runs of one workdir: none can change the trained state. Where the
# sequence comes from (data.path, data.synthetic_preset) is free because the fingerprint checks the
# sequence itself; train.device_frames_max_gb only chooses whether frames stay on the device or are put
# there per step (the same values reach the same step); the rest is logging, checkpoint cadence,
# evaluation and export.
FREE_KEYS = ('data.path', 'data.synthetic_preset', 'train.log_every_steps', 'train.image_every_steps',
             'train.checkpoint_every_steps', 'train.keep_checkpoints', 'train.device_frames_max_gb', 'eval', 'export')
FINGERPRINT_FILE = 'sequence_fingerprint.json'
_HASHED = ('sequence.json', 'body.npz', 'template.obj')
_EXAMPLES = 3  # File names quoted per kind of difference.


class WorkdirError(errors.UserError):
  """A workdir that cannot be written, or that holds a run made from other inputs."""


def sequence_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
  """Host: {'files': {relative path: size}, 'sha256': {name: digest}} of a sequence folder."""
  root = pathlib.Path(path)
  sizes = {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob('*')) if p.is_file()}
  digests = {name: hashlib.sha256((root / name).read_bytes()).hexdigest()
             for name in _HASHED if (root / name).is_file()}
  return {'files': sizes, 'sha256': digests}


def _is_free(key: str) -> bool:
  return any(key == free or key.startswith(free + '.') for free in FREE_KEYS)


def config_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """'key: old -> new' for every key outside FREE_KEYS whose value differs (JSON dicts of configs; a key the
  record lacks compares at its config_files.ADDED_KEYS value)."""
  old, new = config_files.recorded_leaves(recorded), config_files.leaves(current)
  absent = '(absent)'
  return [f'{key}: {old.get(key, absent)!r} -> {new.get(key, absent)!r}'
          for key in sorted(old.keys() | new.keys())
          if not _is_free(key) and old.get(key, absent) != new.get(key, absent)]


def fingerprint_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """What differs between two sequence fingerprints, one entry per kind of difference."""
  changes = [f'sequence {name} differs' for name in sorted(recorded['sha256'].keys() | current['sha256'].keys())
             if recorded['sha256'].get(name) != current['sha256'].get(name)]
  old, new = recorded['files'], current['files']
  for kind, names in (('added', sorted(new.keys() - old.keys())), ('removed', sorted(old.keys() - new.keys())),
                      ('resized', sorted(k for k in old.keys() & new.keys() if old[k] != new[k]))):
    if names:
      changes.append(f'{len(names)} sequence files {kind} (e.g. {", ".join(names[:_EXAMPLES])})')
  return changes


def _has_checkpoint(workdir: str) -> bool:
  folder = os.path.join(workdir, 'checkpoints')
  return os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder))


def _read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise WorkdirError(f'{path}: unreadable ({e}). Fix: restore it from the run\'s command, or use a new '
                       '--workdir.') from e


def check(config: ml_collections.ConfigDict, sequence_path: str | os.PathLike, workdir: str) -> None:
  """Host: WorkdirError if `workdir` is not writable, or holds checkpoints of other inputs."""
  if os.path.exists(workdir) and not (os.path.isdir(workdir) and os.access(workdir, os.W_OK | os.X_OK)):
    raise WorkdirError(f'{workdir}: not a writable folder. Fix: pass a --workdir you can write to.')
  if not _has_checkpoint(workdir):
    return
  changes = []
  config_path = os.path.join(workdir, config_files.RUN_CONFIG)
  if os.path.isfile(config_path):
    changes += config_changes(_read_json(config_path), json.loads(config.to_json_best_effort()))
  fingerprint_path = os.path.join(workdir, FINGERPRINT_FILE)
  if os.path.isfile(fingerprint_path):
    changes += fingerprint_changes(_read_json(fingerprint_path), sequence_fingerprint(sequence_path))
  if changes:
    raise WorkdirError(
        f'{workdir}: holds a run made from other inputs; changed: {"; ".join(changes)}. Fix: leave out --config '
        f'to use the run\'s own {config_path}, with its sequence, or pass a new --workdir to start a new run '
        f'(only {", ".join(FREE_KEYS)} may change within a run).'
    )


def record(config: ml_collections.ConfigDict, sequence_path: str | os.PathLike, workdir: str) -> None:
  """Host: writes config.json (data.path absolute) and sequence_fingerprint.json into `workdir` (atomically)."""
  config = config.copy_and_resolve_references()
  config.data.path = os.path.abspath(config.data.path) if config.data.path else ''
  try:
    pipeline.save_config(config, workdir)
    files.write_json(os.path.join(workdir, FINGERPRINT_FILE), sequence_fingerprint(sequence_path))
  except OSError as e:
    raise WorkdirError(f'{workdir}: cannot write ({e}). Fix: pass a --workdir you can write to.') from e
