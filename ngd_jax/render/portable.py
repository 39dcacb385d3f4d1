"""Portable rasterizer kernel in pure JAX: runs on any backend and is the C++ kernel's oracle.

It follows the arithmetic specification at the top of csrc/rasterizer.cc operation for operation
(pixel units, 2-D homogeneous edge functions, exact split products, fill rule, clip and depth
rules), so both kernels give identical ids and depths. Exact for triangles of any screen size:
triangles are sorted into size classes by their pixel bounding box (windows of 4, 8, 16, ...
pixels up to the whole image) and each class is drawn in fixed-size chunks by a while loop whose
trip count follows the number of triangles in the class, with a depth scatter-min followed by an
id scatter-min among the triangles at the minimum depth (ties go to the lower id). Nothing here
is differentiable: callers stop gradients (see rasterizer.py).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int
import numpy as np

from ngd_jax.render import screen

# Pixel evaluations per chunk of the while loop over a size class (memory vs. loop overhead).
_CHUNK_PIXELS = 1 << 20
_SMALLEST_WINDOW = 4
_NO_ID = np.iinfo(np.int32).max


def _hi12(x: jax.Array) -> jax.Array:
  """Keeps sign, exponent and 12 significant bits (exact split, see csrc/rasterizer.cc)."""
  bits = lax.bitcast_convert_type(x, jnp.uint32) & jnp.uint32(0xFFFFF000)
  return lax.bitcast_convert_type(bits, jnp.float32)


def _xprod(a: jax.Array, b: jax.Array) -> jax.Array:
  """a * b as a sum of exact partial products, immune to fused multiply-add contraction."""
  ah, bh = _hi12(a), _hi12(b)
  al, bl = a - ah, b - bh
  return (ah * bh + al * bl) + (ah * bl + al * bh)


def _pprod(a: jax.Array, p: jax.Array) -> jax.Array:
  """a * p for a pixel coordinate p with at most 12 significant bits."""
  ah = _hi12(a)
  return ah * p + (a - ah) * p


class TriangleSetup(NamedTuple):
  """Per-triangle rasterization constants."""
  a: Float[Array, 'F 3']  # Constant term of edge function i (opposite vertex i).
  b: Float[Array, 'F 3']  # Coefficient of px.
  c: Float[Array, 'F 3']  # Coefficient of py.
  s: Float[Array, 'F']  # Sign of the determinant.
  tl: Bool[Array, 'F 3']  # Fill rule: edge i owns the pixels exactly on it.
  dz: Float[Array, 'F 3']  # z/w = dz0 + dzx px + dzy py.
  box: Int[Array, 'F 4']  # Inclusive (c0, c1, r0, r1).
  active: Bool[Array, 'F']


def setup_triangles(clip_pos: Float[Array, 'V 4'], faces: Int[Array, 'F 3'], height: int,
                    width: int) -> TriangleSetup:
  """Edge functions, depth plane and bounding box per triangle (csrc SetupTriangle)."""
  num_vertices = clip_pos.shape[0]
  hw, hh = np.float32(0.5 * width), np.float32(0.5 * height)
  in_range = jnp.all((faces >= 0) & (faces < num_vertices), axis=1)
  v = clip_pos[jnp.clip(faces, 0, num_vertices - 1)]  # [F, 3, 4]
  x, y, z, w = v[..., 0], v[..., 1], v[..., 2], v[..., 3]
  big_x, big_y = x * hw, y * hh
  culled = (jnp.all(x > w, 1) | jnp.all(x < -w, 1) | jnp.all(y > w, 1) | jnp.all(y < -w, 1)
            | jnp.all(z > w, 1) | jnp.all(z < -w, 1) | jnp.all(w <= 0, 1))
  # Rows of the adjugate (A_i, B_i, C_i) and the determinant, every product exact.
  edges = screen.edge_functions(big_x, big_y, w, product=_xprod)
  a, b, c, det = edges
  abc = jnp.stack([a, b, c], axis=1)  # [F, 3 (A, B, C), 3 (edges)]
  s = edges.sign
  sb, sc = s[:, None] * b, s[:, None] * c
  tl = (sb > 0) | ((sb == 0) & (sc > 0))
  # Depth plane z/w = dz0 + dzx px + dzy py: (sum_i z_i (A_i, B_i, C_i)) / det.
  plane_terms = _xprod(z[:, None, :], abc)  # [F, 3 (A, B, C), 3 (vertices)]
  sums = (plane_terms[..., 0] + plane_terms[..., 1]) + plane_terms[..., 2]
  # Three plain divisions: XLA turns a division by a broadcast into a reciprocal multiply.
  dz = jnp.stack([sums[:, 0] / det, sums[:, 1] / det, sums[:, 2] / det], axis=1)
  cols = big_x / w + (hw - np.float32(0.5))
  rows = (hh - np.float32(0.5)) - big_y / w

  def to_int(val, n):
    return jnp.clip(val, -1.0, float(n)).astype(jnp.int32)

  in_front = jnp.all(w > 0, axis=1)
  c0 = jnp.where(in_front, jnp.maximum(to_int(jnp.floor(cols.min(1)), width), 0), 0)
  c1 = jnp.where(in_front, jnp.minimum(to_int(jnp.ceil(cols.max(1)), width), width - 1),
                 width - 1)
  r0 = jnp.where(in_front, jnp.maximum(to_int(jnp.floor(rows.min(1)), height), 0), 0)
  r1 = jnp.where(in_front, jnp.minimum(to_int(jnp.ceil(rows.max(1)), height), height - 1),
                 height - 1)
  active = (in_range & ~culled & (det != 0) & jnp.isfinite(det) & (c0 <= c1) & (r0 <= r1))
  return TriangleSetup(a, b, c, s, tl, dz, jnp.stack([c0, c1, r0, r1], axis=1), active)


def _window_sizes(height: int, width: int) -> list[int]:
  """Square window sides of the size classes: 4, 8, 16, then x4 steps, then the whole image.

  Fine steps where most mesh triangles fall, coarse ones above to keep compile time down (each
  class is one while loop).
  """
  longest = max(height, width)
  sizes = []
  size = _SMALLEST_WINDOW
  while size < longest:
    sizes.append(size)
    size *= 2 if size < 16 else 4
  return sizes + [longest]


class _Window(NamedTuple):
  """A size x size window of pixels at each of n triangles' box corner."""
  pixel: jax.Array  # i32[n, size, size] flat pixel index where covered, H W where not.
  zw: jax.Array  # f32[n, size, size] z/w of the triangle's plane.


