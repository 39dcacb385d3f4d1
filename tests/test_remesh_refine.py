"""Tests of host-side refinement (docs/method.md section 6): splits, flips, guards, boundaries, schedules."""

import collections

import numpy as np
import pytest
import trimesh

from ngd_jax import meshes
from ngd_jax import remesh
from ngd_jax.remesh import refine as refine_lib


def tube_mesh(around: int = 24, rows: int = 10, radius: float = 0.2):
  """An open cylinder (skirt-like: two boundary loops), counter-clockwise seen from outside.

  Row spacing grows from 0.03 to 0.08 (m) up the tube, around the circumferential edge length
  (0.052 m at the defaults), so that a length threshold can leave one edge of a face unsplit.
  """
  angle = np.linspace(0.0, 2.0 * np.pi, around, endpoint=False)
  z = np.concatenate([[0.0], np.cumsum(np.linspace(0.03, 0.08, rows - 1))])
  vertices = np.stack([np.tile(radius * np.cos(angle), rows), np.tile(radius * np.sin(angle), rows),
                       np.repeat(z, around)], axis=-1)
  faces = []
  for j in range(rows - 1):
    for i in range(around):
      a, b = j * around + i, j * around + (i + 1) % around
      faces += [(a, b, b + around), (a, b + around, a + around)]
  return vertices, np.array(faces, np.int32)


def synthetic_scores(vertices, faces):
  """A smooth score bump on one side of the tube, touching the lower hem."""
  centre = vertices[faces].mean(axis=1)
  return np.exp(-centre[:, 2] ** 2 / 0.02) * (1.0 + np.cos(np.arctan2(centre[:, 1], centre[:, 0])))


def _area(vertices, faces):
  v = vertices[faces]
  return 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)


def _half_edges(faces):
  """Directed edges (a, b) of all faces, as a list."""
  return [(f[j], f[(j + 1) % 3]) for f in np.asarray(faces).tolist() for j in range(3)]


def _undirected_edges(faces):
  return {tuple(sorted(e)) for e in _half_edges(faces)}


def _boundary_edges(faces):
  counts = collections.Counter(tuple(sorted(e)) for e in _half_edges(faces))
  return [e for e, n in counts.items() if n == 1]


def _boundary_loops(faces):
  """Number of connected components of the boundary-edge graph (slow, obvious)."""
  parent = {}

  def find(v):
    while parent.setdefault(v, v) != v:
      v = parent[v]
    return v

  for a, b in _boundary_edges(faces):
    parent[find(a)] = find(b)
  return len({find(v) for v in parent})


def _assert_valid(result, old_vertices, old_faces):
  """Manifold, consistently oriented, non-degenerate, same topology and boundary as the input."""
  vertices, faces = result.vertices, result.faces
  directed = collections.Counter(_half_edges(faces))
  assert max(directed.values()) == 1  # No edge traversed twice the same way: manifold and oriented.
  mesh = trimesh.Trimesh(vertices, faces, process=False)
  assert mesh.is_winding_consistent
  assert np.all(refine_lib.triangle_quality(vertices, faces) > 0.05)
  euler = lambda f: len(np.unique(f)) - len(_undirected_edges(f)) + len(f)
  assert euler(faces) == euler(old_faces)
  assert _boundary_loops(faces) == _boundary_loops(old_faces)
  old_boundary = set(np.unique(_boundary_edges(old_faces)).tolist())
  new_boundary = set(np.unique(_boundary_edges(faces)).tolist())
  assert old_boundary <= new_boundary
  # Every new boundary vertex is old or the midpoint of an old boundary edge (no T-junctions:
  # a hanging midpoint would open a boundary inside the mesh and fail this).
  old_edges = {tuple(sorted(e)) for e in _boundary_edges(old_faces)}
  for v in new_boundary - old_boundary:
    assert tuple(sorted(result.vertex_parent[v])) in old_edges
  length = lambda verts, edges: sum(np.linalg.norm(verts[a] - verts[b]) for a, b in edges)
  np.testing.assert_allclose(length(vertices, _boundary_edges(faces)),
                             length(old_vertices, _boundary_edges(old_faces)), rtol=1e-12)
  # No face opposes its parent.
  parent_normal = meshes.face_normals(old_vertices, old_faces)[result.face_parent]
  assert np.all(np.einsum('fi,fi->f', meshes.face_normals(vertices, faces), parent_normal) > 0)
  report = result.report
  assert (report.flipped_faces, report.degenerate_faces, report.nonmanifold_edges) == (0, 0, 0)


