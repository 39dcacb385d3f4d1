"""Host-side refinement of the rest template: select, split, flip (docs/method.md section 6).

Edges are split at their midpoints when both endpoints lie in selected faces and the rest
length exceeds a threshold; faces with 1, 2 or 3 split edges become 2, 3 or 4 faces (red-green
patterns), so the mesh stays conforming. Then one pass of valence-improving flips over the
interior edges of the refined region. No collapses. Boundary edges are never flipped, so hems,
necklines and sleeves stay boundaries (a split boundary edge gives a boundary midpoint).

Guards (the paper's open problems, docs/method.md section 9): a flip that would create a
non-manifold edge, a near-zero-area triangle, or a face whose normal opposes the faces it replaces
or their parents is undone (not applied) and counted; the final mesh is checked again and the
counts reported.
"""

import math
from typing import NamedTuple

import numpy as np

from ngd_jax import meshes

# Boundary vertices are regular at valence 4, interior ones at 6 (the usual remeshing targets).
_TARGET_VALENCE_INTERIOR = 6
_TARGET_VALENCE_BOUNDARY = 4
# A flip never leaves a vertex with fewer edges than this (no ears or valence-2 spikes).
_MIN_VALENCE = 3


class RemeshReport(NamedTuple):
  """Counts of one refinement, for the training log.

  flips_undone_*: valence-improving flips that were rejected by a guard. flipped_faces,
  degenerate_faces, nonmanifold_edges: the final check of the returned mesh (0 unless the
  input already had such faces).
  """
  vertices_before: int
  vertices_after: int
  faces_before: int
  faces_after: int
  selected_faces: int
  split_edges: int
  flips: int
  flips_undone_normal: int
  flips_undone_degenerate: int
  flips_undone_nonmanifold: int
  valence_deviation_split: int
  valence_deviation_final: int
  flipped_faces: int
  degenerate_faces: int
  nonmanifold_edges: int


class RemeshResult(NamedTuple):
  """A refined mesh and its provenance, for state transfer.

  Attributes:
    vertices: float64 [V', 3] rest positions; the first V rows are the old vertices unchanged.
    faces: int32 [F', 3], counter-clockwise like the input.
    face_parent: int32 [F'], the old face each new face lies in (or, after a flip, one of the two).
    vertex_parent: int32 [V', 2], (i, i) for an old vertex i, (a, b) for the midpoint of the old
      edge (a, b).
    report: RemeshReport.
  """
  vertices: np.ndarray
  faces: np.ndarray
  face_parent: np.ndarray
  vertex_parent: np.ndarray
  report: RemeshReport


def threshold_schedule(remesh_index: int, num_remeshes: int, start: float, end: float) -> float:
  """Host: minimum rest edge length to split at remesh `remesh_index` (docs/method.md section 6).

  remesh_index counts from 0. Linear from `start` (remesh.min_edge_start) at the first remesh to
  `end` (remesh.min_edge_end) at the last; a single remesh uses `start`.
  """
  if not 0 <= remesh_index < num_remeshes:
    raise ValueError(f'remesh_index must be in [0, {num_remeshes}), got {remesh_index}.')
  if num_remeshes == 1:
    return float(start)
  return float(start + (end - start) * remesh_index / (num_remeshes - 1))


def quantile_schedule(remesh_index: int, quantile: float, quantile_step: float) -> float:
  """Host: score quantile above which faces are selected at remesh `remesh_index` (0-based).

  remesh.quantile at the first remesh, rising by remesh.quantile_step at each later one.
  """
  value = quantile + quantile_step * remesh_index
  if not 0.0 <= value < 1.0:
    raise ValueError(
        f'selection quantile {value} at remesh {remesh_index} is outside [0, 1); lower '
        'remesh.quantile or remesh.quantile_step.')
  return float(value)


