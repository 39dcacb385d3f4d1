"""User errors, and the one place that turns them into a one-line message and exit status 2.

A user error is a problem with what the user gave: a configuration value, a sequence folder, a
body or model file, an importer's input, a workdir or its checkpoints. Its class derives from
UserError and its message names the file or key and the fix. Everything else is a bug and keeps
its traceback. `run` is what the programs (ngd_jax.main, the importers) call instead of
absl.app.run.
"""

import os
import sys
import traceback
from typing import Callable, Sequence

from absl import app
from absl import flags

USAGE_STATUS = 2  # Exit status of a user error (the convention for usage errors).
TRACEBACK_ENV = 'NGD_JAX_TRACEBACK'  # Set to 1 to see the traceback of a user error too.


class UserError(Exception):
  """A problem the user can fix; the message names the file or configuration key and the fix."""


def _fail(program: str, error: BaseException) -> None:
  """Prints `error` as one line (with its traceback first when asked for) and exits with status 2."""
  verbose = flags.FLAGS.is_parsed() and flags.FLAGS['verbosity'].value >= 1
  if verbose or os.environ.get(TRACEBACK_ENV, '0') not in ('', '0'):
    traceback.print_exception(error)
  print(f'{program}: error: {" ".join(str(error).split())}', file=sys.stderr, flush=True)
  sys.exit(USAGE_STATUS)


def run_program(main: Callable[[list[str]], None], program: str,
        user_errors: Sequence[type[BaseException]] = (), argv: list[str] | None = None) -> None:
  """absl.app.run(main) on `argv` (default sys.argv), with flag errors and user errors (UserError and
  `user_errors`) reported in one line and exit status 2; any other exception propagates with its traceback."""
  caught = (UserError, *user_errors)

  def parse(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except Exception as e:  # pylint: disable=broad-except
      # Everything that fails while parsing comes from the command line or the config file it
      # names: an unknown flag, a mistyped --config.key, a value of the wrong type.
      _fail(program, e)

  def guarded(argv: list[str]) -> None:
    try:
      main(argv)
    except caught as e:
      _fail(program, e)

  app.run(guarded, argv=argv, flags_parser=parse)
