"""Host: capacity buckets, mesh-sized arrays padded so that jit compiles once per bucket
(docs/design.md section 6), the one place that writes the padding convention.

Convention (WORKSPACE.md): real faces and vertices come first; padding faces are (0, 0, 0) (zero
area, never rasterized, zero weight in every operator) and padding vertices are copies of vertex
0 (pinned in the Poisson system), so vertex-indexed arrays pad by repeating their first row and
everything else pads with a constant. `face_mask` / `vertex_mask` mark the real entries.
"""

import numpy as np


def capacity(n: int, multiple: int) -> int:
  """The bucket size for n entries: n rounded up to a multiple of `multiple`, at least one."""
  if multiple < 1:
    raise ValueError(
        f'capacity multiple must be >= 1, got {multiple}; see remesh.capacity_multiple.')
  if n < 0:
    raise ValueError(f'cannot compute a capacity for a negative count ({n}).')
  return max(1, -(-n // multiple)) * multiple


def _check_fits(n: int, size: int) -> None:
  if n > size:
    raise ValueError(
        f'array with {n} rows does not fit a capacity of {size}; compute the capacity with '
        'capacity(n, multiple) from the new count.')


def pad_rows(values: np.ndarray, size: int, fill: float = 0, axis: int = 0) -> np.ndarray:
  """Pads `axis` of an array to `size` with `fill`: faces (0, 0, 0), face-indexed arrays (J^S,
  Adam moments, areas), anchor weights, face pairs. The padding rows are masked everywhere, so
  `fill` only matters for a loss that averages over all rows without a mask."""
  values = np.asarray(values)
  _check_fits(values.shape[axis], size)
  shape = list(values.shape)
  shape[axis] = size - values.shape[axis]
  return np.concatenate([values, np.full(shape, fill, dtype=values.dtype)], axis=axis)


def pad_vertex_rows(values: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
  """Pads a vertex-indexed array along `axis` to `size` with copies of its first row (vertex 0):
  rest positions, skinning weights, solutions."""
  values = np.asarray(values)
  _check_fits(values.shape[axis], size)
  first = np.take(values, [0], axis=axis)
  return np.concatenate([values, np.repeat(first, size - values.shape[axis], axis=axis)], axis=axis)


def unpad(values: np.ndarray, n: int) -> np.ndarray:
  """The first n rows (the real entries) of a padded array."""
  values = np.asarray(values)
  if n > values.shape[0]:
    raise ValueError(f'cannot unpad {n} rows from an array with {values.shape[0]} rows.')
  return values[:n]
