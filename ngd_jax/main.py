"""Command line entry point: parses flags and dispatches to train, eval or export.

  python -m ngd_jax.main --config=configs/seq187.py --workdir=runs/seq187 \
      [--mode=train|eval|export] [--config.train.num_epochs=50 ...]
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from ngd_jax import configuration
from ngd_jax import errors

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Configuration file (configs/*.py).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, logs, metrics, exports.')
_MODE = flags.DEFINE_enum(
    'mode', 'train', ['train', 'eval', 'export'],
    'train: train (resuming from the workdir) then evaluate; eval: restore and evaluate; '
    'export: restore and write meshes, texture, animation and previews. A user error (bad config, sequence, '
    f'checkpoint or workdir) prints one line and exits with status 2; --verbosity=1 or {errors.TRACEBACK_ENV}=1 '
    'add its traceback.',
)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
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


if __name__ == '__main__':
  # The one place that tells user errors (errors.UserError: config, sequence, body, checkpoints,
  # workdir, non-finite loss) from bugs: one line and exit status 2, or the traceback.
  errors.run(main, 'ngd_jax')
