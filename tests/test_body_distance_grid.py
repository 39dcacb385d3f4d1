"""The rest body's signed distance grid: values against the exact distance, finite gradients."""

import gpytoolbox
import jax
import jax.numpy as jnp
import numpy as np
import trimesh

from ngd_jax import body


def _sphere():
  mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.2)
  return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def test_grid_matches_the_exact_signed_distance_inside_its_box():
  vertices, faces = _sphere()
  grid = body.fit_distance_grid(vertices, faces, np.full(3, -0.4), np.full(3, 0.4), 41)
  points = np.random.default_rng(0).uniform(-0.35, 0.35, (500, 3))
  exact, _, _ = gpytoolbox.signed_distance(points, vertices, faces.astype(np.int32))
  looked_up = np.asarray(body.signed_distance(grid, jnp.asarray(points, jnp.float32)))
  # Trilinear interpolation of a distance field: error below a fraction of the 2 cm spacing.
  np.testing.assert_allclose(looked_up, exact, atol=2e-3)
  assert np.all(looked_up[np.linalg.norm(points, axis=1) < 0.18] < 0)  # Negative inside.


def test_points_beyond_the_grid_are_outside_by_their_distance_to_it():
  vertices, faces = _sphere()
  grid = body.fit_distance_grid(vertices, faces, np.full(3, -0.3), np.full(3, 0.3), 21)
  edge = float(body.signed_distance(grid, jnp.array([[0.3, 0.0, 0.0]]))[0])
  beyond = float(body.signed_distance(grid, jnp.array([[0.8, 0.0, 0.0]]))[0])
  np.testing.assert_allclose(beyond, edge + 0.5, rtol=1e-5)


def test_gradient_is_finite_inside_and_points_away_from_the_body():
  vertices, faces = _sphere()
  grid = body.fit_distance_grid(vertices, faces, np.full(3, -0.4), np.full(3, 0.4), 41)
  points = jnp.array([[0.1, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.0, 0.6]])
  gradient = jax.grad(lambda p: jnp.sum(body.signed_distance(grid, p)))(points)
  assert np.all(np.isfinite(gradient))
  radial = np.asarray(points) / np.linalg.norm(points, axis=1, keepdims=True)
  assert np.all(np.sum(np.asarray(gradient) * radial, axis=1) > 0.9)
