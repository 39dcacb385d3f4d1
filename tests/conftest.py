"""Global test switches, set once here.

JAX runs on the CPU in tests, with 4 simulated devices (set before jax is imported anywhere), so
that a step's frames spread over devices on a machine without accelerators (tests/test_train_step.py:
over 1, 2 and 4 of them, in the test's own process rather than one started for it).

The CPU backend compiles the tests' programs at LLVM optimisation level 0
(--xla_backend_optimization_level=0): XLA's own passes (fusion, layout, simplification) still run, so
the programs are the ones training compiles; only their machine code is less optimised. Tests compile
many programs and run few steps: the suite from a fresh clone took 378-410 s of pytest at level 0 and
444-463 s at XLA's default level, and passed at both (2026-12-07). To run it as training compiles, set
XLA_FLAGS=--xla_force_host_platform_device_count=4 (XLA_FLAGS set outside is kept as it is).

Compiled programs go to a persistent compilation cache made for this test session, shared by the
xdist workers and the processes the tests start: most of the suite's time is XLA compiling, and the
same program is compiled again by other tests and other workers. Every program is cached, not only
those that took a second to compile (JAX's default): a process pays ~25 ms for each of hundreds of
small programs (eager operations, a renderer at a test's size), and two files that render at the same
size share them (tests/test_render_shading.py and test_model.py run in a second process: 68 s with
the default threshold, 31 s with none). The cache gives back the executable a compile would have
made, so no test sees other programs (an entry read while another worker writes it fails its
checksum: JAX warns and compiles instead). tests/test_train_step.py's cache test starts its processes
at JAX's default threshold, with a step program of its own. Set JAX_COMPILATION_CACHE_DIR to choose
the folder (it is then kept).

The files that take minutes are collected first, longest first (_LONG_FILES): scripts/test.sh hands
whole files to the worker that is free (--dist loadfile) in collection order (--no-loadscope-reorder;
xdist's default order, most tests first, started a 1-test file of 80 s last while the other worker
idled), so the short files are left to even out the two workers at the end.
"""

import os
import shutil
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0')

# Made once, by the pytest process that starts the xdist workers (they inherit the variable).
_SESSION_CACHE = None
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ and 'PYTEST_XDIST_WORKER' not in os.environ:
  _SESSION_CACHE = tempfile.mkdtemp(prefix='ngd_jax_test_xla_cache_')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _SESSION_CACHE
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')


# Seconds in the suite on 2 cores (2026-12-07, issue 21): 156, 130, 91, 60; the next file takes about 50.
_LONG_FILES = ('test_train.py', 'test_train_step.py', 'test_quality.py', 'test_train_displacement.py')


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(_LONG_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # Stable: the rest keep their order.


def pytest_unconfigure(config):  # pylint: disable=unused-argument
  if _SESSION_CACHE is not None:  # Only the process that made it (workers inherit the variable instead).
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)
