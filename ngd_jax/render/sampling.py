"""Bilinear texture sampling (docs/design.md section 4), differentiable in the texture and the uv.

uv convention (OBJ / glTF as written by xatlas users): u in [0, 1] runs left to right across the
texture image's columns, v in [0, 1] runs bottom to top, i.e. v = 0 is the bottom row (the last
row of the stored image) and v = 1 the top row. Texel (row i, column j) has its centre at
u = (j + 0.5) / Wt, v = 1 - (i + 0.5) / Ht. Lookups outside the texel centres clamp to the edge.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def bilinear_sample(tex: Float[Array, 'Ht Wt C'], uv: Float[Array, '*N 2']) -> Float[Array, '*N C']:
  """Bilinear lookup of tex at uv.

  Differentiable w.r.t. tex and uv (the uv gradient is the piecewise-constant slope between
  texel centres, zero where clamped).
  """
  if tex.ndim != 3 or uv.shape[-1] != 2:
    raise ValueError(f'bilinear_sample: expected tex [Ht, Wt, C] and uv [..., 2], got {tex.shape} and '
                     f'{uv.shape}.')
  tex_h, tex_w = tex.shape[:2]
  x = jnp.clip(uv[..., 0] * tex_w - 0.5, 0.0, tex_w - 1.0)
  y = jnp.clip((1.0 - uv[..., 1]) * tex_h - 0.5, 0.0, tex_h - 1.0)
  x0 = jnp.floor(jax.lax.stop_gradient(x))
  y0 = jnp.floor(jax.lax.stop_gradient(y))
  fx, fy = (x - x0)[..., None], (y - y0)[..., None]
  c0, r0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  c1, r1 = jnp.minimum(c0 + 1, tex_w - 1), jnp.minimum(r0 + 1, tex_h - 1)
  top = tex[r0, c0] * (1.0 - fx) + tex[r0, c1] * fx
  bottom = tex[r1, c0] * (1.0 - fx) + tex[r1, c1] * fx
  return top * (1.0 - fy) + bottom * fy
