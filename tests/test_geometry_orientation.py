"""Template orientation: consistent winding, outward side chosen by the body, clear refusals."""

import numpy as np
import pytest
import trimesh
from test_remesh_refine import tube_mesh

from ngd_jax import geometry


def _body():
  """A closed cylinder (radius 0.15, the tube's axis) standing in for the body's rest surface."""
  body = trimesh.creation.cylinder(radius=0.15, height=1.0, sections=32)
  body.apply_translation((0.0, 0.0, 0.3))
  return np.asarray(body.vertices), np.asarray(body.faces)


def _outward_fraction(vertices, faces):
  """Share of faces whose normal points away from the tube axis (z)."""
  corners = vertices[faces]
  normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  radial = corners.mean(axis=1) * np.array([1.0, 1.0, 0.0])
  return np.mean(np.einsum('fi,fi->f', normals, radial) > 0)


def test_outward_tube_is_kept():
  vertices, faces = tube_mesh()
  assert _outward_fraction(vertices, faces) == 1.0
  oriented = geometry.orient_outward(vertices, faces, *_body())
  np.testing.assert_array_equal(oriented.faces, faces)
  assert oriented.num_flipped == 0


def test_inward_tube_is_reversed():
  vertices, faces = tube_mesh()
  oriented = geometry.orient_outward(vertices, faces[:, ::-1], *_body())
  assert oriented.num_flipped == len(faces)
  assert _outward_fraction(vertices, oriented.faces) == 1.0


def test_mixed_winding_is_made_consistent_and_outward():
  vertices, faces = tube_mesh()
  rng = np.random.default_rng(0)
  flipped = rng.random(len(faces)) < 0.4
  mixed = np.where(flipped[:, None], faces[:, ::-1], faces)
  oriented = geometry.orient_outward(vertices, mixed, *_body())
  assert oriented.num_flipped == int(flipped.sum())
  np.testing.assert_array_equal(oriented.faces, faces)


def test_two_pieces_are_oriented_independently():
  vertices, faces = tube_mesh()
  other = vertices * np.array([1.3, 1.3, 1.0])  # A second, wider tube around the same body.
  both_vertices = np.concatenate([vertices, other])
  both_faces = np.concatenate([faces, faces[:, ::-1] + len(vertices)])
  oriented = geometry.orient_outward(both_vertices, both_faces, *_body())
  assert oriented.num_flipped == len(faces)
  assert _outward_fraction(both_vertices, oriented.faces) == 1.0


def test_moebius_strip_is_refused():
  around = 24
  angle = np.linspace(0.0, 2 * np.pi, around, endpoint=False)
  centre = 0.3 * np.stack([np.cos(angle), np.sin(angle), np.zeros(around)], axis=1)
  half_width = 0.05 * np.stack([np.cos(angle / 2) * np.cos(angle), np.cos(angle / 2) * np.sin(angle),
                                np.sin(angle / 2)], axis=1)
  vertices = np.concatenate([centre - half_width, centre + half_width])
  faces = []
  for i in range(around):
    j = (i + 1) % around
    # The last quad joins the strip's two sides crosswise: a half twist.
    a, b, c, d = (i, j, i + around, j + around) if j else (i, j + around, i + around, j)
    faces += [(a, b, d), (a, d, c)]
  with pytest.raises(geometry.TemplateError, match='cannot be wound consistently'):
    geometry.orient_outward(vertices, np.array(faces), *_body(), name='strip.obj')


def test_fin_edge_is_refused():
  vertices, faces = tube_mesh()
  fin_vertex = vertices[faces[0]].mean(axis=0) + np.array([0.0, 0.0, 0.05])
  fin = np.array([[faces[0][1], faces[0][2], len(vertices)]])  # An interior edge: a third face.
  with pytest.raises(geometry.TemplateError, match='shared by more than two faces'):
    geometry.orient_outward(np.concatenate([vertices, fin_vertex[None]]), np.concatenate([faces, fin]), *_body())


def test_face_pairs_of_a_tube():
  vertices, faces = tube_mesh(around=8, rows=3)
  pairs = geometry.face_pairs(faces)
  # The reference: trimesh's face adjacency (pairs of faces sharing an edge).
  edges = trimesh.Trimesh(vertices, faces, process=False).face_adjacency
  assert len(pairs.first) == len(edges)
  assert {tuple(sorted(p)) for p in zip(pairs.first, pairs.second)} == {tuple(sorted(e)) for e in edges}
  assert not pairs.same_direction.any()
