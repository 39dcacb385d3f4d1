"""Compile counting: how often jit traced a function (one compile per new input signature)."""

import functools
import logging
from typing import Any, Callable

import jax


class TraceCounter:
  """Counts (and logs) the traces of a function, i.e. the compiles of the jit wrapping it.

  Wrap the pure function before jitting: `step = jax.jit(counter.wrap(train_step))`. The Python
  body of a jitted function runs only when jit traces it for a new input signature (a new
  capacity bucket), so the side effect here counts exactly those compiles.
  """

  def __init__(self, log: Callable[..., Any] = logging.info):
    self.counts: dict[str, int] = {}
    self._log = log

  def wrap(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """Returns fn with a tracing side effect that counts and logs under `name`."""
    name = name or getattr(fn, '__name__', 'fn')
    self.counts.setdefault(name, 0)

    @functools.wraps(fn)
    def traced(*args, **kwargs):
      self.counts[name] += 1
      shapes = sorted({tuple(leaf.shape) for leaf in jax.tree.leaves((args, kwargs))
                       if hasattr(leaf, 'shape')})
      self._log('compile #%d of %s; distinct input shapes %s', self.counts[name], name, shapes)
      return fn(*args, **kwargs)

    return traced

  @property
  def total(self) -> int:
    """Traces of all wrapped functions together."""
    return sum(self.counts.values())
