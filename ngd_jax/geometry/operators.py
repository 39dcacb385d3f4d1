"""Mesh operators of the Poisson system (docs/method.md section 2, docs/design.md sections 5 and 6).

Per face f with vertices (x_0, x_1, x_2), counter-clockwise seen from the front, the hat function
B_k of its k-th vertex has the constant in-plane gradient grad_basis[f, k] = n x e_k / (2 A_f),
e_k the edge opposite vertex k. The gradient operator G (3F x V, row 3 f + j, j the rest axis)
stacks them, so that G V gives J[f][i, j] = d x_i / d r_j (WORKSPACE.md convention).

Poisson system: L x = G^T M J with L = G^T M G and M = 2 A_f repeated per axis. L is singular
(one constant per connected component): the first vertex of each component is pinned at its rest
position (identity row and column, the known value moved to the right-hand side); padding
vertices are pinned too. The solve's result is then translated so that a weighted mean of its
vertices stays where it is on the template ("anchor"), so global translation is never learned
(docs/method.md section 2). The paper's weights are uniform (the vertex centroid); by default the
pipeline anchors the garment's top band instead, where it hangs from (pipeline.anchor_weights).

Sparse arrays have fixed padded sizes that depend only on the capacities, so that a jitted step
does not retrace when the topology changes within a capacity bucket (docs/design.md section 6).
"""

import hashlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from ngd_jax import meshes
from ngd_jax import padding


class DenseInverse(NamedTuple):
  """What the 'dense' Poisson solver keeps per topology (built by poisson.attach_dense_inverse).

  Attributes:
    inverse: float32 [Vc, Vc], inverse of the pinned system from its float32 Cholesky factor
      (padding vertices are pinned, so the padded system is positive definite).
    row_sums: float32 [Vc], row sums of the pinned system computed in float64: 0 up to rounding
      except next to the pins, 1 at pinned rows. The refinement residual needs them exact
      (poisson.py).
  """

  inverse: jax.Array
  row_sums: jax.Array


class PoissonOperators(NamedTuple):
  """Operators of one topology, padded to capacities (Vc vertices, Fc faces, nnz entries).

  Attributes:
    faces: int32 [Fc, 3]; padding faces are (0, 0, 0).
    grad_basis: float32 [Fc, 3, 3], grad_basis[f, k, j] = d B_k / d r_j; 0 for padding faces.
    double_area: float32 [Fc], 2 A_f (the weight M of the face); 0 for padding faces.
    face_mask: bool [Fc], real faces.
    vertex_mask: bool [Vc], real vertices.
    rows, cols: int32 [nnz], COO indices of the pinned system matrix, sorted by row; padding
      entries are (Vc - 1, 0) with value 0.
    values: float32 [nnz], its values (L with pinned rows/columns replaced by the identity).
    diagonal: float32 [Vc], diagonal of the pinned system matrix (Jacobi preconditioner).
    pinned: bool [Vc], vertices held fixed in the solve.
    pin_rhs: float32 [Vc, 3], constant part of the right-hand side: rest position at pinned rows,
      minus L[i, pinned] @ rest[pinned] at free rows.
    pin_of_vertex: int32 [Vc], the pinned vertex of each vertex's connected component (for warm
      starts: a previous solution is shifted so that it agrees with the pins).
    rest_vertices: float32 [Vc, 3], template rest positions; padding rows copy vertex 0.
    anchor_weights: float32 [Vc], weights of the vertices whose weighted mean the solve keeps in
      place; sum to 1, 0 on padding (uniform over real vertices: the paper's vertex centroid).
    anchor: float32 [3], that weighted mean on the template.
    topology_key: int32 [2], content hash of (rest vertices, faces, capacities); keys the host
      Cholesky factor (see poisson.py).
    dense_inverse: the 'dense' solver's data (poisson.attach_dense_inverse), None without it.
  """

  faces: jax.Array
  grad_basis: jax.Array
  double_area: jax.Array
  face_mask: jax.Array
  vertex_mask: jax.Array
  rows: jax.Array
  cols: jax.Array
  values: jax.Array
  diagonal: jax.Array
  pinned: jax.Array
  pin_rhs: jax.Array
  pin_of_vertex: jax.Array
  rest_vertices: jax.Array
  anchor_weights: jax.Array
  anchor: jax.Array
  topology_key: jax.Array
  dense_inverse: DenseInverse | None = None


