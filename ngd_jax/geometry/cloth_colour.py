"""The cloth's colour as a field over the rest surface: what ties a point of the template to one point of
the cloth in every frame (the photometric term, docs/method.md section 4, config.loss.photometric_weight).

Silhouettes, shading and depth fix the garment's shape, not where each of its points goes on it: a skirt
turned about its own axis renders the same. One colour per rest point, shared by all frames, can only
explain the frames' pictures if the same point of the template shows the same cloth in every frame; its
gradient through the rasterizer's barycentrics moves the points to where their colour is. The rest template
only gains midpoints and flips under remeshing, so its bounding box, and a point's place in it, do not change:
the field needs no transfer.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ngd_jax import hash_encoding

# The cube around the rest template is grown by this share of its largest extent on each side.
_BOX_MARGIN = 0.02


class ClothColour(hash_encoding.HashGridMLP):
  """Rest position [N, 3] in [0, 1]^3 -> RGB [N, 3] in (0, 1); sizes from config.cloth_colour."""

  @nn.compact
  def __call__(self, points: Float[Array, 'N 3']) -> Float[Array, 'N 3']:
    x = self.encoder()(points)
    for layer in range(self.mlp_depth):
      x = nn.relu(nn.Dense(self.mlp_width, name=f'hidden_{layer}')(x))
    # A zero output layer: every point starts at mid grey, so the first steps move no point.
    return nn.sigmoid(nn.Dense(3, kernel_init=nn.initializers.zeros, name='out')(x))


def unit_box(points: Float[Array, 'N 3'], rest_vertices: Float[Array, 'V 3']) -> Float[Array, 'N 3']:
  """Rest points mapped into [0, 1]^3 by the cube around the rest template's bounding box, grown by a margin
  (a cube: the grid's cells stay cubes on the cloth; padding vertices are copies of vertex 0, so they do not
  change it)."""
  low, high = jnp.min(rest_vertices, axis=0), jnp.max(rest_vertices, axis=0)
  centre = 0.5 * (low + high)
  extent = (1.0 + 2.0 * _BOX_MARGIN) * jnp.max(high - low)
  return jnp.clip(0.5 + (points - jax.lax.stop_gradient(centre)) / jax.lax.stop_gradient(extent), 0.0, 1.0)
