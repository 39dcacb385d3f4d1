"""loop.py: the epoch frame order both loops follow and the metrics they sum on the device.

(loop.check_finite, the stop on a non-finite loss, is tests/test_train.py's
test_non_finite_loss_names_a_sound_checkpoint.)
"""

import jax
import numpy as np

from ngd_jax import loop


def test_epoch_order_is_a_permutation_drawn_from_seed_phase_and_epoch():
  orders = {(seed, phase, epoch): loop.epoch_order(seed, epoch, 50, phase)
            for seed in (0, 1) for phase in (0, 1) for epoch in (0, 1)}
  for order in orders.values():
    np.testing.assert_array_equal(np.sort(order), np.arange(50))
  np.testing.assert_array_equal(loop.epoch_order(0, 1, 50, 1), orders[0, 1, 1])  # A resume draws it again.
  distinct = {tuple(order) for order in orders.values()}
  assert len(distinct) == len(orders)  # Another seed, phase or epoch: another order.


def test_log_sums_average_the_steps_added_inside_jit():
  add = jax.jit(lambda log, x: log.add({'total': x, 'ssim': 2 * x}))
  log = jax.device_put(loop.LogSums.zeros(('total', 'ssim')))
  assert log.means() == {'total': 0.0, 'ssim': 0.0}  # No step yet: no division by zero.
  for x in (1.0, 2.0, 6.0):
    log = add(log, np.float32(x))
  assert int(log.steps) == 3
  assert log.means() == {'total': 3.0, 'ssim': 6.0}
  assert not np.isfinite(add(log, np.float32(np.nan)).means()['total'])  # A diverged step shows in the mean.
