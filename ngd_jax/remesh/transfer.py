"""Host-side state transfer from the old to the refined mesh (docs/method.md section 6).

J^S of a new face: inverse-distance blend of the 3 nearest old faces by rest centroid. Adam
moments (and any other per-face optimiser state): copied from the nearest old face. Old per-frame
J^D: interpolated like J^S, then blended into the network output over remesh.blend_epochs.
Per-vertex values (the displacement baseline's offsets, their Adam moments, per-frame dynamic
offsets): an old vertex keeps its own, a split's midpoint takes the mean of its edge's two ends.
Skinning weights and the Poisson operators are rebuilt by their own modules.
"""

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import spatial

from ngd_jax import padding

# Neighbours of the inverse-distance blend (docs/method.md section 6).
_BLEND_NEIGHBOURS = 3


class FaceCorrespondence(NamedTuple):
  """Old faces feeding each new face.

  Attributes:
    index: int64 [F_new, 3], old faces by increasing centroid distance (column 0 = nearest).
    weight: float64 [F_new, 3], inverse-distance weights summing to 1 (a coincident centroid
      takes all the weight).
    num_old_faces: F_old.
  """
  index: np.ndarray
  weight: np.ndarray
  num_old_faces: int


def face_correspondence(old_vertices: np.ndarray, old_faces: np.ndarray, new_vertices: np.ndarray,
                        new_faces: np.ndarray) -> FaceCorrespondence:
  """Host: the 3 nearest old faces of each new face by rest centroid, with inverse-distance weights.

  Pass unpadded meshes (padding faces would be found as neighbours).
  """
  old_faces, new_faces = np.asarray(old_faces), np.asarray(new_faces)
  if old_faces.shape[0] < _BLEND_NEIGHBOURS:
    raise ValueError(
        f'the old mesh needs at least {_BLEND_NEIGHBOURS} faces, got {old_faces.shape[0]}.')
  old_centroids = np.asarray(old_vertices, dtype=np.float64)[old_faces].mean(axis=1)
  new_centroids = np.asarray(new_vertices, dtype=np.float64)[new_faces].mean(axis=1)
  distance, index = spatial.cKDTree(old_centroids).query(new_centroids, k=_BLEND_NEIGHBOURS)
  coincident = distance <= np.finfo(np.float64).eps * (1.0 + np.abs(new_centroids).max())
  inverse = 1.0 / np.where(coincident, 1.0, distance)
  # A new face on an old centroid copies that face (the inverse distance would be infinite).
  weight = np.where(coincident.any(axis=1, keepdims=True), coincident.astype(np.float64), inverse)
  weight /= weight.sum(axis=1, keepdims=True)
  return FaceCorrespondence(index, weight, old_faces.shape[0])


def blend_faces(values: np.ndarray, correspondence: FaceCorrespondence,
                axis: int = 0) -> np.ndarray:
  """Host: inverse-distance blend of face values along `axis` (J^S [F,3,3], J^D [T,F,3,3], ...).

  Returns the same shape with F_old replaced by F_new, in the input dtype.
  """
  values = np.moveaxis(np.asarray(values), axis, 0)
  _check_rows(values, correspondence)
  weight = correspondence.weight.reshape(correspondence.weight.shape + (1,) * (values.ndim - 1))
  blended = np.sum(values[correspondence.index] * weight, axis=1).astype(values.dtype)
  return np.moveaxis(blended, 0, axis)


def nearest_faces(values: np.ndarray, correspondence: FaceCorrespondence,
                  axis: int = 0) -> np.ndarray:
  """Host: face values copied from the nearest old face along `axis` (Adam moments)."""
  values = np.moveaxis(np.asarray(values), axis, 0)
  _check_rows(values, correspondence)
  return np.moveaxis(values[correspondence.index[:, 0]], 0, axis)


def _check_rows(values, correspondence):
  if values.shape[0] != correspondence.num_old_faces:
    raise ValueError(
        f'face axis has {values.shape[0]} rows but the old mesh has {correspondence.num_old_faces} '
        'faces; unpad the array first (padding.unpad).')


