"""Static + dynamic texture: covered-pixel evaluation, start at zero, pose-code helpers."""

import jax
import jax.numpy as jnp
import numpy as np

from ngd_jax import appearance_phase
from ngd_jax.appearance import texture


def _module():
  return texture.DynamicTexture(hash_levels=3, hash_features=2, hash_log2_table_size=8, hash_base_resolution=4,
                                hash_growth=2.0, mlp_width=8, mlp_depth=2)


def _random_params(module, key):
  params = module.init(key, jnp.zeros((1, 2)), jnp.zeros(2))
  # Replace the zero output layer so that T^D is not identically zero.
  return jax.tree.map(lambda x: jax.random.normal(key, x.shape) * 0.3, params)


def test_dynamic_texture_starts_at_zero():
  module = _module()
  params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)), jnp.zeros(2))
  uv = jax.random.uniform(jax.random.PRNGKey(1), (10, 2))
  np.testing.assert_array_equal(module.apply(params, uv, jnp.full(2, 0.3)), 0.0)


def test_covered_pixels_give_the_full_evaluation_there():
  module = _module()
  params = _random_params(module, jax.random.PRNGKey(2))
  static = jax.random.uniform(jax.random.PRNGKey(3), (16, 16, 3))
  uv = jax.random.uniform(jax.random.PRNGKey(4), (12, 10, 2))
  coverage = np.zeros((12, 10))
  coverage[3:9, 2:7] = 1
  code = jnp.array([0.2, 0.7])
  full = texture.shade(static, module, params, uv, code, 1.0)
  pixels = appearance_phase.covered_pixels(coverage)
  assert pixels.shape == (1024,) and np.sum(pixels >= 0) == 30
  sparse = texture.shade(static, module, params, uv, code, 1.0, jnp.asarray(pixels))
  covered = coverage[..., None] > 0
  np.testing.assert_allclose(np.where(covered, sparse, 0), np.where(covered, full, 0), atol=1e-6)
  # Outside the covered pixels only the static texture remains.
  static_only = texture.shade(static, module, params, uv, code, 0.0)
  np.testing.assert_allclose(np.where(covered, 0, sparse), np.where(covered, 0, static_only), atol=1e-6)
  assert float(jnp.abs(full - static_only).max()) > 1e-3


def test_pose_code_normalisation_and_noise_decay():
  np.testing.assert_allclose(texture.normalize_pose_code(jnp.array([0.0, 5.0, -1.0]), jnp.zeros(3), jnp.full(3, 2.0)),
                             [0.0, 1.0, 0.0])
  np.testing.assert_allclose([float(texture.linear_decay(s, 100, 0.01)) for s in (0, 50, 100, 200)],
                             [0.01, 0.005, 0.0, 0.0], atol=1e-9)
