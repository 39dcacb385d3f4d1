"""appearance/projection.py: the splat is the bilinear lookup's transpose, a texture seen by the frames
comes back from them, and what no frame sees is filled from near texels or the mean colour."""

import jax
import jax.numpy as jnp
import numpy as np

from ngd_jax import render
from ngd_jax.appearance import projection


def test_splat_is_the_transpose_of_the_bilinear_lookup():
  """<splat(pixels), T> = <pixels, lookup(T)> for any texture T: each pixel lands on exactly the texels
  its lookup reads, with the lookup's weights (edges and clamping included)."""
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  uv = jax.random.uniform(keys[0], (9, 11, 2), minval=-0.05, maxval=1.05)  # Some outside: clamped alike.
  weight = jax.random.uniform(keys[1], (9, 11))
  rgb = jax.random.uniform(keys[2], (9, 11, 3))
  tex = jax.random.normal(keys[3], (7, 5, 3))
  colour_sum, weight_sum = projection.splat(uv, weight, rgb, jnp.zeros((7, 5, 3)), jnp.zeros((7, 5)))
  looked_up = render.bilinear_sample(tex, uv)
  np.testing.assert_allclose(jnp.sum(colour_sum * tex), jnp.sum(weight[..., None] * rgb * looked_up), rtol=1e-5)
  np.testing.assert_allclose(jnp.sum(weight_sum), jnp.sum(weight), rtol=1e-5)


def test_a_texture_seen_at_texel_centres_comes_back_exactly():
  size = 16
  tex = np.random.default_rng(1).uniform(size=(size, size, 3)).astype(np.float32)
  centres = (np.arange(size) + 0.5) / size
  uv = np.stack(np.meshgrid(centres, 1.0 - centres), -1)  # Pixel (i, j) looks at texel (i, j)'s centre.
  frames_uv = np.stack([uv, uv])
  weight = np.ones((2, size, size), np.float32)
  rgb = np.stack([tex, tex])
  np.testing.assert_allclose(projection.texture_from_frames(frames_uv, weight, rgb, size), tex, atol=1e-5)


def test_unseen_texels_take_near_colour_near_and_the_mean_far():
  size = 256  # fill_levels(256) = 3: gaps up to 8 texels take their surroundings' colour.
  colour_sum = np.zeros((size, size, 3))
  weight_sum = np.zeros((size, size))
  colour_sum[:64, :64] = [1.0, 0.0, 0.0]  # A red block seen once per texel ...
  weight_sum[:64, :64] = 1.0
  colour_sum[:64, 64:128] = [0.0, 0.0, 3.0]  # ... beside a blue block seen three times per texel.
  weight_sum[:64, 64:128] = 3.0
  colour_sum[10, 10] = weight_sum[10, 10] = 0.0  # A one-texel gap inside the red block.
  tex = projection.fill_unseen(colour_sum, weight_sum, projection.fill_levels(size))
  np.testing.assert_allclose(tex[5, 5], [1, 0, 0], atol=1e-6)
  np.testing.assert_allclose(tex[5, 100], [0, 0, 1], atol=1e-6)
  np.testing.assert_allclose(tex[10, 10], [1, 0, 0], atol=1e-6)
  # Far from anything seen: the weighted mean of all that was seen (4,095 red texels once, 4,096 blue thrice).
  red = 4095 / (4095 + 3 * 4096)
  np.testing.assert_allclose(tex[200, 200], [red, 0.0, 1.0 - red], atol=1e-6)