def _draw_window(setup: TriangleSetup, idx: jax.Array, valid: jax.Array, size: int,
                 centres: screen.PixelCentres) -> _Window:
  """Coverage and z/w of a size x size window at each triangle's box corner."""
  px, py = centres
  height, width = py.shape[0], px.shape[0]
  box = setup.box[idx]
  offs = jnp.arange(size, dtype=jnp.int32)
  cols = box[:, 0:1] + offs  # [n, size]
  rows = box[:, 2:3] + offs
  col_ok = cols <= box[:, 1:2]
  row_ok = rows <= box[:, 3:4]
  pxv = jnp.asarray(px)[jnp.minimum(cols, width - 1)]
  pyv = jnp.asarray(py)[jnp.minimum(rows, height - 1)]
  s = setup.s[idx][:, None, None, None]
  # Rows 0-2: edge functions (A + C py) + B px; row 3: z/w = (dz0 + dzy py) + dzx px.
  const = jnp.concatenate([setup.a[idx], setup.dz[idx, 0:1]], axis=1)[:, :, None]
  row_coef = jnp.concatenate([setup.c[idx], setup.dz[idx, 2:3]], axis=1)[:, :, None]
  col_coef = jnp.concatenate([setup.b[idx], setup.dz[idx, 1:2]], axis=1)[:, :, None]
  row_term = const + _pprod(row_coef, pyv[:, None, :])  # [n, 4, size]
  col_term = _pprod(col_coef, pxv[:, None, :])
  e = row_term[:, :3, :, None] + col_term[:, :3, None, :]  # [n, 3, size, size]
  ne = jnp.where(s > 0, e, -e)
  on_edge_ok = setup.tl[idx][:, :, None, None]
  inside = jnp.all((ne > 0) | ((ne == 0) & on_edge_ok), axis=1)
  inside &= row_ok[:, :, None] & col_ok[:, None, :] & (setup.active[idx] & valid)[:, None, None]
  zw = row_term[:, 3, :, None] + col_term[:, 3, None, :]
  inside &= (zw >= -1) & (zw <= 1)
  pix = rows[:, :, None] * width + cols[:, None, :]
  return _Window(jnp.where(inside, pix, height * width), zw)


