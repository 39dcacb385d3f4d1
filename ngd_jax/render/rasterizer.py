"""rasterize and interpolate: nvdiffrast's semantics on any JAX backend (docs/design.md section 4).

Conventions (WORKSPACE.md): OpenGL clip space; pixel (r, c) has its centre at
x_ndc = 2(c + 0.5)/W - 1, y_ndc = 1 - 2(r + 0.5)/H, so row 0 is the top row of the image.
rast[..., :] = (u, v, z/w, triangle_id + 1), all 0 for background; u weights the face's first
vertex, v the second, perspective-correct.

Clipping: a triangle is drawn where it lies in front of the camera and inside
-1 <= z/w <= 1, decided per pixel by 2-D homogeneous rasterization, so triangles crossing the near
plane or with vertices behind the camera (w <= 0) are clipped exactly rather than rejected, and
partly off-screen triangles are clipped to the viewport. Degenerate triangles (padding faces
(0, 0, 0)) are never drawn.

Gradients: the kernel (C++ through jax.ffi, or portable JAX) only picks the triangle id per pixel;
(u, v) are then recomputed in JAX from the ids in the 2-D homogeneous form (docs/notes.md), so autodiff
gives the rasterize gradient w.r.t. clip x, y, w. z/w and ids carry no gradient.
"""

import functools
import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int
import numpy as np

from ngd_jax.render import ffi
from ngd_jax.render import portable
from ngd_jax.render import screen

BACKENDS = ('auto', 'ffi', 'jax')
MAX_RESOLUTION = 4096  # Pixel coordinates must fit 12 significant bits (csrc/rasterizer.cc).


@functools.cache
def _warn_portable_fallback() -> None:
  logging.warning('ngd_jax.render: the native rasterizer is not built, using the portable JAX '
                  "kernel on CPU (slower); build it with `pip install -e . --no-build-isolation`.")


def _kernel(backend: str):
  """Picks the kernel for `backend` (see BACKENDS)."""
  if backend not in BACKENDS:
    raise ValueError(f'rasterize: unknown backend {backend!r}; expected one of {BACKENDS}.')
  on_cpu = jax.default_backend() == 'cpu'
  if backend == 'jax':
    return portable.rasterize_portable
  if backend == 'ffi':
    if not on_cpu:
      raise ValueError(f"rasterize: backend='ffi' runs on CPU only, the default backend is "
                       f"{jax.default_backend()!r}; use backend='auto' or 'jax'.")
    return ffi.rasterize_ffi
  if on_cpu and ffi.available():
    return ffi.rasterize_ffi
  if on_cpu:
    _warn_portable_fallback()
  return portable.rasterize_portable


class Resolution(NamedTuple):
  """An image size, checked against MAX_RESOLUTION."""

  height: int
  width: int


def _check_resolution(resolution) -> Resolution:
  height, width = (int(n) for n in resolution)
  if not (0 < height <= MAX_RESOLUTION and 0 < width <= MAX_RESOLUTION):
    raise ValueError(f'rasterize: resolution {resolution} must be (H, W) with 1 <= H, W <= '
                     f'{MAX_RESOLUTION}.')
  return Resolution(height, width)


def _barycentrics(clip_pos: Float[Array, 'V 4'], faces: Int[Array, 'F 3'],
                  ids: Int[Array, 'H W']) -> Float[Array, 'H W 2']:
  """Perspective-correct (u, v) of the triangle `ids` (-1 background), differentiable in clip_pos.

  b_i = a_i / (a_0 + a_1 + a_2) with a_i the edge function e_i at the pixel centre (fx, fy)
  (docs/notes.md): the constant term of the edge functions of the corners moved to
  q_i = (x_i - fx w_i, y_i - fy w_i), so a_0 = q_1 x q_2 subtracts before it multiplies, which
  keeps the precision of small triangles far from the image centre.
  """
  height, width = ids.shape
  centres = screen.ndc_centres(height, width)
  valid = ids >= 0
  # Gather per face first, then per pixel: the backward pass scatters into [F, 3, 3] once.
  v = clip_pos[faces][:, :, np.array([0, 1, 3])][jnp.maximum(ids, 0)]  # [H, W, 3, (x, y, w)]
  qx = v[..., 0] - centres.x[None, :, None] * v[..., 2]
  qy = v[..., 1] - centres.y[:, None, None] * v[..., 2]
  a = screen.edge_functions(qx, qy, v[..., 2]).a
  den = jnp.where(valid, a[..., 0] + a[..., 1] + a[..., 2], 1.0)
  return jnp.where(valid[..., None], a[..., :2] / den[..., None], 0.0)


