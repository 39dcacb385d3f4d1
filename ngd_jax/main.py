"""Command line entry point: parses flags and dispatches to train, eval or export.

  ngd-jax --config=demo|seq187|configs/demo.py|W/config.json --workdir=W [--mode=train|eval|export] \
      [--config.train.num_epochs=50 ...]
  ngd-jax --workdir=W --mode=eval|export|train   (the run's own W/config.json)
  ngd-jax --config=demo --list_config            (every key, its value and its meaning)
"""

import os
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from ngd_jax import config_files
from ngd_jax import configuration
from ngd_jax import errors

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'A shipped config by name (demo, seq187, ...), a configs/*.py file, or a run\'s config.json; '
    'left out, the --workdir\'s own config.json. Any key can then be set: --config.train.num_epochs=3.')
flags.FLAGS['config'].parser = config_files.ConfigParser('config')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, logs, metrics, exports, config.json.')
_MODE = flags.DEFINE_enum(
    'mode', 'train', ['train', 'eval', 'export'],
    'train: train (resuming from the workdir) then evaluate; eval: restore and evaluate; '
    'export: restore and write meshes, texture, animation and previews. A user error (bad config, sequence, '
    f'checkpoint or workdir) prints one line and exits with status 2; --verbosity=1 or {errors.TRACEBACK_ENV}=1 '
    'add its traceback.',
)
_LIST_CONFIG = flags.DEFINE_bool('list_config', False, 'Print every key of --config with its value and its '
                                 'comment in configs/default.py, then exit.')


def main(argv):
  if len(argv) > 1:
    raise errors.UserError(f'unexpected arguments {argv[1:]}. Fix: flags only, as --name=value.')
  if _CONFIG.value is None:
    raise errors.UserError(f'--config: missing. Fix: pass one of {", ".join(config_files.shipped_names())}, a '
                           f'configs/*.py file, or a --workdir that holds a {config_files.RUN_CONFIG}.')
  config = _CONFIG.value
  configuration.check_loaded(config)
  if _LIST_CONFIG.value:
    print(config_files.listing(config))
    return
  if _WORKDIR.value is None:
    raise errors.UserError('--workdir: missing. Fix: pass --workdir=DIR, the folder of the run.')
  configuration.validate(config)
  if not flags.FLAGS['verbosity'].present:
    # Progress and results go through the progress bar and prints; library INFO logs (orbax
    # writes several lines per checkpoint) only with --verbosity=0.
    logging.set_verbosity(logging.WARNING)
  # Imported here so that --help and config errors answer without loading JAX.
  import jax  # pylint: disable=g-import-not-at-top
  from ngd_jax import evaluate, export, train  # pylint: disable=g-import-not-at-top

  # Compiled programs persist across processes (eval and export reuse what train compiled).
  jax.config.update('jax_compilation_cache_dir', os.environ.get(
      'JAX_COMPILATION_CACHE_DIR', os.path.join(os.path.expanduser('~'), '.cache', 'ngd_jax', 'xla')))

  if _MODE.value == 'train':
    train.train_and_evaluate(config, _WORKDIR.value)
  elif _MODE.value == 'eval':
    evaluate.evaluate_run(config, _WORKDIR.value)
  else:
    export.export_run(config, _WORKDIR.value)


def run_main() -> None:
  """The program: a --workdir alone brings its config.json; user errors are one line and exit status 2."""
  errors.run_program(main, 'ngd_jax', argv=config_files.with_run_config(sys.argv))


if __name__ == '__main__':
  run_main()