def select_faces(scores: np.ndarray, quantile: float) -> np.ndarray:
  """Host: bool [F], faces whose score is strictly above the given quantile of the scores.

  Strict, so that uniform scores (no signal) select nothing.
  """
  scores = np.asarray(scores, dtype=np.float64)
  if scores.ndim != 1 or not np.all(np.isfinite(scores)):
    raise ValueError(f'scores must be a finite 1-D array, got shape {scores.shape}.')
  return scores > np.quantile(scores, quantile)


def triangle_quality(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Host: float64 [F], 4 sqrt(3) area / sum of squared edges: 1 equilateral, 0 degenerate."""
  vertices, faces = np.asarray(vertices, dtype=np.float64), np.asarray(faces)
  v = vertices[faces]
  area = meshes.face_areas(vertices, faces)
  squared = sum(np.sum((v[:, (j + 1) % 3] - v[:, j]) ** 2, axis=-1) for j in range(3))
  return 4.0 * np.sqrt(3.0) * area / np.maximum(squared, np.finfo(np.float64).tiny)


class _Valence(NamedTuple):
  valence: np.ndarray  # int [V], edges at each vertex.
  target: np.ndarray  # int [V], 4 on the boundary, 6 inside.


def _valence_targets(faces: np.ndarray, num_vertices: int) -> _Valence:
  e = meshes.edge_adjacency(faces)
  valence = np.bincount(e.edges.reshape(-1), minlength=num_vertices)
  boundary = np.zeros(num_vertices, dtype=bool)
  boundary[e.edges[e.face_count == 1].reshape(-1)] = True
  target = np.where(boundary, _TARGET_VALENCE_BOUNDARY, _TARGET_VALENCE_INTERIOR)
  return _Valence(valence, target)


def valence_deviation(faces: np.ndarray, num_vertices: int) -> int:
  """Host: sum over used vertices of |valence - target| (target 6 interior, 4 on the boundary)."""
  faces = np.asarray(faces)
  valence, target = _valence_targets(faces, num_vertices)
  used = np.zeros(num_vertices, dtype=bool)
  used[faces.reshape(-1)] = True
  return int(np.abs(valence - target)[used].sum())


def _rotate(rows: np.ndarray, shift: np.ndarray) -> np.ndarray:
  """rows [N, 3] cyclically rotated left by shift [N] (row i starts at its column shift[i])."""
  columns = (np.arange(3)[None, :] + shift[:, None]) % 3
  return np.take_along_axis(rows, columns, axis=1)


class _Split(NamedTuple):
  vertices: np.ndarray  # float64 [V', 3], old vertices first, then one midpoint per split edge.
  faces: np.ndarray  # int64 [F', 3], children grouped by parent, in parent order.
  face_parent: np.ndarray  # int64 [F'].
  vertex_parent: np.ndarray  # int64 [V', 2].
  num_split: np.ndarray  # int64 [F], split edges of each old face.


def _split(vertices, faces, split_edge) -> _Split:
  """Midpoint splits by the 1/2/3-edge patterns (2, 3 or 4 children); conforming by design."""
  num_vertices = vertices.shape[0]
  e = meshes.edge_adjacency(faces)
  split_ids = np.flatnonzero(split_edge)
  midpoint = np.full(e.edges.shape[0], -1, dtype=np.int64)
  midpoint[split_ids] = num_vertices + np.arange(split_ids.size)
  ends = e.edges[split_ids]
  new_vertices = np.concatenate([vertices, 0.5 * (vertices[ends[:, 0]] + vertices[ends[:, 1]])])
  vertex_parent = np.concatenate([np.repeat(np.arange(num_vertices)[:, None], 2, axis=1), ends])

  mid = midpoint[e.face_edge]  # [F, 3]: midpoint of edge j, or -1.
  is_split = mid >= 0
  num_split = is_split.sum(axis=1)
  children, parents = [], []

  def emit(face_ids, *triangles):
    for triangle in triangles:
      children.append(np.stack(triangle, axis=1))
      parents.append(face_ids)

  ids = np.flatnonzero(num_split == 0)
  emit(ids, (faces[ids, 0], faces[ids, 1], faces[ids, 2]))

  ids = np.flatnonzero(num_split == 1)  # Rotate the split edge to (a, b).
  shift = np.argmax(is_split[ids], axis=1)
  (a, b, c), m_ab = _rotate(faces[ids], shift).T, _rotate(mid[ids], shift)[:, 0]
  emit(ids, (a, m_ab, c), (m_ab, b, c))

  ids = np.flatnonzero(num_split == 2)  # Rotate the unsplit edge to (c, a).
  shift = (np.argmin(is_split[ids], axis=1) + 1) % 3
  (a, b, c), (m_ab, m_bc, _) = _rotate(faces[ids], shift).T, _rotate(mid[ids], shift).T
  # The quad (a, m_ab, m_bc, c) is cut along its shorter diagonal.
  cut_at_a = (np.linalg.norm(new_vertices[a] - new_vertices[m_bc], axis=1)
              <= np.linalg.norm(new_vertices[m_ab] - new_vertices[c], axis=1))
  emit(ids, (m_ab, b, m_bc),
       (a, m_ab, np.where(cut_at_a, m_bc, c)),
       (np.where(cut_at_a, a, m_ab), m_bc, c))

  ids = np.flatnonzero(num_split == 3)
  (a, b, c), (m_ab, m_bc, m_ca) = faces[ids].T, mid[ids].T
  emit(ids, (a, m_ab, m_ca), (m_ab, b, m_bc), (m_ca, m_bc, c), (m_ab, m_bc, m_ca))

  parents = np.concatenate(parents)
  order = np.argsort(parents, kind='stable')  # Children next to each other, in parent order.
  return _Split(new_vertices, np.concatenate(children)[order].astype(np.int64), parents[order],
                vertex_parent, num_split)


class _Triangle(NamedTuple):
  normal: tuple[float, float, float]  # Unit, (0, 0, 0) when degenerate.
  quality: float  # triangle_quality.


def _triangle(points, i, j, k) -> _Triangle:
  """Unit normal and quality of triangle (i, j, k) of a list of 3-tuples (pure Python, per flip)."""
  p, q, r = points[i], points[j], points[k]
  u = (q[0] - p[0], q[1] - p[1], q[2] - p[2])
  w = (r[0] - p[0], r[1] - p[1], r[2] - p[2])
  n = (u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0])
  twice_area = math.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2)
  squared = sum((a - b) ** 2 for s, t in ((p, q), (q, r), (r, p)) for a, b in zip(s, t))
  if twice_area == 0 or squared == 0:
    return _Triangle((0.0, 0.0, 0.0), 0.0)
  unit = (n[0] / twice_area, n[1] / twice_area, n[2] / twice_area)
  return _Triangle(unit, 2.0 * math.sqrt(3.0) * twice_area / squared)


def _dot(a, b):
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


class _FlipCounts(NamedTuple):
  flips: int
  undone_normal: int
  undone_degenerate: int
  undone_nonmanifold: int


def _flip_pass(vertices, faces, face_parent, parent_normals, candidate_edges, min_quality):
  """One pass of valence-improving flips over interior candidate_edges; edits faces in place."""
  valence, target = _valence_targets(faces, vertices.shape[0])
  valence, target = valence.tolist(), target.tolist()
  points = [tuple(p) for p in vertices.tolist()]
  tris = faces.tolist()
  normals = [tuple(n) for n in meshes.unit_vectors(meshes.face_normals(vertices, faces)).tolist()]
  ancestor = [tuple(n) for n in meshes.unit_vectors(parent_normals[face_parent]).tolist()]
  edge_faces: dict[tuple[int, int], list[int]] = {}
  for f, (i, j, k) in enumerate(tris):
    for s, t in ((i, j), (j, k), (k, i)):
      edge_faces.setdefault((min(s, t), max(s, t)), []).append(f)

  flips = undone_normal = undone_degenerate = undone_nonmanifold = 0
  for p, q in candidate_edges.tolist():
    adjacent = edge_faces.get((p, q))
    if adjacent is None or len(adjacent) != 2:
      continue
    fa, fb = adjacent
    if tris[fa][(tris[fa].index(p) + 1) % 3] != q:
      fa, fb = fb, fa  # fa holds the directed edge p -> q, fb holds q -> p.
    c = tris[fa][(tris[fa].index(p) + 2) % 3]
    d = tris[fb][(tris[fb].index(q) + 2) % 3]
    before = sum(abs(valence[v] - target[v]) for v in (p, q, c, d))
    after = (abs(valence[p] - 1 - target[p]) + abs(valence[q] - 1 - target[q])
             + abs(valence[c] + 1 - target[c]) + abs(valence[d] + 1 - target[d]))
    if after >= before or min(valence[p], valence[q]) - 1 < _MIN_VALENCE:
      continue
    if c == d or (min(c, d), max(c, d)) in edge_faces:
      undone_nonmanifold += 1
      continue
    (n1, q1), (n2, q2) = _triangle(points, p, d, c), _triangle(points, d, q, c)
    if min(q1, q2) < min_quality:
      undone_degenerate += 1
      continue
    references = (normals[fa], normals[fb], ancestor[fa], ancestor[fb])
    if any(_dot(n, m) <= 0 for n in (n1, n2) for m in references):
      undone_normal += 1
      continue
    tris[fa], tris[fb] = [p, d, c], [d, q, c]
    normals[fa], normals[fb] = n1, n2
    del edge_faces[(p, q)]
    edge_faces[(min(c, d), max(c, d))] = [fa, fb]
    for (s, t), old, new in (((q, c), fa, fb), ((p, d), fb, fa)):
      pair = edge_faces[(min(s, t), max(s, t))]
      pair[pair.index(old)] = new
    valence[p] -= 1
    valence[q] -= 1
    valence[c] += 1
    valence[d] += 1
    flips += 1
  faces[:] = np.asarray(tris, dtype=faces.dtype).reshape(faces.shape)
  return _FlipCounts(flips, undone_normal, undone_degenerate, undone_nonmanifold)


class MeshCheck(NamedTuple):
  """Counts of guard violations in a mesh."""
  flipped_faces: int
  degenerate_faces: int
  nonmanifold_edges: int


def check_mesh(vertices: np.ndarray, faces: np.ndarray, face_parent: np.ndarray,
               parent_normals: np.ndarray, min_quality: float) -> MeshCheck:
  """Host: faces opposing their parent's normal, faces below min_quality, non-manifold edges.

  An edge is non-manifold when more than two faces share it or two faces traverse it in the same
  direction (inconsistent orientation).
  """
  vertices = np.asarray(vertices, dtype=np.float64)
  normals = meshes.face_normals(vertices, faces)
  flipped = np.einsum('fi,fi->f', normals, parent_normals[face_parent]) <= 0
  degenerate = triangle_quality(vertices, faces) < min_quality
  e = meshes.edge_adjacency(faces)
  backward_count = e.face_count - e.forward_count
  nonmanifold = int(np.sum(e.face_count > 2) + np.sum(e.forward_count > 1)
                    + np.sum(backward_count > 1))
  return MeshCheck(int(flipped.sum()), int(degenerate.sum()), nonmanifold)


def refine_mesh(vertices: np.ndarray, faces: np.ndarray, selected: np.ndarray,
                min_edge_length: float, min_quality: float = 1e-2,
                flip: bool = True) -> RemeshResult:
  """Host: split, then flip, the rest template where `selected` (docs/method.md section 6).

  Args:
    vertices: float [V, 3] rest positions (unpadded).
    faces: int [F, 3] counter-clockwise faces (unpadded), a manifold mesh, boundaries allowed.
    selected: bool [F], faces chosen by score (select_faces).
    min_edge_length: edges with rest length <= this are not split (threshold_schedule).
    min_quality: triangles below this triangle_quality count as degenerate (about 0.33 degrees
      for the smallest angle of a thin isosceles triangle at the default 1e-2).
    flip: run the valence-improving flip pass (False gives the split-only mesh).

  Returns:
    RemeshResult. Flips only touch interior edges of faces whose parent was split, so the rest
    of the template keeps its connectivity; with nothing split the mesh is returned unchanged.
  """
  vertices = np.asarray(vertices, dtype=np.float64)
  faces = np.asarray(faces, dtype=np.int64)
  selected = np.asarray(selected, dtype=bool)
  if vertices.ndim != 2 or vertices.shape[1] != 3:
    raise ValueError(f'vertices must be [V, 3], got shape {vertices.shape}.')
  if faces.ndim != 2 or faces.shape[1] != 3 or faces.size == 0:
    raise ValueError(f'faces must be [F>=1, 3], got shape {faces.shape}.')
  if faces.min() < 0 or faces.max() >= vertices.shape[0]:
    raise ValueError(
        'faces index outside the vertices; pass the unpadded mesh (see padding.unpad).')
  if selected.shape != (faces.shape[0],):
    raise ValueError(f'selected must be bool [{faces.shape[0]}], got shape {selected.shape}.')
  e = meshes.edge_adjacency(faces)
  if np.any(e.face_count > 2):
    raise ValueError('input mesh has non-manifold edges (shared by more than two faces).')

  in_selected = np.zeros(vertices.shape[0], dtype=bool)
  in_selected[faces[selected].reshape(-1)] = True
  length = np.linalg.norm(vertices[e.edges[:, 0]] - vertices[e.edges[:, 1]], axis=1)
  split_edge = in_selected[e.edges[:, 0]] & in_selected[e.edges[:, 1]] & (length > min_edge_length)

  split = _split(vertices, faces, split_edge)
  new_vertices, new_faces, face_parent = split.vertices, split.faces, split.face_parent
  parent_normals = meshes.face_normals(vertices, faces)
  deviation_split = valence_deviation(new_faces, new_vertices.shape[0])
  counts = _FlipCounts(0, 0, 0, 0)
  if flip and split_edge.any():
    refined = meshes.edge_adjacency(new_faces)
    in_refined = np.zeros(refined.edges.shape[0], dtype=bool)
    in_refined[refined.face_edge[split.num_split[face_parent] > 0].reshape(-1)] = True
    candidates = refined.edges[in_refined & (refined.face_count == 2)]
    counts = _flip_pass(new_vertices, new_faces, face_parent, parent_normals, candidates,
                        min_quality)
  check = check_mesh(new_vertices, new_faces, face_parent, parent_normals, min_quality)
  report = RemeshReport(
      vertices_before=vertices.shape[0], vertices_after=new_vertices.shape[0],
      faces_before=faces.shape[0], faces_after=new_faces.shape[0],
      selected_faces=int(selected.sum()), split_edges=int(split_edge.sum()),
      flips=counts.flips, flips_undone_normal=counts.undone_normal,
      flips_undone_degenerate=counts.undone_degenerate,
      flips_undone_nonmanifold=counts.undone_nonmanifold,
      valence_deviation_split=deviation_split,
      valence_deviation_final=valence_deviation(new_faces, new_vertices.shape[0]),
      flipped_faces=check.flipped_faces, degenerate_faces=check.degenerate_faces,
      nonmanifold_edges=check.nonmanifold_edges)
  return RemeshResult(new_vertices, new_faces.astype(np.int32), face_parent.astype(np.int32),
                      split.vertex_parent.astype(np.int32), report)
