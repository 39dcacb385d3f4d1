"""Screen-space pieces shared by the rasterizer kernels, rasterize and antialias.

Pixel centres in NDC (rasterize, antialias) and in pixel units (the kernels, csrc/rasterizer.cc),
the kernels' result, and the 2-D homogeneous edge functions: triangles are set up from their clip
(x, y, w) without dividing by w (docs/design.md section 4), which is what clips them exactly at
the camera plane.
"""

from typing import Callable, NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float, Int
import numpy as np


class PixelCentres(NamedTuple):
  """Centres of the pixel columns and rows; row 0 is the top row, so y decreases."""

  x: Float[np.ndarray, 'W']
  y: Float[np.ndarray, 'H']


def ndc_centres(height: int, width: int) -> PixelCentres:
  """Host: NDC pixel centres, x = 2 (c + 0.5) / W - 1 and y = 1 - 2 (r + 0.5) / H, in f32."""
  x = (2.0 * (np.arange(width) + 0.5) / width - 1.0).astype(np.float32)
  y = (1.0 - 2.0 * (np.arange(height) + 0.5) / height).astype(np.float32)
  return PixelCentres(x, y)


def pixel_centres(height: int, width: int) -> PixelCentres:
  """Host: pixel-unit centres (NDC times W / 2 and H / 2, exact in f32), x right and y up."""
  x = (np.arange(width, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5 * width)
  y = np.float32(0.5 * height) - (np.arange(height, dtype=np.float32) + np.float32(0.5))
  return PixelCentres(x, y)


class NearestTriangles(NamedTuple):
  """What a rasterizer kernel finds per pixel of one image."""

  depth: Float[Array, 'H W']  # z/w of the nearest triangle, 0 for background.
  ids: Int[Array, 'H W']  # Its index, -1 for background.


class EdgeFunctions(NamedTuple):
  """e_i(px, py) = a_i + b_i px + c_i py for edge i of each triangle, the edge opposite vertex i.

  e_i is 0 on the edge's line and det at vertex i (after the division by its w), so a pixel is
  inside where every sign * e_i >= 0.
  """

  a: Float[Array, '*T 3']
  b: Float[Array, '*T 3']
  c: Float[Array, '*T 3']
  det: Float[Array, '*T']  # Determinant of the corners' (x, y, w) rows: its sign is the winding.

  @property
  def sign(self) -> Float[Array, '*T']:
    """+1 where det > 0, else -1."""
    return jnp.where(self.det > 0, 1.0, -1.0)


def edge_functions(x: Float[Array, '*T 3'], y: Float[Array, '*T 3'], w: Float[Array, '*T 3'],
                   product: Callable[[Array, Array], Array] = jnp.multiply) -> EdgeFunctions:
  """Edge functions of triangles with homogeneous 2-D corners (x, y, w), the last axis.

  (b_i, c_i, a_i) is the cross product of the rows (x, y, w) of corners i + 1 and i + 2 (mod 3),
  so the edge's line through both corners is where e_i = 0. `product` multiplies two arrays: the
  portable kernel passes its exact split product, to get the C++ kernel's numbers bit for bit.
  """
  xj, yj, wj = (jnp.roll(t, -1, axis=-1) for t in (x, y, w))
  xk, yk, wk = (jnp.roll(t, -2, axis=-1) for t in (x, y, w))
  a = product(xj, yk) - product(yj, xk)
  b = product(yj, wk) - product(wj, yk)
  c = product(wj, xk) - product(xj, wk)
  det = ((product(x[..., 0], b[..., 0]) + product(y[..., 0], c[..., 0]))
         + product(w[..., 0], a[..., 0]))
  return EdgeFunctions(a, b, c, det)