def _rasterize_one(clip_pos, faces, resolution, kernel):
  nearest = kernel(jax.lax.stop_gradient(clip_pos), faces, resolution)
  uv = _barycentrics(clip_pos, faces, nearest.ids)
  return jnp.concatenate(
      [uv, nearest.depth[..., None], (nearest.ids + 1).astype(jnp.float32)[..., None]], axis=-1)


def rasterize(clip_pos: Float[Array, '*B V 4'], faces: Int[Array, 'F 3'],
              resolution: tuple[int, int], backend: str = 'auto') -> Float[Array, '*B H W 4']:
  """Rasterizes triangles: f32[B, V, 4] | f32[V, 4] clip positions -> f32[B, H, W, 4] | [H, W, 4].

  Args:
    clip_pos: clip-space vertices (OpenGL), batch optional.
    faces: i32[F, 3], shared by the batch.
    resolution: (H, W), static, each at most MAX_RESOLUTION.
    backend: 'auto' (C++ on CPU when built, else portable), 'ffi' (C++, CPU) or 'jax' (portable).

  Returns:
    rast (u, v, z/w, triangle_id + 1), 0 for background; (u, v) differentiable w.r.t. clip_pos.
  """
  resolution = _check_resolution(resolution)
  if clip_pos.ndim not in (2, 3) or clip_pos.shape[-1] != 4:
    raise ValueError(f'rasterize: clip_pos must be [V, 4] or [B, V, 4], got {clip_pos.shape}.')
  if faces.ndim != 2 or faces.shape[-1] != 3:
    raise ValueError(f'rasterize: faces must be [F, 3], got {faces.shape}.')
  kernel = _kernel(backend)
  faces = jnp.asarray(faces, jnp.int32)
  one = functools.partial(_rasterize_one, faces=faces, resolution=resolution, kernel=kernel)
  return jax.vmap(one)(clip_pos) if clip_pos.ndim == 3 else one(clip_pos)


def _interpolate_one(attr, rast, faces):
  ids = jax.lax.stop_gradient(rast[..., 3]).astype(jnp.int32) - 1
  corner = attr[faces][jnp.maximum(ids, 0)]  # [H, W, 3, C]
  u, v = rast[..., 0:1], rast[..., 1:2]
  out = u * corner[..., 0, :] + v * corner[..., 1, :] + (1.0 - u - v) * corner[..., 2, :]
  return jnp.where((ids >= 0)[..., None], out, 0.0)


def interpolate(attr: Float[Array, '*B V C'], rast: Float[Array, '*B H W 4'],
                faces: Int[Array, 'F 3']) -> Float[Array, '*B H W C']:
  """Per-pixel attributes: f32[B, V, C] | [V, C] -> f32[B, H, W, C] | [H, W, C], 0 on background.

  Differentiable w.r.t. attr and, through rast's (u, v), w.r.t. the clip positions.
  """
  if attr.ndim not in (2, 3) or rast.ndim != attr.ndim + 1 or rast.shape[-1] != 4:
    raise ValueError(f'interpolate: expected attr [V, C] with rast [H, W, 4] (or with a batch '
                     f'dimension on both), got {attr.shape} and {rast.shape}.')
  faces = jnp.asarray(faces, jnp.int32)
  if attr.ndim == 3:
    return jax.vmap(_interpolate_one, in_axes=(0, 0, None))(attr, rast, faces)
  return _interpolate_one(attr, rast, faces)
