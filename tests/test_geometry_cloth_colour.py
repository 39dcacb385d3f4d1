"""The cloth's colour field and the photometric term that reads it (geometry/cloth_colour.py,
train.photometric_term)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from ngd_jax import geometry
from ngd_jax import render
from ngd_jax import train

_SIZE = (48, 48)


class _Stripes(nn.Module):
  """A known cloth colour: stripes across rest x, 4 cm apart (no parameters)."""

  @nn.compact
  def __call__(self, points):
    metres = points[:, 0] * 0.208  # unit_box maps the 0.2 m plane's 0.208 m cube to [0, 1].
    value = 0.5 + 0.4 * jnp.sin(2.0 * jnp.pi * metres / 0.04)
    return jnp.stack([value, 1.0 - value, jnp.full_like(value, 0.5)], axis=-1)


def _plane() -> tuple[np.ndarray, np.ndarray]:
  """A 0.2 m square of 12 x 12 quads in the plane z = 1 m of the camera, its front towards the camera."""
  n = 13
  xs, ys = np.meshgrid(np.linspace(-0.1, 0.1, n), np.linspace(-0.1, 0.1, n))
  vertices = np.stack([xs.ravel(), ys.ravel(), np.ones(n * n)], axis=-1).astype(np.float32)
  quads = [(r * n + c, r * n + c + 1, (r + 1) * n + c + 1, (r + 1) * n + c) for r in range(n - 1) for c in range(n - 1)]
  faces = np.array([f for a, b, c, d in quads for f in ((a, c, b), (a, d, c))], np.int32)
  normal = np.cross(vertices[faces[0, 1]] - vertices[faces[0, 0]], vertices[faces[0, 2]] - vertices[faces[0, 0]])
  assert normal[2] < 0  # Towards the camera (OpenCV: the camera looks along +z).
  return vertices, faces


def _camera() -> tuple[jnp.ndarray, jnp.ndarray]:
  K = np.array([[200.0, 0, 24.0], [0, 200.0, 24.0], [0, 0, 1]], np.float32)  # 5 mm pixels on the plane.
  world_to_camera = np.eye(4, dtype=np.float32)
  return render.camera_to_clip(K, world_to_camera, _SIZE, 0.05, 20.0), jnp.asarray(world_to_camera)


def _photometric(posed, rest, faces, rgb, key):
  world_to_clip, world_to_camera = _camera()
  out = render.render_garment(posed, faces, render.build_topology(np.asarray(faces)), world_to_clip, world_to_camera,
                              _SIZE)
  mask = jnp.ones(_SIZE)
  images = train.FrameImages(target=jnp.zeros(_SIZE + (1,)), rgb=rgb, mask=mask, hands=jnp.zeros(_SIZE),
                             depth=jnp.full(_SIZE, jnp.nan), body_depth=jnp.full(_SIZE, jnp.inf),
                             body_points=jnp.zeros((0, 3)), body_normals=jnp.zeros((0, 3)))
  return out, train.photometric_term(_Stripes(), {}, out, rest, faces, images, key, 2048)


def test_unit_box_is_a_cube_around_the_rest_template_and_ignores_padding():
  rest = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.2], [0.0, 0.0, 0.0]])  # The last row: padding (vertex 0's copy).
  unit = geometry.unit_box(rest, rest)
  extent = 1.04
  np.testing.assert_allclose(unit[1] - unit[0], np.array([1.0, 0.5, 0.2]) / extent, rtol=1e-6)
  np.testing.assert_allclose(0.5 * (unit[0] + unit[1]), [0.5, 0.5, 0.5], rtol=1e-6)
  np.testing.assert_allclose(geometry.unit_box(rest[:2], rest[:2]), unit[:2])


def test_cloth_colour_starts_grey_everywhere():
  field = geometry.ClothColour.from_config(default.get_config().cloth_colour)
  params = field.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
  colour = field.apply(params, jax.random.uniform(jax.random.PRNGKey(1), (100, 3)))
  np.testing.assert_allclose(colour, 0.5)


def test_photometric_term_moves_a_sliding_surface_back_onto_its_cloth():
  """A plane whose points slid sideways over the cloth draws the stripes off their place: the term's gradient
  w.r.t. the posed points is zero where the points sit on their own cloth and points back from either side;
  the colour field is a function of the rest point, so it is the points that move, not the field."""
  rest, faces = _plane()
  rest, faces = jnp.asarray(rest), jnp.asarray(faces)
  key = jax.random.PRNGKey(0)
  true_out, _ = _photometric(rest, rest, faces, jnp.zeros(_SIZE + (3,)), key)
  rest_at_pixel = render.interpolate(rest, true_out.rast, faces)
  rgb = _Stripes().apply({}, geometry.unit_box(rest_at_pixel.reshape(-1, 3), rest)).reshape(_SIZE + (3,))

  @jax.jit
  @jax.value_and_grad
  def loss(shift):
    return _photometric(rest + jnp.array([shift, 0.0, 0.0]), rest, faces, rgb, key)[1]

  value, slope = loss(0.0)
  assert float(value) < 1e-4 and abs(float(slope)) < 1e-2
  for shift in (-0.006, -0.002, 0.002, 0.006):  # A pixel is 5 mm on the plane, a stripe 40 mm.
    value, slope = loss(shift)
    assert float(value) > 10.0 * abs(shift)
    assert float(slope) * np.sign(shift) > 10.0  # Descent moves the points back.
