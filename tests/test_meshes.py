"""Shared mesh utilities: edge adjacency against brute force, normals and areas by hand."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from ngd_jax import meshes

# A unit right triangle in the xy plane, counter-clockwise seen from +z.
RIGHT_TRIANGLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# The corner tetrahedron, faces wound outwards: three right triangles of area 1/2 on the axis
# planes and the slanted face of area sqrt(3)/2.
TETRAHEDRON = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
TETRAHEDRON_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _strip_with_fin():
  """A 2 x 3 grid of quads (12 faces), one face wound backwards, plus a fin on an interior edge."""
  faces = []
  for r, c in itertools.product(range(2), range(3)):
    a = 4 * r + c
    faces += [[a, a + 1, a + 5], [a, a + 5, a + 4]]
  faces[3] = faces[3][::-1]
  faces.append([1, 5, 12])  # Edge (1, 5) is now shared by three faces.
  return np.array(faces)


def test_edge_adjacency_against_brute_force():
  faces = _strip_with_fin()
  adjacency = meshes.edge_adjacency(faces)
  users = {}  # Undirected edge -> [(face, j)], edge j = (face[j], face[j + 1]).
  for f, j in itertools.product(range(len(faces)), range(3)):
    start, end = faces[f][j], faces[f][(j + 1) % 3]
    users.setdefault((min(start, end), max(start, end)), []).append((f, j))
  assert [tuple(e) for e in adjacency.edges] == sorted(users)
  for e, edge in enumerate(adjacency.edges):
    half_edges = users[tuple(edge)]
    assert adjacency.face_count[e] == len(half_edges)
    assert adjacency.forward_count[e] == sum(faces[f][j] == edge[0] for f, j in half_edges)
    for f, j in half_edges:
      assert adjacency.face_edge[f, j] == e
  shared = [users[edge] for edge in sorted(users) if len(users[edge]) == 2]
  assert [tuple(p) for p in adjacency.pairs] == [(f, g) for (f, _), (g, _) in shared]
  expected = np.full(faces.shape, -1)
  for (f, i), (g, j) in shared:
    expected[f, i], expected[g, j] = faces[g][(j + 2) % 3], faces[f][(i + 2) % 3]
  np.testing.assert_array_equal(adjacency.opposite, expected)
  # A 2 x 3 grid of quads has 13 interior edges, one of them, (1, 5), now non-manifold.
  assert len(adjacency.pairs) == 12 and adjacency.face_count.max() == 3


def test_edge_adjacency_of_no_faces():
  adjacency = meshes.edge_adjacency(np.zeros((0, 3), np.int32))
  assert adjacency.edges.shape == (0, 2) and adjacency.pairs.shape == (0, 2)
  assert adjacency.opposite.shape == (0, 3)


def test_right_triangle_normal_and_area():
  faces = np.array([[0, 1, 2]])
  np.testing.assert_array_equal(meshes.face_normals(RIGHT_TRIANGLE, faces), [[0.0, 0.0, 1.0]])
  np.testing.assert_array_equal(meshes.face_areas(RIGHT_TRIANGLE, faces), [0.5])
  np.testing.assert_array_equal(meshes.vertex_normals(RIGHT_TRIANGLE, faces), np.eye(3)[[2, 2, 2]])


def test_tetrahedron_normals_and_areas():
  normals = meshes.face_normals(TETRAHEDRON, TETRAHEDRON_FACES)
  np.testing.assert_array_equal(normals, [[0, 0, -1], [0, -1, 0], [-1, 0, 0], [1, 1, 1]])
  np.testing.assert_allclose(meshes.face_areas(TETRAHEDRON, TETRAHEDRON_FACES),
                             [0.5, 0.5, 0.5, np.sqrt(3) / 2], rtol=1e-15)
  # The origin sums its three axis faces; vertex 1 two of them and the slanted one, (1, 0, 0).
  vertex = meshes.vertex_normals(TETRAHEDRON, TETRAHEDRON_FACES)
  np.testing.assert_allclose(vertex[0], -np.ones(3) / np.sqrt(3), rtol=1e-15)
  np.testing.assert_array_equal(vertex[1], [1.0, 0.0, 0.0])
  # The origin is a corner of the three axis faces only; vertex 1 of two of them and the slanted one.
  areas = meshes.vertex_areas(TETRAHEDRON, TETRAHEDRON_FACES)
  np.testing.assert_allclose(areas[:2], [0.5, (1.0 + np.sqrt(3) / 2) / 3], rtol=1e-15)
  np.testing.assert_allclose(areas.sum(), 1.5 + np.sqrt(3) / 2, rtol=1e-15)


def test_host_arrays_keep_float64():
  # Edges of 1e-9 next to coordinates of 1: float32 would lose the area entirely.
  vertices = RIGHT_TRIANGLE * 1e-9 + 1.0
  area = meshes.face_areas(vertices, np.array([[0, 1, 2]]))
  assert isinstance(area, np.ndarray) and area.dtype == np.float64
  np.testing.assert_allclose(area, [0.5e-18], rtol=1e-6)


def test_jax_arrays_match_host_and_trace():
  vertices = np.random.default_rng(0).random((4, 3))
  host = meshes.vertex_normals(vertices, TETRAHEDRON_FACES)
  traced = jax.jit(meshes.vertex_normals)(jnp.asarray(vertices, jnp.float32), TETRAHEDRON_FACES)
  assert isinstance(traced, jax.Array)
  np.testing.assert_allclose(traced, host, atol=1e-6)


def test_unit_vectors_fallback_and_finite_gradient():
  vectors = np.array([[3.0, 0.0, 4.0], [0.0, 0.0, 0.0], [1e-11, 0.0, 0.0]])
  np.testing.assert_array_equal(meshes.unit_vectors(vectors, fallback=(0.0, 0.0, 1.0)),
                                [[0.6, 0.0, 0.8], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
  np.testing.assert_array_equal(meshes.unit_vectors(vectors, min_squared_length=1e-20)[2], 0.0)
  gradient = jax.grad(lambda v: meshes.unit_vectors(v).sum())(jnp.asarray(vectors[:2], jnp.float32))
  assert np.all(np.isfinite(gradient))
  # A vertex of no face gets the fallback.
  points = np.concatenate([TETRAHEDRON, [[5.0, 5.0, 5.0]]])
  np.testing.assert_array_equal(meshes.vertex_normals(points, TETRAHEDRON_FACES)[4], 0.0)
  np.testing.assert_array_equal(
      meshes.vertex_normals(points, TETRAHEDRON_FACES, fallback=(0.0, 0.0, 1.0))[4], [0, 0, 1])
