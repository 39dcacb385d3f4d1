"""Host: numpy mesh utilities shared by render, geometry, remesh and export.

The edge adjacency is host-only (numpy, once per topology). The normal and area formulas compute
in the namespace of their inputs: numpy for host meshes, so float64 stays float64 without jax's
x64 mode, and jax.numpy as soon as one input is a jax array or tracer, so they run under jit and
grad.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int
import numpy as np

# Arrays of either namespace; the formulas answer in the namespace they were given.
AnyArray = Array | np.ndarray


class EdgeAdjacency(NamedTuple):
  """The edges of a triangle mesh and the faces on either side of each.

  Edge j of a face is (face[j], face[(j + 1) % 3]), the edge opposite its vertex (j + 2) % 3.
  """

  edges: Int[np.ndarray, 'E 2']  # Unique undirected edges, endpoints ascending, rows sorted.
  face_edge: Int[np.ndarray, 'F 3']  # Row of `edges` of edge j of each face.
  face_count: Int[np.ndarray, 'E']  # Faces with the edge: 1 boundary, 2 interior, 3+ non-manifold.
  forward_count: Int[np.ndarray, 'E']  # Of those, the faces going from edges[:, 0] to [:, 1].
  pairs: Int[np.ndarray, 'P 2']  # Faces of each edge with face_count 2 (edge order, lower first).
  opposite: Int[np.ndarray, 'F 3']  # Across edge j, the other face's third vertex, or -1.


def edge_adjacency(faces: Int[np.ndarray, 'F 3']) -> EdgeAdjacency:
  """Host: edges, the faces that share them and the vertex across each shared edge, in one sort.

  Vertex ids are taken as given: a face with a repeated vertex has a degenerate edge and shares it
  like any other, so callers that must skip padding faces (0, 0, 0) pass only the real faces.
  """
  faces = np.asarray(faces, np.int64)
  start = faces.reshape(-1)
  end = np.roll(faces, -1, axis=1).reshape(-1)
  low, high = np.minimum(start, end), np.maximum(start, end)
  base = int(high.max(initial=0)) + 1
  keys, inverse, face_count = np.unique(low * base + high, return_inverse=True,
                                        return_counts=True)
  forward_count = np.bincount(inverse[start <= end], minlength=len(keys))
  # Half-edges 3 f + j grouped by edge (face order within an edge), two per shared edge.
  order = np.argsort(inverse, kind='stable')
  shared = order[face_count[inverse[order]] == 2].reshape(-1, 2)
  third = start[shared - shared % 3 + (shared + 2) % 3]
  opposite = np.full(start.shape, -1, np.int64)
  opposite[shared[:, 0]] = third[:, 1]
  opposite[shared[:, 1]] = third[:, 0]
  return EdgeAdjacency(np.stack([keys // base, keys % base], axis=1), inverse.reshape(-1, 3),
                       face_count, forward_count, shared // 3, opposite.reshape(-1, 3))


def _namespace(*arrays):
  """jax.numpy when any argument is a jax array or tracer, else numpy."""
  return jnp if any(isinstance(array, jax.Array) for array in arrays) else np


def face_normals(vertices: Float[AnyArray, 'V 3'],
                 faces: Int[AnyArray, 'F 3']) -> Float[AnyArray, 'F 3']:
  """Area-weighted face normals (x1 - x0) x (x2 - x0): length twice the area, 0 if degenerate.

  They point to the side from which the face's corners run counter-clockwise.
  """
  xp = _namespace(vertices, faces)
  corners = xp.asarray(vertices)[faces]
  return xp.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def face_areas(vertices: Float[AnyArray, 'V 3'],
               faces: Int[AnyArray, 'F 3']) -> Float[AnyArray, 'F']:
  """Face areas, half the length of face_normals (no finite gradient at degenerate faces)."""
  normals = face_normals(vertices, faces)
  xp = _namespace(normals)
  return 0.5 * xp.sqrt(xp.sum(normals * normals, axis=-1))


def vertex_areas(vertices: Float[np.ndarray, 'V 3'], faces: Int[np.ndarray, 'F 3']) -> Float[np.ndarray, 'V']:
  """Host: each vertex's share of the surface, a third of the area of every face it is a corner of."""
  faces = np.asarray(faces)
  return np.bincount(faces.reshape(-1), np.repeat(face_areas(np.asarray(vertices), faces) / 3.0, 3),
                     minlength=len(vertices))


def unit_vectors(vectors: Float[AnyArray, 'N 3'], min_squared_length: float = 0.0,
                 fallback: float | tuple[float, ...] = 0.0) -> Float[AnyArray, 'N 3']:
  """Rows scaled to length 1; rows of squared length at most min_squared_length get `fallback`.

  The square root never sees those rows, so gradients stay finite where a row is 0.
  """
  xp = _namespace(vectors)
  squared = xp.sum(vectors * vectors, axis=-1, keepdims=True)
  kept = squared > min_squared_length
  return xp.where(kept, vectors / xp.sqrt(xp.where(kept, squared, 1.0)),
                  xp.asarray(fallback, dtype=vectors.dtype))


def vertex_normals(vertices: Float[AnyArray, 'V 3'], faces: Int[AnyArray, 'F 3'],
                   fallback: float | tuple[float, ...] = 0.0) -> Float[AnyArray, 'V 3']:
  """Area-weighted unit vertex normals: each vertex's sum of face_normals, scaled to length 1.

  Vertices of no face, or of degenerate faces only (padding), get `fallback`.
  """
  normals = face_normals(vertices, faces)
  xp = _namespace(normals)
  corner_vertex = xp.asarray(faces).reshape(-1)
  corner_normal = xp.repeat(normals, 3, axis=0)
  if xp is np:
    sums = np.zeros((len(vertices), 3), normals.dtype)
    np.add.at(sums, corner_vertex, corner_normal)
  else:
    sums = jnp.zeros((len(vertices), 3), normals.dtype).at[corner_vertex].add(corner_normal)
  return unit_vectors(sums, fallback=fallback)
