"""errors.run_program: a user error is one line on stderr and exit status 2; a bug keeps its traceback."""

import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROGRAM = '''
import sys
from ngd_jax import errors
class Bad(ValueError):
  pass
def main(argv):
  kind = argv[1]
  if kind == 'user':
    raise errors.UserError('seq/template.obj: non-manifold mesh. Fix: remove\\nthe extra faces.')
  if kind == 'listed':
    raise Bad('listed as a user error')
  raise RuntimeError('a bug')
errors.run_program(main, 'prog', user_errors=(Bad,))
'''


def _run(*args, env=None):
  return subprocess.run([sys.executable, '-c', _PROGRAM, *args], cwd=_ROOT, capture_output=True, text=True,
                        timeout=60, env=dict(os.environ, **(env or {})))


@pytest.mark.parametrize('kind', ['user', 'listed'])
def test_user_error_is_one_line_and_status_2(kind):
  result = _run(kind)
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr and len(result.stderr.strip().splitlines()) == 1
  assert result.stderr.startswith('prog: error: ')
  if kind == 'user':
    assert result.stderr.strip() == 'prog: error: seq/template.obj: non-manifold mesh. Fix: remove the extra faces.'


def test_traceback_on_request():
  for result in (_run('user', '--verbosity=1'), _run('user', env={'NGD_JAX_TRACEBACK': '1'})):
    assert result.returncode == 2 and 'Traceback' in result.stderr and 'UserError' in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('prog: error: seq/template.obj')


def test_bug_keeps_its_traceback():
  result = _run('bug')
  assert result.returncode == 1 and 'Traceback' in result.stderr and 'RuntimeError: a bug' in result.stderr


def test_bad_flag_is_one_line():
  result = _run('user', '--no_such_flag=1')
  assert result.returncode == 2 and result.stderr.strip() == "prog: error: Unknown command line flag 'no_such_flag'"


def test_run_parses_the_argv_it_is_given():
  """main.py passes sys.argv with the workdir's --config added: that list, not sys.argv, is parsed."""
  program = _PROGRAM.replace("errors.run_program(main, 'prog', user_errors=(Bad,))",
                             "errors.run_program(main, 'prog', user_errors=(Bad,), argv=[sys.argv[0], 'user'])")
  result = subprocess.run([sys.executable, '-c', program, 'bug'], cwd=_ROOT, capture_output=True, text=True, timeout=60)
  assert result.returncode == 2 and result.stderr.startswith('prog: error: seq/template.obj'), result.stderr
