"""Capacity buckets: mesh-sized arrays padded so that jit compiles once per bucket (docs/design.md section 6).

Convention (WORKSPACE.md): real faces and vertices come first; padding faces are (0, 0, 0)
(zero area, never rasterized, zero weight in every operator) and padding vertices are copies of
vertex 0 (pinned in the Poisson system). `face_mask` / `vertex_mask` mark the real entries.
"""

from typing import NamedTuple

import jax
import numpy as np


class PaddedMesh(NamedTuple):
  """A mesh padded to capacity.

  Attributes:
    vertices: float [vertex_capacity, 3]; rows past the real count copy vertex 0.
    faces: int32 [face_capacity, 3]; rows past the real count are (0, 0, 0).
    vertex_mask: bool [vertex_capacity], True for real vertices.
    face_mask: bool [face_capacity], True for real faces.
  """
  vertices: np.ndarray
  faces: np.ndarray
  vertex_mask: np.ndarray
  face_mask: np.ndarray


def capacity(n: int, multiple: int) -> int:
  """Host: the bucket size for n entries: n rounded up to a multiple of `multiple`, at least one."""
  if multiple < 1:
    raise ValueError(
        f'capacity multiple must be >= 1, got {multiple}; see remesh.capacity_multiple.')
  if n < 0:
    raise ValueError(f'cannot compute a capacity for a negative count ({n}).')
  return max(1, -(-n // multiple)) * multiple


def pad_face_array(values: np.ndarray, face_capacity: int, fill: float = 0) -> np.ndarray:
  """Host: pads a face-indexed array [F, ...] (J^S, Adam moments, ...) to [face_capacity, ...].

  Works for any leading-axis-indexed array (vertex arrays too). `fill` is the value of the
  padding rows; they are masked everywhere, so the value only matters for losses that average
  over all rows without a mask.
  """
  values = np.asarray(values)
  n = values.shape[0]
  if n > face_capacity:
    raise ValueError(
        f'array with {n} rows does not fit a capacity of {face_capacity}; compute the capacity '
        'with capacity(n, multiple) from the new count.')
  padding = np.full((face_capacity - n,) + values.shape[1:], fill, dtype=values.dtype)
  return np.concatenate([values, padding], axis=0)


def unpad(values: np.ndarray, n: int) -> np.ndarray:
  """Host: the first n rows (the real entries) of a padded array."""
  values = np.asarray(values)
  if n > values.shape[0]:
    raise ValueError(f'cannot unpad {n} rows from an array with {values.shape[0]} rows.')
  return values[:n]


def pad_mesh(vertices: np.ndarray, faces: np.ndarray, vertex_capacity: int,
             face_capacity: int) -> PaddedMesh:
  """Host: pads a mesh to (vertex_capacity, face_capacity) with the WORKSPACE.md convention.

  Args:
    vertices: float [V, 3], V >= 1.
    faces: int [F, 3] indices into vertices.
    vertex_capacity: >= V.
    face_capacity: >= F.
  """
  vertices = np.asarray(vertices)
  faces = np.asarray(faces, dtype=np.int32)
  if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
    raise ValueError(f'vertices must be [V>=1, 3], got shape {vertices.shape}.')
  if faces.ndim != 2 or faces.shape[1] != 3:
    raise ValueError(f'faces must be [F, 3], got shape {faces.shape}.')
  num_vertices, num_faces = vertices.shape[0], faces.shape[0]
  if num_vertices > vertex_capacity or num_faces > face_capacity:
    raise ValueError(
        f'mesh with {num_vertices} vertices / {num_faces} faces does not fit capacities '
        f'({vertex_capacity}, {face_capacity}); compute them with capacity(n, multiple).')
  padded_vertices = np.concatenate(
      [vertices, np.repeat(vertices[:1], vertex_capacity - num_vertices, axis=0)], axis=0)
  return PaddedMesh(
      vertices=padded_vertices,
      faces=pad_face_array(faces, face_capacity, fill=0),
      vertex_mask=np.arange(vertex_capacity) < num_vertices,
      face_mask=np.arange(face_capacity) < num_faces)