def transfer_face_leaves(tree: Any, correspondence: FaceCorrespondence, face_dim: int,
                         method: Literal['nearest', 'blend'], face_capacity: int | None = None,
                         fill: float = 0) -> Any:
  """Host: maps every leaf of a pytree whose leading dimension is `face_dim` to the new faces.

  Use it for optimiser state (e.g. optax ScaleByAdamState mu/nu of J^S, method='nearest') and
  for J^S itself (method='blend'). Leaves may be padded (face_dim = old capacity): their first
  num_old_faces rows are the real faces. Other leaves (step counts, network parameters) are
  returned unchanged, so face_dim must not coincide with another leaf's leading size.

  Args:
    tree: pytree of arrays.
    correspondence: from face_correspondence.
    face_dim: leading size of the face-indexed leaves (F_old, or the old face capacity).
    method: 'nearest' copies the nearest old face, 'blend' uses the inverse-distance blend.
    face_capacity: pad the results to this many rows (None: F_new rows, unpadded).
    fill: value of the padding rows.
  """
  if method not in ('nearest', 'blend'):
    raise ValueError(f"method must be 'nearest' or 'blend', got {method!r}.")
  if face_dim < correspondence.num_old_faces:
    raise ValueError(f'face_dim={face_dim} is smaller than the old face count '
                     f'{correspondence.num_old_faces}.')
  transfer = nearest_faces if method == 'nearest' else blend_faces

  def leaf_fn(leaf):
    if np.ndim(leaf) == 0 or np.shape(leaf)[0] != face_dim:
      return leaf
    values = transfer(padding.unpad(np.asarray(jax.device_get(leaf)), correspondence.num_old_faces),
                      correspondence)
    return values if face_capacity is None else padding.pad_rows(values, face_capacity, fill)

  return jax.tree.map(leaf_fn, tree)


def parent_means(values: np.ndarray, vertex_parent: np.ndarray, axis: int = 0) -> np.ndarray:
  """Host: vertex values of the refined mesh along `axis`, the mean of each vertex's two parents.

  Args:
    values: [..., V_old, ...] unpadded per-vertex values (offsets [V, 3], per frame [T, V, 3]).
    vertex_parent: int [V_new, 2] from refine_mesh: (i, i) for old vertex i (which keeps its value
      exactly), (a, b) for the midpoint of the old edge (a, b).
  Returns the same shape with V_old replaced by V_new, in the input dtype.
  """
  values = np.moveaxis(np.asarray(values), axis, 0)
  vertex_parent = np.asarray(vertex_parent)
  if vertex_parent.size and vertex_parent.max() >= values.shape[0]:
    raise ValueError(f'vertex_parent refers to old vertex {vertex_parent.max()} but the vertex axis has '
                     f'{values.shape[0]} rows.')
  means = (0.5 * (values[vertex_parent[:, 0]] + values[vertex_parent[:, 1]])).astype(values.dtype)
  return np.moveaxis(means, 0, axis)


def transfer_vertex_leaves(tree: Any, vertex_parent: np.ndarray, num_old_vertices: int, vertex_dim: int,
                           vertex_capacity: int | None = None, fill: float = 0) -> Any:
  """Host: maps every leaf whose leading dimension is `vertex_dim` to the refined mesh's vertices.

  The vertex counterpart of transfer_face_leaves (the displacement baseline's offsets and their
  Adam moments): parent_means over the first num_old_vertices rows (the real vertices of a padded
  leaf); other leaves (step counts) are returned unchanged.

  Args:
    tree: pytree of arrays.
    vertex_parent: int [V_new, 2] from refine_mesh.
    num_old_vertices: V_old.
    vertex_dim: leading size of the vertex-indexed leaves (V_old or the old vertex capacity).
    vertex_capacity: pad the results to this many rows (None: V_new rows, unpadded).
    fill: value of the padding rows.
  """
  if vertex_dim < num_old_vertices:
    raise ValueError(f'vertex_dim={vertex_dim} is smaller than the old vertex count {num_old_vertices}.')

  def leaf_fn(leaf):
    if np.ndim(leaf) == 0 or np.shape(leaf)[0] != vertex_dim:
      return leaf
    values = parent_means(padding.unpad(np.asarray(jax.device_get(leaf)), num_old_vertices), vertex_parent)
    return values if vertex_capacity is None else padding.pad_rows(values, vertex_capacity, fill)

  return jax.tree.map(leaf_fn, tree)


def blend_weight(epoch_since_remesh: jax.typing.ArrayLike, blend_epochs: int) -> jax.Array:
  """Weight of the network J^D after a remesh; 1 - weight goes to the interpolated old J^D.

  Rises linearly from 0 at the remesh to 1 after remesh.blend_epochs epochs (docs/method.md section 6):
  J^D = (1 - w) J^D_old + w f_G(...). jit-compatible; blend_epochs <= 0 gives 1.
  """
  if blend_epochs <= 0:
    return jnp.ones((), jnp.float32)
  return jnp.clip(jnp.asarray(epoch_since_remesh, jnp.float32) / blend_epochs, 0.0, 1.0)
