"""optimizers.py: the schedules' endpoints, which parameters each learning rate drives, and settings
built from the config that can be static jit arguments."""

import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from ngd_jax import optimizers


def test_log_linear_goes_geometrically_from_start_to_end_then_stays():
  schedule = optimizers.log_linear(1e-2, 1e-4, 100)
  values = [float(schedule(step)) for step in (0, 50, 100, 1000)]
  np.testing.assert_allclose(values, [1e-2, 1e-3, 1e-4, 1e-4], rtol=1e-5)  # 1e-3: the geometric midpoint.
  assert float(optimizers.log_linear(1e-2, 1e-4, 0)(5)) == pytest.approx(1e-4, rel=1e-5)  # No steps: at the end.


def test_settings_come_from_the_config_and_are_hashable():
  config = default.get_config()
  geometry = optimizers.GeometryOptimizer.from_config(config.train)
  assert geometry._asdict() == {name: config.train[name] for name in optimizers.GeometryOptimizer._fields}
  assert hash(geometry) == hash(optimizers.GeometryOptimizer.from_config(config.train))
  appearance = optimizers.AppearanceOptimizer.from_config(config, 123)
  assert appearance == (config.appearance.lr, config.appearance.lr_end, 123, config.train.adam_eps)


def test_geometry_optimizer_drives_each_part_at_its_own_rate():
  """Adam's first update is -lr * sign(gradient): J^S moves at static_lr (its clipping rescales, not
  flips, the gradient), the network at network_lr, the cloth's colour field (where there is one) at colour_lr."""
  settings = optimizers.GeometryOptimizer(static_lr=1e-2, static_lr_end=1e-3, static_lr_steps=10, static_clip_norm=1e-3,
                                          network_lr=1e-4, network_lr_end=1e-5, network_lr_steps=10, colour_lr=3e-3,
                                          adam_eps=1e-15)
  kernel_grad = jnp.array([1.0, -2.0, 3.0, -4.0])
  params = {'static': jnp.zeros((2, 3, 3)), 'dynamic': {'dense': {'kernel': jnp.zeros((4,))}}}
  grads = {'static': jnp.full((2, 3, 3), 50.0).at[0].set(-50.0), 'dynamic': {'dense': {'kernel': kernel_grad}}}
  optimizer = optimizers.geometry_optimizer(settings)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  np.testing.assert_allclose(updates['static'], -1e-2 * np.sign(grads['static']), rtol=1e-5)
  np.testing.assert_allclose(updates['dynamic']['dense']['kernel'], -1e-4 * np.sign(kernel_grad), rtol=1e-5)
  params['colour'] = {'table': jnp.zeros((4,))}
  grads['colour'] = {'table': -kernel_grad}
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  np.testing.assert_allclose(updates['colour']['table'], 3e-3 * np.sign(kernel_grad), rtol=1e-5)
  np.testing.assert_allclose(updates['dynamic']['dense']['kernel'], -1e-4 * np.sign(kernel_grad), rtol=1e-5)
