"""Host pieces of the pipeline: the translation anchor and the padded face pairs."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ngd_jax import geometry
from ngd_jax import pipeline


def _hanging_tube(rows=9, around=16, length=0.4, radius=0.15):
  """An open cylinder along y (rest space is y up), top ring at y = 1, counter-clockwise outside."""
  angle = np.linspace(0.0, 2 * np.pi, around, endpoint=False)
  heights = 1.0 - np.linspace(0.0, length, rows)
  vertices = np.stack([np.tile(radius * np.sin(angle), rows), np.repeat(heights, around),
                       np.tile(radius * np.cos(angle), rows)], axis=-1)
  faces = []
  for j in range(rows - 1):
    for i in range(around):
      a, b = j * around + i, j * around + (i + 1) % around
      faces += [(a, a + around, b), (b, a + around, b + around)]
  return vertices, np.array(faces, np.int32)


def _anchor_config(anchor):
  config = ml_collections.ConfigDict({'geometry': {'anchor': anchor, 'anchor_width': 0.03}})
  return config


@pytest.mark.parametrize('anchor, top_moves_by', [('centroid', 0.1), ('top', 0.0)])
def test_a_lengthened_garment_hangs_from_its_top_with_the_top_anchor(anchor, top_moves_by):
  """Jacobians asking for 1.5x the length: the paper's centroid anchor lifts the waist by a quarter
  of the length (0.1 m here); the top anchor keeps it (within 5 mm: the next ring, 5 cm lower,
  still weighs exp(-(5/3)^2)) and the hem drops by half the length."""
  vertices, faces = _hanging_tube()
  weights = pipeline.anchor_weights(vertices, faces, _anchor_config(anchor))
  operators = geometry.build_operators(vertices, faces, anchor_weights=weights)
  stretch = np.diag([1.0, 1.5, 1.0])
  jacobians = stretch @ np.asarray(geometry.jacobians(operators, operators.rest_vertices))
  solved = np.asarray(geometry.poisson_solve(operators, jnp.asarray(jacobians, jnp.float32), 'cholesky'))
  top, hem = vertices[:, 1] == vertices[:, 1].max(), vertices[:, 1] == vertices[:, 1].min()
  np.testing.assert_allclose(solved[top, 1] - vertices[top, 1], top_moves_by, atol=5e-3)
  np.testing.assert_allclose(solved[hem, 1] - vertices[hem, 1], top_moves_by - 0.2, atol=5e-3)


def test_padded_face_pairs_hold_every_shared_edge_once():
  vertices, faces = _hanging_tube(rows=3, around=6)
  pairs = np.asarray(pipeline.padded_face_pairs(faces, face_capacity=40))
  assert pairs.shape == (80, 2)
  real = pairs[pairs[:, 0] != pairs[:, 1]]
  # Interior edges of a tube of 2 bands x 6 quads: 6 diagonals x 2 bands + 6 verticals x 2 + 6 between bands.
  assert len(real) == 30 and len({tuple(sorted(p)) for p in real}) == 30
  assert np.all(pairs[len(real):] == 0)
