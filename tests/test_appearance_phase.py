"""appearance_phase.py: the atlas, the atlas coordinates a camera sees, the covered-pixel lists a step
shades, and the texture pose code's normalisation."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from ngd_jax import appearance_phase
from ngd_jax import optimizers


def grid(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
  """A flat n x n quad grid in [-0.5, 0.5]^2 at z = 0.5, two counter-clockwise triangles per quad."""
  xs, ys = np.meshgrid(np.linspace(-0.5, 0.5, n + 1), np.linspace(-0.5, 0.5, n + 1))
  vertices = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 0.5)], -1).astype(np.float32)
  index = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
  a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel(), index[1:, :-1].ravel()
  return vertices, np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).astype(np.int32)


def areas(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
  corners = np.pad(points, ((0, 0), (0, 3 - points.shape[1])))[faces]
  return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=-1)


def test_atlas_maps_each_face_to_an_undistorted_triangle_in_the_unit_square():
  vertices, faces = grid()
  uvs, uv_faces = appearance_phase.atlas(vertices, faces)
  assert uv_faces.shape == faces.shape and uvs.min() >= 0 and uvs.max() <= 1
  ratio = areas(uvs, uv_faces) / areas(vertices, faces)  # A flat grid: one scale for every face.
  np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-3)


def test_rasterize_uv_interpolates_the_atlas_at_pixel_centres():
  vertices, faces = grid()
  uvs = vertices[:, :2] + 0.5  # u = x + 0.5, v = y + 0.5.
  size = 16
  seen = appearance_phase.rasterize_uv(jnp.asarray(vertices), jnp.asarray(faces), jnp.asarray(uvs),
                                       jnp.asarray(faces), jnp.eye(4), (size, size),
                                       default.get_config().render.backend)
  coverage, uv = np.asarray(seen.coverage), np.asarray(seen.uv)
  centres = 2 * (np.arange(size) + 0.5) / size - 1  # Clip = world here: x_ndc of column c, -y_ndc of row c.
  inside = np.abs(centres) < 0.5
  np.testing.assert_array_equal(coverage > 0, inside[:, None] & inside[None, :])
  rows, cols = np.nonzero(coverage)
  np.testing.assert_allclose(uv[rows, cols], np.stack([centres[cols] + 0.5, -centres[rows] + 0.5], -1), atol=1e-5)


def test_covered_pixels_are_padded_to_a_shared_capacity():
  coverage = np.zeros((40, 40))
  coverage[3, [5, 7]] = coverage[39, 39] = 1
  pixels = appearance_phase.covered_pixels(coverage)
  assert pixels.shape == (1024,) and pixels.dtype == np.int32
  np.testing.assert_array_equal(pixels[:3], [3 * 40 + 5, 3 * 40 + 7, 40 * 40 - 1])
  assert (pixels[3:] == -1).all()
  assert appearance_phase.covered_pixels(coverage, capacity=5).tolist() == [125, 127, 1599, -1, -1]
  # 1,600 covered: the next multiple of 1024.
  assert appearance_phase.covered_pixels(np.ones((40, 40))).shape == (2048,)


def test_texture_code_spans_the_unit_box_over_the_training_poses():
  config = default.get_config()
  config.appearance.hash_levels, config.appearance.hash_log2_table_size, config.appearance.texture_size = 2, 8, 8
  poses = np.random.default_rng(0).normal(size=(12, 72)).astype(np.float32)
  state = appearance_phase.init_state(config, np.zeros((3, 2), np.float32), np.zeros((1, 3), np.int32), poses,
                                      optimizers.AppearanceOptimizer.from_config(config, 10), jax.random.PRNGKey(0))
  codes = np.stack([np.asarray(appearance_phase.texture_code(state, jnp.asarray(pose))) for pose in poses])
  np.testing.assert_allclose(codes.min(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(codes.max(0), 1.0, atol=1e-5)
  np.testing.assert_array_equal(state.params['static'], np.full((8, 8, 3), config.appearance.texture_init, np.float32))


def test_render_textured_hides_the_garment_where_an_occluder_is_nearer():
  config = default.get_config()
  config.appearance.hash_levels, config.appearance.hash_log2_table_size, config.appearance.texture_size = 2, 8, 8
  vertices, faces = grid()
  uvs = vertices[:, :2] + 0.5
  poses = np.random.default_rng(0).normal(size=(3, 72)).astype(np.float32)
  state = appearance_phase.init_state(config, uvs, faces, poses,
                                      optimizers.AppearanceOptimizer.from_config(config, 10), jax.random.PRNGKey(0))
  size = (16, 16)
  args = (config, state, jnp.asarray(vertices), jnp.asarray(faces), jnp.eye(4), jnp.asarray(poses[0]), size)
  whole = appearance_phase.render_textured(*args)
  garment_depth = 0.5  # z/w of the grid: clip = world.
  occluder = np.full(size, np.inf, np.float32)
  occluder[:, :8] = garment_depth - 0.1  # Nearer than the garment on the left half ...
  occluder[:8, 8:] = garment_depth + 0.1  # ... farther in the top right quarter.
  hidden = appearance_phase.render_textured(*args, occluder)
  np.testing.assert_array_equal(hidden.coverage[:, :8], 0.0)
  np.testing.assert_array_equal(hidden.coverage[:, 8:], whole.coverage[:, 8:])
  np.testing.assert_array_equal(hidden.rgb[:, :8], 0.0)
  assert whole.coverage[:, :8].sum() > 0 and np.all(hidden.rgb[:, 8:] == whole.rgb[:, 8:])