class _Buffers(NamedTuple):
  """Per-pixel minima of the passes, flat [H W]."""
  depth: jax.Array  # f32, inf where nothing is drawn.
  ids: jax.Array  # i32, _NO_ID where nothing is drawn.


@functools.partial(jax.jit, static_argnums=2)
def rasterize_portable(clip_pos: Float[Array, 'V 4'], faces: Int[Array, 'F 3'],
                       resolution: tuple[int, int]) -> screen.NearestTriangles:
  """Nearest triangle per pixel of one image; resolution (H, W) is static."""
  height, width = resolution
  num_faces = faces.shape[0]
  num_pixels = height * width
  centres = screen.pixel_centres(height, width)
  setup = setup_triangles(clip_pos.astype(jnp.float32), faces.astype(jnp.int32), height, width)
  sizes = _window_sizes(height, width)
  extent = jnp.maximum(setup.box[:, 1] - setup.box[:, 0], setup.box[:, 3] - setup.box[:, 2]) + 1
  size_class = jnp.searchsorted(jnp.asarray(sizes), extent, side='left').astype(jnp.int32)
  size_class = jnp.where(setup.active, size_class, len(sizes))
  order = jnp.argsort(size_class, stable=True).astype(jnp.int32)
  counts = jnp.bincount(size_class, length=len(sizes) + 1)
  starts = jnp.cumsum(counts) - counts

  def draw_pass(pass_index, buffers):
    """Pass 0: depth scatter-min; pass 1: id scatter-min among triangles at the minimum depth."""

    def update(buffers: _Buffers, window: _Window, idx) -> _Buffers:
      flat = window.pixel.ravel()

      def depth_min():
        return buffers._replace(depth=buffers.depth.at[flat].min(window.zw.ravel(), mode='drop'))

      def id_min():
        at_min = window.zw == buffers.depth[jnp.minimum(window.pixel, num_pixels - 1)]
        cand = jnp.where(at_min, jnp.broadcast_to(idx[:, None, None], window.zw.shape), _NO_ID)
        return buffers._replace(ids=buffers.ids.at[flat].min(cand.ravel(), mode='drop'))

      return lax.cond(pass_index == 0, depth_min, id_min)

    for cls, size in enumerate(sizes):
      chunk = int(max(1, min(num_faces, _CHUNK_PIXELS // (size * size))))
      count, start = counts[cls], starts[cls]

      def body(state, cls_count=count, cls_start=start, chunk=chunk, size=size):
        step, bufs = state
        local = step * chunk + jnp.arange(chunk, dtype=jnp.int32)
        valid = local < cls_count
        idx = order[jnp.minimum(cls_start + local, num_faces - 1)]
        return step + 1, update(bufs, _draw_window(setup, idx, valid, size, centres), idx)

      _, buffers = lax.while_loop(lambda state, c=count, n=chunk: state[0] * n < c, body,
                                  (jnp.int32(0), buffers))
    return buffers

  buffers = lax.fori_loop(
      0, 2, draw_pass,
      _Buffers(jnp.full((num_pixels,), jnp.inf, jnp.float32),
               jnp.full((num_pixels,), _NO_ID, jnp.int32)))
  covered = buffers.ids != _NO_ID
  depth = jnp.where(covered, buffers.depth, 0.0).reshape(height, width)
  ids = jnp.where(covered, buffers.ids, -1).reshape(height, width)
  return screen.NearestTriangles(depth, ids)
