"""The body's rest-pose signed distance, sampled on a grid, for the garment's penetration term.

The Poisson solve produces the garment in the body's rest space (docs/method.md section 2), where the
body does not move, so one grid per run answers "is this canonical garment point inside the
body?" for every frame and every step, by trilinear lookup inside jit. Posed penetration is not
the same thing (skinning bends both, not identically), but in rest space the term is static,
exact at the grid points and costs one gather per vertex: a single camera sees only the front of
a garment, and without it the unseen side is free to fold into the body (issue 11).
"""

from typing import NamedTuple

import gpytoolbox
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class DistanceGrid(NamedTuple):
  """Signed distance samples (metres; negative inside the body) on a regular grid."""

  origin: Float[Array, '3']  # Position of sample (0, 0, 0).
  spacing: Float[Array, '3']  # Distance between neighbouring samples per axis.
  values: Float[Array, 'X Y Z']


def fit_distance_grid(body_vertices: np.ndarray, body_faces: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                      resolution: int) -> DistanceGrid:
  """Host: samples the body's signed distance on resolution^3 points spanning [lower, upper].

  The sign comes from the fast winding number, so a body mesh with small holes still has a
  well-defined inside.
  """
  lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
  axes = [np.linspace(lower[k], upper[k], resolution) for k in range(3)]
  points = np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1).reshape(-1, 3)
  distance, _, _ = gpytoolbox.signed_distance(points, np.asarray(body_vertices, np.float64),
                                              np.asarray(body_faces, np.int32))
  return DistanceGrid(jnp.asarray(lower, jnp.float32), jnp.asarray((upper - lower) / (resolution - 1), jnp.float32),
                      jnp.asarray(distance.reshape((resolution,) * 3), jnp.float32))


def signed_distance(grid: DistanceGrid, points: Float[Array, 'N 3']) -> Float[Array, 'N']:
  """Trilinear signed distance at `points` (differentiable in them); points beyond the grid take
  the value at the nearest face of the grid plus their distance to it (they are outside the body)."""
  size = jnp.asarray(grid.values.shape, jnp.float32)
  position = (points - grid.origin) / grid.spacing
  inside = jnp.clip(position, 0.0, size - 1.0)
  outside_sq = jnp.sum(((position - inside) * grid.spacing) ** 2, axis=-1)
  # sqrt has an infinite slope at 0, where every point inside the grid sits: keep its gradient finite.
  beyond = jnp.where(outside_sq > 0, jnp.sqrt(jnp.where(outside_sq > 0, outside_sq, 1.0)), 0.0)
  base = jnp.clip(jnp.floor(inside), 0.0, size - 2.0)
  frac = inside - base
  index = base.astype(jnp.int32)
  value = 0.0
  for corner in range(8):
    offset = jnp.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1], jnp.int32)
    weight = jnp.prod(jnp.where(offset == 1, frac, 1.0 - frac), axis=-1)
    i = index + offset
    value = value + weight * grid.values[i[:, 0], i[:, 1], i[:, 2]]
  return value + beyond