def test_all_selected_small_threshold_quadruples():
  vertices, faces = tube_mesh()
  result = remesh.refine_mesh(vertices, faces, np.ones(len(faces), bool), min_edge_length=1e-4)
  num_edges = len(trimesh.Trimesh(vertices, faces, process=False).edges_unique)
  assert result.faces.shape == (4 * len(faces), 3)
  assert result.vertices.shape == (len(vertices) + num_edges, 3)
  np.testing.assert_array_equal(result.vertices[:len(vertices)], vertices)
  np.testing.assert_array_equal(np.bincount(result.face_parent), np.full(len(faces), 4))
  ends = result.vertex_parent[len(vertices):]
  np.testing.assert_allclose(result.vertices[len(vertices):],
                             0.5 * (vertices[ends[:, 0]] + vertices[ends[:, 1]]))
  np.testing.assert_allclose(np.bincount(result.face_parent, _area(result.vertices, result.faces)),
                             _area(vertices, faces), rtol=1e-10)
  assert result.report.split_edges == num_edges
  _assert_valid(result, vertices, faces)


def test_nothing_selected_or_all_edges_short_leaves_mesh_unchanged():
  vertices, faces = tube_mesh()
  for selected, threshold in ((np.zeros(len(faces), bool), 1e-4), (np.ones(len(faces), bool), 1.0)):
    result = remesh.refine_mesh(vertices, faces, selected, min_edge_length=threshold)
    np.testing.assert_array_equal(result.vertices, vertices)
    np.testing.assert_array_equal(result.faces, faces)
    np.testing.assert_array_equal(result.face_parent, np.arange(len(faces)))
    assert result.report.split_edges == 0 and result.report.flips == 0


@pytest.mark.parametrize('threshold, expected_faces', [(4.5, 2), (3.5, 3), (2.5, 4)])
def test_one_two_three_split_edges_give_two_three_four_faces(threshold, expected_faces):
  # A 3-4-5 right triangle: the threshold picks which edges are long enough to split.
  vertices = np.array([[0., 0., 0.], [4., 0., 0.], [0., 3., 0.]])
  faces = np.array([[0, 1, 2]])
  result = remesh.refine_mesh(vertices, faces, np.ones(1, bool), min_edge_length=threshold)
  assert len(result.faces) == expected_faces
  normals = meshes.face_normals(result.vertices, result.faces)
  np.testing.assert_allclose(normals / np.linalg.norm(normals, axis=1, keepdims=True),
                             [[0, 0, 1]] * expected_faces)
  np.testing.assert_allclose(_area(result.vertices, result.faces).sum(), 6.0)
  assert len(_boundary_edges(result.faces)) == 3 + (expected_faces - 1)


def test_partial_split_is_conforming_and_children_tile_parents():
  vertices, faces = tube_mesh()
  selected = remesh.select_faces(synthetic_scores(vertices, faces), 0.85)
  result = remesh.refine_mesh(vertices, faces, selected, min_edge_length=0.04, flip=False)
  children = np.bincount(result.face_parent, minlength=len(faces))
  assert set(children.tolist()) == {1, 2, 3, 4}  # All red-green patterns occur.
  np.testing.assert_allclose(np.bincount(result.face_parent, _area(result.vertices, result.faces)),
                             _area(vertices, faces), rtol=1e-10)
  # Children lie inside their parent: barycentric coordinates of their centroids in [0, 1].
  a, b, c = (vertices[faces[result.face_parent]][:, k] for k in range(3))
  centre = result.vertices[result.faces].mean(axis=1)
  for f in range(len(result.faces)):
    edges = np.stack([b[f] - a[f], c[f] - a[f]], axis=-1)
    coords = np.linalg.lstsq(edges, centre[f] - a[f], rcond=None)[0]
    assert np.all(coords > 0) and coords.sum() < 1
  _assert_valid(result, vertices, faces)


def test_flips_keep_or_improve_valence_and_never_flip_normals():
  vertices, faces = tube_mesh()
  selected = remesh.select_faces(synthetic_scores(vertices, faces), 0.85)
  split = remesh.refine_mesh(vertices, faces, selected, min_edge_length=1e-4, flip=False)
  flipped = remesh.refine_mesh(vertices, faces, selected, min_edge_length=1e-4)
  assert flipped.report.flips > 0
  np.testing.assert_array_equal(flipped.vertices, split.vertices)
  np.testing.assert_array_equal(flipped.face_parent, split.face_parent)
  deviation_split = _slow_valence_deviation(split.faces, len(split.vertices))
  deviation_final = _slow_valence_deviation(flipped.faces, len(flipped.vertices))
  assert deviation_final < deviation_split
  assert flipped.report.valence_deviation_split == deviation_split
  assert flipped.report.valence_deviation_final == deviation_final
  _assert_valid(flipped, vertices, faces)


def _union_jack(n):
  """A planar n x n grid whose cells alternate diagonals: valence-8 and valence-4 vertices."""
  x = np.arange(n + 1, dtype=np.float64)
  grid = np.meshgrid(x, x, indexing='ij')
  vertices = np.stack([*grid, np.zeros((n + 1, n + 1))], axis=-1).reshape(-1, 3)
  faces = []
  for i in range(n):
    for j in range(n):
      a, d = i * (n + 1) + j, i * (n + 1) + j + 1
      b, c = a + n + 1, d + n + 1
      faces += [(a, b, c), (a, c, d)] if (i + j) % 2 == 0 else [(a, b, d), (b, c, d)]
  return vertices, np.array(faces, np.int64)