class HostSystem(NamedTuple):
  """Host: the float64 pieces of one topology's Poisson system (unpadded sizes V, F)."""

  gradient: scipy.sparse.csr_matrix  # [3F, V] float64, row 3 f + j.
  double_area: np.ndarray  # [F] float64.
  laplacian: scipy.sparse.csr_matrix  # [V, V] float64, L = G^T M G.


def _validate_mesh(rest_vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: checks shapes, finiteness and index range; returns float64 and int64 copies."""
  vertices = np.asarray(rest_vertices, dtype=np.float64)
  faces = np.asarray(faces)
  if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
    raise ValueError(f'rest_vertices must have shape [V, 3] with V > 0, got {vertices.shape}.')
  if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
    raise ValueError(f'faces must have shape [F, 3] with F > 0, got {faces.shape}.')
  if not np.issubdtype(faces.dtype, np.integer):
    raise ValueError(f'faces must be integer vertex indices, got dtype {faces.dtype}.')
  if not np.all(np.isfinite(vertices)):
    raise ValueError('rest_vertices contain non-finite values; clean the template first.')
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise ValueError(
        f'faces index vertices outside [0, {len(vertices)}): range [{faces.min()}, {faces.max()}].')
  return vertices, faces.astype(np.int64)


def face_gradient_basis(rest_vertices: np.ndarray,
                        faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: per-face hat-function gradients [F, 3, 3] and doubled areas [F], float64.

  Degenerate faces (zero area) get zero gradients; their weight 2A is 0, so they drop out of L.
  """
  vertices, faces = _validate_mesh(rest_vertices, faces)
  corners = vertices[faces]  # [F, 3 (k), 3]
  normal = meshes.face_normals(vertices, faces)  # Length: twice the face's area.
  double_area = np.linalg.norm(normal, axis=-1)
  safe = np.where(double_area > 0, double_area, 1.0)
  unit_normal = meshes.unit_vectors(normal)
  opposite = np.roll(corners, -1, axis=1)  # e_k = x_{k+2} - x_{k+1}
  edges = np.roll(corners, -2, axis=1) - opposite
  basis = np.cross(unit_normal[:, None, :], edges) / safe[:, None, None]
  basis[double_area <= 0] = 0.0
  return basis, double_area


def host_system(rest_vertices: np.ndarray, faces: np.ndarray) -> HostSystem:
  """Host: float64 G (3F x V), 2A per face and L = G^T M G, unpadded."""
  vertices, faces = _validate_mesh(rest_vertices, faces)
  basis, double_area = face_gradient_basis(vertices, faces)
  num_faces, num_vertices = len(faces), len(vertices)
  rows = (3 * np.arange(num_faces)[:, None, None] + np.arange(3)[None, None, :])  # [F, 1, 3 (j)]
  rows = np.broadcast_to(rows, (num_faces, 3, 3))
  cols = np.broadcast_to(faces[:, :, None], (num_faces, 3, 3))
  gradient = scipy.sparse.csr_matrix(
      (basis.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * num_faces, num_vertices))
  weight = scipy.sparse.diags(np.repeat(double_area, 3))
  laplacian = (gradient.T @ weight @ gradient).tocsr()
  laplacian.sum_duplicates()
  return HostSystem(gradient, double_area, laplacian)


def _pin_vertices(laplacian: scipy.sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
  """Host: pinned mask and, per vertex, the pinned (lowest-index) vertex of its component."""
  graph = laplacian.copy()
  graph.setdiag(0)
  graph.eliminate_zeros()
  _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
  first = np.full(labels.max() + 1, len(labels))
  np.minimum.at(first, labels, np.arange(len(labels)))
  pin_of_vertex = first[labels]
  pinned = pin_of_vertex == np.arange(len(labels))
  return pinned, pin_of_vertex


def _nnz_capacity(vertex_capacity: int, face_capacity: int, nnz: int) -> int:
  """Host: padded entry count, a function of the capacities only.

  Each edge gives 2 off-diagonal entries. An edge-manifold mesh has E = (3F + B) / 2 edges with
  B <= V boundary edges, hence V + 3F + V entries; meshes with non-manifold vertices (B > V)
  fall back to the always-safe V + 6F (a second bucket of the same capacities).
  """
  manifold_bound = 2 * vertex_capacity + 3 * face_capacity
  return manifold_bound if nnz <= manifold_bound else vertex_capacity + 6 * face_capacity


def topology_key(rest_vertices: np.ndarray, faces: np.ndarray, vertex_capacity: int,
                 face_capacity: int) -> np.ndarray:
  """Host: int32 [2] content hash identifying a padded topology (and its rest metric)."""
  digest = hashlib.blake2b(digest_size=8)
  digest.update(np.ascontiguousarray(rest_vertices, dtype=np.float64).tobytes())
  digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
  digest.update(np.array([vertex_capacity, face_capacity], dtype=np.int64).tobytes())
  return np.frombuffer(digest.digest(), dtype=np.int32).copy()


class PinnedSystem(NamedTuple):
  """Host: the padded Poisson system with one vertex per connected piece (and padding) pinned."""

  matrix: scipy.sparse.csr_matrix  # float64 [Vc, Vc]: identity rows and columns where pinned.
  pin_rhs: np.ndarray  # float64 [Vc, 3]: the pinned values, moved to the right-hand side.
  pinned: np.ndarray  # bool [Vc]
  pin_of_vertex: np.ndarray  # int [Vc]: the pinned vertex of each vertex's piece.


def pinned_system(rest_vertices: np.ndarray, faces: np.ndarray, vertex_capacity: int) -> PinnedSystem:
  """Host: the float64 pinned system of a template padded to vertex_capacity."""
  vertices, faces = _validate_mesh(rest_vertices, faces)
  num_vertices = len(vertices)
  laplacian = host_system(vertices, faces).laplacian
  padded = scipy.sparse.block_diag(
      [laplacian, scipy.sparse.csr_matrix((vertex_capacity - num_vertices,) * 2)]).tocsr()
  pinned, pin_of_vertex = _pin_vertices(padded)
  # A vertex whose faces all have zero area has an empty row: pin it as well.
  isolated = np.asarray(padded.diagonal()) <= 0
  pinned |= isolated
  pin_of_vertex[isolated] = np.arange(vertex_capacity)[isolated]
  rest = padding.pad_vertex_rows(vertices, vertex_capacity)
  pin_values = np.where(pinned[:, None], rest, 0.0)
  free = ~pinned
  pin_rhs = np.where(pinned[:, None], rest, -(padded @ pin_values))
  keep = scipy.sparse.diags(free.astype(np.float64))
  system = (keep @ padded @ keep + scipy.sparse.diags(pinned.astype(np.float64))).tocsr()
  system.eliminate_zeros()
  system.sort_indices()
  return PinnedSystem(system, pin_rhs, pinned, pin_of_vertex)


def build_operators(rest_vertices: np.ndarray,
                    faces: np.ndarray,
                    vertex_capacity: int | None = None,
                    face_capacity: int | None = None,
                    anchor_weights: np.ndarray | None = None) -> PoissonOperators:
  """Host: assembles the padded operators of a template (float64 on host, float32 out).

  Args:
    rest_vertices: [V, 3] template rest positions (metres).
    faces: int [F, 3] counter-clockwise triangles.
    vertex_capacity: padded vertex count Vc >= V (default V).
    face_capacity: padded face count Fc >= F (default F).
    anchor_weights: [V] non-negative weights of the translation anchor (normalised here);
      default uniform, the vertex centroid of the paper.

  Returns:
    PoissonOperators whose array shapes depend only on (Vc, Fc) (and, for meshes with
    non-manifold vertices, on a larger fixed entry bound; see _nnz_capacity).
  """
  vertices, faces = _validate_mesh(rest_vertices, faces)
  num_vertices, num_faces = len(vertices), len(faces)
  vertex_capacity = num_vertices if vertex_capacity is None else int(vertex_capacity)
  face_capacity = num_faces if face_capacity is None else int(face_capacity)
  if vertex_capacity < num_vertices or face_capacity < num_faces:
    raise ValueError(
        f'Capacities ({vertex_capacity} vertices, {face_capacity} faces) are smaller than the '
        f'mesh ({num_vertices}, {num_faces}); pass capacities >= the mesh size.')
  basis, double_area = face_gradient_basis(vertices, faces)
  system, pin_rhs, pinned, pin_of_vertex = pinned_system(vertices, faces, vertex_capacity)
  coo = system.tocoo()
  nnz_capacity = _nnz_capacity(vertex_capacity, face_capacity, coo.nnz)
  pad_entries = nnz_capacity - coo.nnz
  rows = np.concatenate([coo.row, np.full(pad_entries, vertex_capacity - 1)])
  cols = np.concatenate([coo.col, np.zeros(pad_entries, np.int64)])
  values = np.concatenate([coo.data, np.zeros(pad_entries)])
  rest = padding.pad_vertex_rows(vertices, vertex_capacity)
  weights = np.ones(num_vertices) if anchor_weights is None else np.asarray(anchor_weights, np.float64)
  if weights.shape != (num_vertices,) or not np.all(weights >= 0) or not weights.sum() > 0:
    raise ValueError(f'anchor_weights must be [{num_vertices}] non-negative with a positive sum.')
  weights = weights / weights.sum()
  return PoissonOperators(
      faces=jnp.asarray(padding.pad_rows(faces, face_capacity), jnp.int32),
      grad_basis=jnp.asarray(padding.pad_rows(basis, face_capacity), jnp.float32),
      double_area=jnp.asarray(padding.pad_rows(double_area, face_capacity), jnp.float32),
      face_mask=jnp.asarray(np.arange(face_capacity) < num_faces),
      vertex_mask=jnp.asarray(np.arange(vertex_capacity) < num_vertices),
      rows=jnp.asarray(rows, jnp.int32),
      cols=jnp.asarray(cols, jnp.int32),
      values=jnp.asarray(values, jnp.float32),
      diagonal=jnp.asarray(system.diagonal(), jnp.float32),
      pinned=jnp.asarray(pinned),
      pin_rhs=jnp.asarray(pin_rhs, jnp.float32),
      pin_of_vertex=jnp.asarray(pin_of_vertex, jnp.int32),
      rest_vertices=jnp.asarray(rest, jnp.float32),
      anchor_weights=jnp.asarray(padding.pad_rows(weights, vertex_capacity), jnp.float32),
      anchor=jnp.asarray(weights @ vertices, jnp.float32),
      topology_key=jnp.asarray(topology_key(vertices, faces, vertex_capacity, face_capacity)),
  )


def jacobians(operators: PoissonOperators, vertices: jax.Array) -> jax.Array:
  """Per-face Jacobians G V: float32 [Fc, 3, 3], J[f][i, j] = d x_i / d r_j.

  Of the template itself this is the tangent projector I - n n^T per face (docs/method.md section 2);
  padding faces give 0. Differentiable w.r.t. vertices [Vc, 3].
  """
  corners = vertices[operators.faces]  # [Fc, 3 (k), 3 (i)]
  return jnp.einsum('fki,fkj->fij', corners, operators.grad_basis)


def poisson_rhs(operators: PoissonOperators, jacobians_: jax.Array) -> jax.Array:
  """G^T M J as [Vc, 3]: rows of vertex v, columns the deformed axes i. Linear in jacobians."""
  weighted = jacobians_ * operators.double_area[:, None, None]
  per_corner = jnp.einsum('fkj,fij->fki', operators.grad_basis, weighted)
  num_vertices = operators.vertex_mask.shape[0]
  return jax.ops.segment_sum(
      per_corner.reshape(-1, 3), operators.faces.reshape(-1), num_segments=num_vertices)


def system_matvec(operators: PoissonOperators, x: jax.Array) -> jax.Array:
  """Pinned system matrix times x [Vc, C] (COO segment_sum, rows sorted)."""
  products = operators.values[:, None] * x[operators.cols]
  return jax.ops.segment_sum(
      products, operators.rows, num_segments=x.shape[0], indices_are_sorted=True)
