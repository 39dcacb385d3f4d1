"""Host: orient a garment template so every face's normal points away from the body.

The renderer is one-sided (docs/method.md section 3: diffuse = clamp(n . towards camera), front-facing
= diffuse > 0), so a template wound the other way renders as its own back side and the fit turns
the garment inside out. User templates and meshes from other tools come wound either way; this
module makes the winding consistent across each connected piece (breadth-first over shared
edges) and then picks each piece's side by an area-weighted vote of its faces: a face's normal
should point along the direction from the nearest point of the body's surface to the face
centre (the garment surrounds the body).
"""

import logging
from typing import NamedTuple

import gpytoolbox
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from ngd_jax import errors
from ngd_jax import meshes


class TemplateError(errors.UserError, ValueError):
  """A template mesh that cannot be used; the message names the problem and the fix."""


class Oriented(NamedTuple):
  faces: np.ndarray  # int32 [F, 3], counter-clockwise seen from outside the body.
  num_flipped: int  # Faces whose winding was reversed.


class FacePairs(NamedTuple):
  """The pairs of faces that share an edge (interior edges of a manifold mesh)."""

  first: np.ndarray  # int64 [E]
  second: np.ndarray  # int64 [E]
  same_direction: np.ndarray  # bool [E]: both faces traverse the edge the same way (inconsistent winding).


def face_pairs(faces: np.ndarray) -> FacePairs:
  """Host: the face pairs sharing an edge and whether they traverse it in the same direction.

  Raises TemplateError on an edge shared by more than two faces (not orientable as a surface).
  """
  adjacency = meshes.edge_adjacency(faces)
  counts = adjacency.face_count
  if counts.max(initial=0) > 2:
    raise TemplateError(f'{int(np.sum(counts > 2))} edge(s) shared by more than two faces: the template is '
                        'not a manifold surface; remove the extra faces (e.g. fins) before use.')
  # Two faces traverse an edge the same way when both or neither go forward along it.
  same_direction = adjacency.forward_count[counts == 2] != 1
  return FacePairs(adjacency.pairs[:, 0], adjacency.pairs[:, 1], same_direction)


def orient_outward(vertices: np.ndarray, faces: np.ndarray, body_vertices: np.ndarray,
                   body_faces: np.ndarray, name: str = 'template') -> Oriented:
  """Host: faces of `vertices` wound consistently with normals pointing away from the body.

  Args:
    vertices: float [V, 3] template in the body's rest space.
    faces: int [F, 3].
    body_vertices: float [Vb, 3] body rest surface (same space).
    body_faces: int [Fb, 3] its faces.
    name: how to call the mesh in messages (e.g. its file path).
  Raises:
    TemplateError: a non-manifold edge, or a piece that cannot be wound consistently (a Moebius
      strip-like surface).
  """
  faces = np.asarray(faces, np.int64)
  vertices = np.asarray(vertices, np.float64)
  first, second, same = face_pairs(faces)
  num_faces = len(faces)
  graph = scipy.sparse.coo_matrix((np.ones(len(first)), (first, second)), shape=(num_faces, num_faces))
  graph = (graph + graph.T).tocsr()
  # Flip parity across each shared edge: faces traversing it in the same direction disagree.
  parity = scipy.sparse.coo_matrix((same.astype(np.int8) + 1, (first, second)), shape=(num_faces, num_faces))
  parity = (parity + parity.T).tocsr()
  num_pieces, piece = scipy.sparse.csgraph.connected_components(graph, directed=False)
  flip = np.zeros(num_faces, bool)
  for root in np.unique(piece, return_index=True)[1]:
    order, predecessor = scipy.sparse.csgraph.breadth_first_order(graph, root, directed=False)
    for f in order[1:]:
      p = predecessor[f]
      flip[f] = flip[p] ^ (parity[f, p] == 2)
  if np.any((flip[first] ^ flip[second]) != same):
    raise TemplateError(f'{name}: the faces cannot be wound consistently (a non-orientable piece); '
                        'give a template that is an orientable surface.')
  oriented = np.where(flip[:, None], faces[:, ::-1], faces)
  area_normals = meshes.face_normals(vertices, oriented)
  centres = vertices[oriented].mean(axis=1)
  body_vertices = np.asarray(body_vertices, np.float64)
  _, nearest_face, barycentric = gpytoolbox.squared_distance(
      centres, body_vertices, np.asarray(body_faces, np.int64), use_cpp=True)
  away = centres - np.einsum('nk,nkd->nd', barycentric, body_vertices[np.asarray(body_faces)[nearest_face]])
  vote = np.einsum('fi,fi->f', area_normals, away / np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-12))
  inward = np.bincount(piece, weights=vote, minlength=num_pieces) < 0
  flip ^= inward[piece]
  oriented = np.where(flip[:, None], faces[:, ::-1], faces).astype(np.int32)
  num_flipped = int(flip.sum())
  if num_flipped:
    logging.warning('%s: %d of %d faces were wound towards the body and have been reversed.', name, num_flipped,
                    num_faces)
  return Oriented(oriented, num_flipped)
