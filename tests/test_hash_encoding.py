"""Tests of the multiresolution hash-grid encoding (ngd_jax.hash_encoding)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax.hash_encoding import HashGridEncoding

_PRIMES = (1, 2654435761, 805459861, 3674653429)


def _encoder(dim, **kwargs):
  settings = dict(num_levels=3, features=2, log2_table_size=8, base_resolution=4, growth=2.0)
  settings.update(kwargs)
  encoder = HashGridEncoding(**settings)
  params = encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, dim)))
  return encoder, params


def _reference(params, encoder, point):
  """Slow reference: per level, loop over the 2^D corners with Python-integer indexing."""
  table = np.asarray(params['params']['table'])
  dim = len(point)
  size = 2**encoder.log2_table_size
  out, offset = [], 0
  for level in range(encoder.num_levels):
    resolution = int(np.floor(encoder.base_resolution * encoder.growth**level))
    position = np.clip(point, 0, 1) * resolution
    cell = np.minimum(np.floor(position), resolution - 1).astype(int)
    frac = position - cell
    dense = (resolution + 1)**dim <= size
    feature = np.zeros(encoder.features)
    for corner in itertools.product((0, 1), repeat=dim):
      c = cell + np.array(corner)
      if dense:
        index = sum(int(c[d]) * (resolution + 1)**d for d in range(dim))
      else:
        index = 0
        for d in range(dim):
          index ^= (int(c[d]) * _PRIMES[d]) % 2**32
        index %= size
      weight = np.prod([frac[d] if corner[d] else 1 - frac[d] for d in range(dim)])
      feature += weight * table[offset + index]
    out.append(feature)
    offset += min((resolution + 1)**dim, size)
  return np.concatenate(out)


@pytest.mark.parametrize('dim', [2, 3, 4])
def test_shape_and_matches_slow_reference(dim):
  # Table 2^8: level 0 (res 4) is dense for D <= 3, hashed for D = 4; levels 1-2 hashed for D = 3.
  encoder, params = _encoder(dim)
  points = np.random.default_rng(dim).uniform(size=(5, 7, dim)).astype(np.float32)
  points[0, 0] = 0.0
  points[0, 1] = 1.0
  out = jax.jit(encoder.apply)(params, points)
  assert out.shape == (5, 7, encoder.num_levels * encoder.features)
  assert out.dtype == jnp.float32
  for index in [(0, 0), (0, 1), (2, 3), (4, 6)]:
    np.testing.assert_allclose(out[index], _reference(params, encoder, points[index]), atol=1e-7)


def test_table_init_is_small_and_sized_per_level():
  encoder, params = _encoder(3)
  table = params['params']['table']
  # Level 0: 5^3 = 125 dense corners; levels 1 and 2 exceed 2^8 and use the full table.
  assert table.shape == (125 + 256 + 256, 2)
  assert float(jnp.abs(table).max()) <= 1e-4


def test_continuous_inside_a_cell_and_across_cell_faces():
  encoder, params = _encoder(3, num_levels=2)
  params = jax.tree.map(lambda t: t * 1e4, params)  # O(1) features.
  rng = np.random.default_rng(0)
  base = rng.uniform(0.1, 0.9, size=(50, 3)).astype(np.float32)
  step = 1e-3
  direction = rng.normal(size=(50, 3)).astype(np.float32)
  direction /= np.linalg.norm(direction, axis=1, keepdims=True)
  here = encoder.apply(params, base)
  there = encoder.apply(params, base + step * direction)
  # d-linear interpolation: Lipschitz with constant <= resolution * sqrt(D) * 2 max|table|.
  bound = 2 * 8 * np.sqrt(3) * float(jnp.abs(params['params']['table']).max()) * step
  assert float(jnp.abs(there - here).max()) <= bound
  # Across a face of a level-1 cell (x = 3/8): left and right limits agree.
  face = np.array([[3 / 8, 0.41, 0.77]], np.float32)
  left = encoder.apply(params, face - np.array([1e-6, 0, 0], np.float32))
  right = encoder.apply(params, face + np.array([1e-6, 0, 0], np.float32))
  np.testing.assert_allclose(left, right, atol=1e-3)


def test_levels_resolve_different_frequencies():
  # Level l is linear inside its cells (width 1 / (4 * 2^l)): along x, its second difference
  # vanishes except at its own grid lines. x = 3/8 is a grid line of level 1 but not of level 0.
  encoder, params = _encoder(3, num_levels=2)
  params = jax.tree.map(lambda t: t * 1e4, params)
  h = 1e-2
  xs = np.array([[3 / 8 - h, 0.3, 0.6], [3 / 8, 0.3, 0.6], [3 / 8 + h, 0.3, 0.6]], np.float32)
  out = np.asarray(encoder.apply(params, xs), np.float64)
  second = out[0] - 2 * out[1] + out[2]
  assert np.abs(second[:2]).max() < 1e-4  # Level 0 features: no kink at 3/8.
  assert np.abs(second[2:]).max() > 1e-2  # Level 1 features: a kink at 3/8.


def test_gradients_are_finite_including_grid_lines_and_borders():
  encoder, params = _encoder(4)
  points = jnp.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.25, 0.5, 0.125, 0.75],
                      [0.3, 0.6, 0.9, 0.1]], jnp.float32)
  loss = lambda p, x: jnp.sum(jnp.sin(encoder.apply(p, x) * 1e3))
  grad_params, grad_points = jax.grad(loss, argnums=(0, 1))(params, points)
  assert np.all(np.isfinite(grad_params['params']['table']))
  assert np.all(np.isfinite(grad_points))
  assert float(jnp.abs(grad_params['params']['table']).sum()) > 0


def test_rejects_too_many_dims():
  encoder = HashGridEncoding(num_levels=1, features=2, log2_table_size=8, base_resolution=4,
                             growth=2.0)
  with pytest.raises(ValueError, match='input dims'):
    encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)))
