"""Bilinear texture sampling (docs/design.md section 4), differentiable in the texture and the uv.

uv convention (OBJ / glTF as written by xatlas users): u in [0, 1] runs left to right across the
texture image's columns, v in [0, 1] runs bottom to top, i.e. v = 0 is the bottom row (the last
row of the stored image) and v = 1 the top row. Texel (row i, column j) has its centre at
u = (j + 0.5) / Wt, v = 1 - (i + 0.5) / Ht. Lookups outside the texel centres clamp to the edge.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class Footprint(NamedTuple):
  """The four texels a bilinear lookup reads, and where between them it falls."""

  rows: tuple[Array, Array]  # int32 [*N] each: the upper and lower texel row.
  cols: tuple[Array, Array]  # int32 [*N] each: the left and right texel column.
  fy: Array  # float [*N]: 0 at the upper row's centre, 1 at the lower's.
  fx: Array  # float [*N]: 0 at the left column's centre, 1 at the right's.


def footprint(height: int, width: int, uv: Float[Array, '*N 2']) -> Footprint:
  """Where uv falls on a texture of height x width texels (clamped to the edge texels' centres).

  Differentiable in uv through fy and fx (the texel indices carry no gradient).
  """
  x = jnp.clip(uv[..., 0] * width - 0.5, 0.0, width - 1.0)
  y = jnp.clip((1.0 - uv[..., 1]) * height - 0.5, 0.0, height - 1.0)
  x0 = jnp.floor(jax.lax.stop_gradient(x))
  y0 = jnp.floor(jax.lax.stop_gradient(y))
  c0, r0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  c1, r1 = jnp.minimum(c0 + 1, width - 1), jnp.minimum(r0 + 1, height - 1)
  return Footprint((r0, r1), (c0, c1), y - y0, x - x0)


def bilinear_sample(tex: Float[Array, 'Ht Wt C'], uv: Float[Array, '*N 2']) -> Float[Array, '*N C']:
  """Bilinear lookup of tex at uv.

  Differentiable w.r.t. tex and uv (the uv gradient is the piecewise-constant slope between
  texel centres, zero where clamped).
  """
  if tex.ndim != 3 or uv.shape[-1] != 2:
    raise ValueError(f'bilinear_sample: expected tex [Ht, Wt, C] and uv [..., 2], got {tex.shape} and '
                     f'{uv.shape}.')
  (r0, r1), (c0, c1), fy, fx = footprint(tex.shape[0], tex.shape[1], uv)
  fx, fy = fx[..., None], fy[..., None]
  top = tex[r0, c0] * (1.0 - fx) + tex[r0, c1] * fx
  bottom = tex[r1, c0] * (1.0 - fx) + tex[r1, c1] * fx
  return top * (1.0 - fy) + bottom * fy
