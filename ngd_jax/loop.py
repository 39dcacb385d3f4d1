"""What both training phases' loops share: the frame order of an epoch, the metrics summed on the
device between logging intervals, and the stop on a non-finite loss.

Frame order is a function of (seed, phase, epoch) only, so a resumed run replays exactly what an
uninterrupted one does.
"""

from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from ngd_jax import checkpoint as checkpoint_lib
from ngd_jax import errors


def epoch_order(seed: int, epoch: int, num_frames: int, phase: int = 0) -> np.ndarray:
  """The shuffled frame order of an epoch (phase 0: geometry, 1: appearance)."""
  return np.random.default_rng([seed, phase, epoch]).permutation(num_frames)


class LogSums(NamedTuple):
  """Metrics summed on the device between two logging intervals: the steps add to them inside jit and
  the host reads them once per interval, so steps in between wait for nothing."""

  sums: dict[str, jax.Array]  # float32 [] per metric.
  steps: jax.Array  # int32 [], steps summed.

  @classmethod
  def zeros(cls, names: Sequence[str]) -> 'LogSums':
    """Host: empty sums (numpy: the loop puts them on its devices)."""
    return cls({name: np.zeros((), np.float32) for name in names}, np.zeros((), np.int32))

  def add(self, metrics: dict[str, jax.Array]) -> 'LogSums':
    """Inside the step: the sums with this step's metrics added."""
    return LogSums({name: self.sums[name] + metrics[name] for name in self.sums}, self.steps + 1)

  def means(self) -> dict[str, float]:
    """Host: the interval's means, fetched explicitly (a non-finite step leaves its metric's mean non-finite)."""
    sums, steps = jax.device_get((self.sums, self.steps))
    return {name: float(value) / max(int(steps), 1) for name, value in sums.items()}


class NonFiniteLossError(errors.UserError, FloatingPointError):
  """A loss term became NaN or inf (learning rates too high, or bad input frames)."""


def check_finite(metrics: dict[str, Any], step: int, checkpointer: checkpoint_lib.Checkpointer,
                 interval: int) -> None:
  """Stops the run on a non-finite loss term, naming it and the last sound checkpoint.

  `step` counts as checkpoints do (appearance steps after the geometry steps): the last step of the
  logging interval whose means are `metrics`. A checkpoint is sound
  when the loss stayed finite for `interval` (the logging interval) steps after it: the one written
  just before the failing step may already hold the update that diverged.
  """
  bad = [name for name, value in metrics.items() if not np.all(np.isfinite(value))]
  if not bad:
    return
  fix = ('lower the learning rates (--config.train.static_lr, --config.train.network_lr, --config.appearance.lr) '
         'or check the input frames')
  sound = [s for s in checkpointer.all_steps() if s + interval <= step]
  if not sound:
    raise NonFiniteLossError(
        f'Non-finite loss term(s) {bad} by step {step}; no kept checkpoint in {checkpointer.directory} is followed '
        f'by {interval} finite steps. Fix: {fix}, and start again with a new --workdir.')
  later = [s for s in checkpointer.all_steps() if s > sound[-1]]
  raise NonFiniteLossError(
      f'Non-finite loss term(s) {bad} by step {step}. Checkpoint {sound[-1]} is sound (the loss stayed finite for '
      f'{interval} steps after it)' + (f'; later ones {later} may hold diverged parameters' if later else '') +
      f'. Fix: {fix}, and restart from checkpoint {sound[-1]} in a new workdir: mkdir -p NEW/checkpoints && '
      f'cp -r {checkpointer.directory}/{sound[-1]} NEW/checkpoints/, then run again with --workdir=NEW.')
