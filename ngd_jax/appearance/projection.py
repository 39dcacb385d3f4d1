"""The static texture read off the training frames: each frame's garment pixels splatted onto the atlas.

With the geometry frozen, the rendered colour is linear in T^S (a bilinear lookup per pixel), so the
frames say directly what each texel should be: the weighted mean of the pixels whose lookup touches
it, with the lookup's own bilinear weights. Texels no frame sees take the colour of their
neighbourhood where it is near (chart borders, gaps between the pixels' footprints: pull-push over a
few levels of a pyramid) and the mean colour of the garment elsewhere (cloth always turned away).

Why it exists: the paper starts T^S at 0.2 everywhere and lets 1,100 epochs of Adam move it; at a
few epochs Adam's decaying rate cannot carry a texel that far (appearance.lr 0.01 decaying
log-linearly moves a texel at most ~1.6e-3 per step on average), so the texture ends near a flat
colour (docs/method.md section 7, appearance.texture_from_frames).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ngd_jax.render import sampling


@jax.jit
def splat(uv: Float[Array, 'H W 2'], weight: Float[Array, 'H W'], rgb: Float[Array, 'H W 3'],
          colour_sum: Float[Array, 'S S 3'], weight_sum: Float[Array, 'S S']
          ) -> tuple[Float[Array, 'S S 3'], Float[Array, 'S S']]:
  """Adds one frame's pixels to the texel sums, each pixel spread over the four texels its bilinear
  lookup reads (render/sampling.py's footprint, with its weights), scaled by `weight` (0 outside the garment)."""
  (r0, r1), (c0, c1), fy, fx = sampling.footprint(colour_sum.shape[0], colour_sum.shape[1], uv.reshape(-1, 2))
  w = weight.reshape(-1)
  colours = rgb.reshape(-1, 3)
  for rows, cols, corner in ((r0, c0, (1 - fy) * (1 - fx)), (r0, c1, (1 - fy) * fx), (r1, c0, fy * (1 - fx)),
                             (r1, c1, fy * fx)):
    corner_weight = w * corner
    colour_sum = colour_sum.at[rows, cols].add(corner_weight[:, None] * colours)
    weight_sum = weight_sum.at[rows, cols].add(corner_weight)
  return colour_sum, weight_sum


def fill_unseen(colour_sum: np.ndarray, weight_sum: np.ndarray, levels: int) -> np.ndarray:
  """Host: the texture [S, S, 3] from splatted sums: the weighted mean where a texel has at least one
  pixel's worth of weight, blended towards the next coarser level's colour below that (pull-push), for
  `levels` levels (gaps up to 2^levels texels wide); beyond, the mean colour of everything seen.

  Coarser levels would average unrelated charts of the atlas into blocks of one colour (cloth no camera
  saw would come out in large patches), so the fill stops where neighbourhoods stop meaning anything.
  """
  colour_sum, weight_sum = np.asarray(colour_sum, np.float64), np.asarray(weight_sum, np.float64)
  height, width = weight_sum.shape
  if levels <= 0 or height <= 1 or width <= 1:
    coarse = np.broadcast_to(colour_sum.sum((0, 1)) / max(weight_sum.sum(), 1e-12), (1, 1, 3))
  else:
    # Pull: 2x2 sums (the odd last row / column padded with zeros, which add no weight).
    padded_c = np.pad(colour_sum, ((0, height % 2), (0, width % 2), (0, 0)))
    padded_w = np.pad(weight_sum, ((0, height % 2), (0, width % 2)))
    coarse_c = padded_c.reshape(padded_c.shape[0] // 2, 2, padded_c.shape[1] // 2, 2, 3).sum((1, 3))
    coarse_w = padded_w.reshape(padded_w.shape[0] // 2, 2, padded_w.shape[1] // 2, 2).sum((1, 3))
    coarse = fill_unseen(coarse_c, coarse_w, levels - 1)
  # Push: the coarser colour where this level saw too little.
  # Each coarse texel covers 2x2 of this level's (or, from the mean colour, all of them).
  rows, cols = -(-height // coarse.shape[0]), -(-width // coarse.shape[1])
  upsampled = np.repeat(np.repeat(coarse, rows, axis=0), cols, axis=1)[:height, :width]
  confidence = np.minimum(weight_sum, 1.0)[..., None]
  mean = colour_sum / np.maximum(weight_sum, 1e-12)[..., None]
  return (confidence * mean + (1.0 - confidence) * upsampled).astype(np.float32)


def texture_from_frames(uv: Float[Array, 'T H W 2'], weight: Float[Array, 'T H W'], rgb: Float[Array, 'T H W 3'],
                        size: int) -> np.ndarray:
  """Host: the static texture [size, size, 3] that the frames show (float colours in [0, 1]), frame by
  frame on the device, filled on the host."""
  colour_sum = jnp.zeros((size, size, 3), jnp.float32)
  weight_sum = jnp.zeros((size, size), jnp.float32)
  for t in range(uv.shape[0]):
    colour_sum, weight_sum = splat(uv[t], weight[t], rgb[t], colour_sum, weight_sum)
  return np.clip(fill_unseen(np.asarray(colour_sum), np.asarray(weight_sum), fill_levels(size)), 0.0, 1.0)


def fill_levels(size: int) -> int:
  """Pull-push levels for an atlas of `size` texels: gaps up to 1/32 of the atlas take their surroundings'
  colour (chart borders, cloth seen from too far for every texel to get a pixel)."""
  return max(int(np.log2(max(size, 1))) - 5, 0)