def _slow_valence_deviation(faces, num_vertices):
  boundary = set(np.unique(_boundary_edges(faces)).tolist())
  valence = collections.Counter(v for e in _undirected_edges(faces) for v in e)
  return sum(abs(valence[v] - (4 if v in boundary else 6))
             for v in range(num_vertices) if valence[v])


def test_flip_pass_regularises_union_jack_and_guards_undo_bad_flips():
  vertices, faces = _union_jack(4)
  interior = np.array(sorted(_undirected_edges(faces) - set(_boundary_edges(faces))))
  normals = meshes.face_normals(vertices, faces)
  parent = np.arange(len(faces))
  before = _slow_valence_deviation(faces, len(vertices))
  assert remesh.valence_deviation(faces, len(vertices)) == before

  flipped = faces.copy()
  counts = refine_lib._flip_pass(vertices, flipped, parent, normals, interior, min_quality=1e-2)
  assert counts.flips > 0 and counts.undone_normal == counts.undone_degenerate == 0
  assert _slow_valence_deviation(flipped, len(vertices)) < before
  assert np.all(meshes.face_normals(vertices, flipped)[:, 2] > 0)
  assert not np.array_equal(flipped, faces)

  # Degenerate guard: every flip would give right isosceles triangles (quality 0.866) < 0.9.
  guarded = faces.copy()
  counts = refine_lib._flip_pass(vertices, guarded, parent, normals, interior, min_quality=0.9)
  assert counts.flips == 0 and counts.undone_degenerate > 0
  np.testing.assert_array_equal(guarded, faces)

  # Normal guard: parents facing -z make every flip oppose a parent's normal.
  guarded = faces.copy()
  counts = refine_lib._flip_pass(vertices, guarded, parent, -normals, interior, min_quality=1e-2)
  assert counts.flips == 0 and counts.undone_normal > 0
  np.testing.assert_array_equal(guarded, faces)


def test_check_mesh_counts_violations():
  vertices, faces = _union_jack(2)
  normals = meshes.face_normals(vertices, faces)
  parent = np.arange(len(faces))
  assert remesh.check_mesh(vertices, faces, parent, normals, 1e-2) == (0, 0, 0)
  reversed_faces = faces.copy()
  reversed_faces[0] = reversed_faces[0, ::-1]
  check = remesh.check_mesh(vertices, reversed_faces, parent, normals, 1e-2)
  assert check.flipped_faces == 1 and check.nonmanifold_edges > 0
  duplicated = np.concatenate([faces, faces[:1]])
  check = remesh.check_mesh(vertices, duplicated, np.append(parent, 0), normals, 1e-2)
  # Two interior edges now have 3 faces, and all 3 directed edges of the face appear twice.
  assert check.nonmanifold_edges == 5
  squashed = vertices.copy()
  squashed[faces[0, 0]] = 0.5 * (squashed[faces[0, 1]] + squashed[faces[0, 2]])
  assert remesh.check_mesh(squashed, faces, parent, normals, 1e-2).degenerate_faces >= 1


def test_schedules_and_selection():
  assert remesh.threshold_schedule(0, 2, 0.01, 0.007) == pytest.approx(0.01)
  assert remesh.threshold_schedule(1, 2, 0.01, 0.007) == pytest.approx(0.007)
  assert remesh.threshold_schedule(1, 3, 0.01, 0.007) == pytest.approx(0.0085)
  assert remesh.threshold_schedule(0, 1, 0.01, 0.007) == pytest.approx(0.01)
  assert remesh.quantile_schedule(0, 0.85, 0.02) == pytest.approx(0.85)
  assert remesh.quantile_schedule(2, 0.85, 0.02) == pytest.approx(0.89)
  with pytest.raises(ValueError, match='remesh_index'):
    remesh.threshold_schedule(2, 2, 0.01, 0.007)
  with pytest.raises(ValueError, match='quantile'):
    remesh.quantile_schedule(10, 0.85, 0.02)
  scores = np.arange(100.0)
  np.testing.assert_array_equal(np.flatnonzero(remesh.select_faces(scores, 0.9)),
                                np.arange(90, 100))
  assert not remesh.select_faces(np.ones(10), 0.5).any()


def test_bad_input_raises():
  vertices, faces = tube_mesh(6, 3)
  with pytest.raises(ValueError, match='unpadded'):
    remesh.refine_mesh(vertices, faces + len(vertices), np.ones(len(faces), bool), 0.0)
  with pytest.raises(ValueError, match='selected must be'):
    remesh.refine_mesh(vertices, faces, np.ones(3, bool), 0.0)
  with pytest.raises(ValueError, match='non-manifold'):
    doubled = np.concatenate([faces, faces[:1, ::-1]])
    remesh.refine_mesh(vertices, doubled, np.ones(len(doubled), bool), 0.0)
