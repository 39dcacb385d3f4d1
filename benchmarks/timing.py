"""Timing shared by the benchmark scripts (imported as `timing` when a script runs from benchmarks/)."""

import statistics
import time

import jax


def median_time(fn, repeats: int) -> float:
  """Median wall time in seconds of `repeats` calls of fn(), after one warm-up (compile) call."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)
