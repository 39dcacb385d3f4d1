"""Tests of the remeshing face scores (docs/method.md section 6): hand-computed values and a pixel loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import remesh


def _hand_example():
  """A 2x3 image: faces 0 and 2 visible, face 1 hidden, one background pixel, capacity 4."""
  # Gradient vectors (2 channels) with norms 3, 5, 0 / 4, 1, 13.
  grad = np.array([[[3., 0.], [3., 4.], [0., 0.]],
                   [[0., 4.], [1., 0.], [5., 12.]]], np.float32)
  mask = np.array([[1, 1, 1], [1, 1, 0]], np.float32)[..., None]
  ids = np.array([[1, 1, 0], [3, 3, 3]], np.float32)  # triangle id + 1
  rast = np.zeros((2, 3, 4), np.float32)
  rast[..., 3] = ids
  return grad, mask, rast


def _slow_stats(grad, mask, rast, capacity):
  """Obvious per-pixel loop: norm, mask, min-max over the image, then per-face sum and count."""
  height, width = rast.shape[:2]
  norms = np.zeros((height, width))
  for r in range(height):
    for c in range(width):
      norms[r, c] = np.sqrt(np.sum(grad[r, c].astype(np.float64) ** 2)) * mask[r, c, 0]
  span = norms.max() - norms.min()
  norms = (norms - norms.min()) / span if span > 0 else np.zeros_like(norms)
  pixel_sum, pixel_count = np.zeros(capacity), np.zeros(capacity, np.int64)
  for r in range(height):
    for c in range(width):
      face = int(rast[r, c, 3]) - 1
      if face >= 0:
        pixel_sum[face] += norms[r, c]
        pixel_count[face] += 1
  return pixel_sum, pixel_count


def test_hand_built_frame_gives_known_face_sums():
  grad, mask, rast = _hand_example()
  stats = remesh.frame_face_stats(grad, mask, rast, face_capacity=4)
  # Masked norms 3, 5, 0 / 4, 1, 0 (13 is outside the mask); min 0, max 5 -> divide by 5.
  # Face 0: pixels 3/5 + 5/5; face 2: 4/5 + 1/5 + 0 (masked but rasterized pixel still counts).
  np.testing.assert_allclose(stats.pixel_sum, [1.6, 0.0, 1.0, 0.0], atol=1e-6)
  np.testing.assert_array_equal(stats.pixel_count, [2, 0, 3, 0])


def test_random_frames_match_pixel_loop_batched_and_jitted():
  rng = np.random.default_rng(0)
  batch, height, width, capacity = 3, 7, 9, 12
  grad = rng.normal(size=(batch, height, width, 1)).astype(np.float32)
  mask = (rng.random((batch, height, width, 1)) > 0.3).astype(np.float32)
  rast = np.zeros((batch, height, width, 4), np.float32)
  # Ids below the capacity: the padded faces 9..11 are never seen, as in a padded mesh.
  rast[..., 3] = rng.integers(0, 10, size=(batch, height, width))
  jitted = jax.jit(remesh.frame_face_stats, static_argnums=3)
  batched = jitted(grad, mask, rast, capacity)
  for b in range(batch):
    expected_sum, expected_count = _slow_stats(grad[b], mask[b], rast[b], capacity)
    single = remesh.frame_face_stats(grad[b], mask[b], rast[b], capacity)
    np.testing.assert_allclose(batched.pixel_sum[b], expected_sum, atol=1e-5)
    np.testing.assert_array_equal(batched.pixel_count[b], expected_count)
    np.testing.assert_allclose(single.pixel_sum, expected_sum, atol=1e-5)


def test_accumulate_sums_per_frame_averages_and_scores_are_min_max():
  grad, mask, rast = _hand_example()
  accumulator = remesh.init_accumulator(4)
  frame = remesh.frame_face_stats(grad, mask, rast, 4)
  accumulator = jax.jit(remesh.accumulate)(accumulator, frame)
  # A second frame that sees only face 1, on all 6 pixels, with a uniform gradient of 1 except
  # one pixel of 0: normalised values 1 (x5) and 0 -> average 5/6.
  grad2 = np.ones((2, 3, 1), np.float32)
  grad2[0, 0] = 0.0
  rast2 = np.zeros((2, 3, 4), np.float32)
  rast2[..., 3] = 2
  frame2 = remesh.frame_face_stats(grad2, np.ones((2, 3, 1)), rast2, 4)
  accumulator = remesh.accumulate(accumulator, frame2)
  # Face averages per frame: frame 1 -> (0.8, 0, 1/3, 0), frame 2 -> (0, 5/6, 0, 0).
  np.testing.assert_allclose(accumulator.average_sum, [0.8, 5 / 6, 1 / 3, 0.0], atol=1e-6)
  np.testing.assert_array_equal(accumulator.visible_frames, [1, 1, 1, 0])
  scores = remesh.face_scores(accumulator, num_faces=3)
  np.testing.assert_allclose(scores, [(0.8 - 1 / 3) / (5 / 6 - 1 / 3), 1.0, 0.0], atol=1e-6)


def test_constant_gradient_and_uniform_scores_give_zero():
  rast = np.zeros((4, 4, 4), np.float32)
  rast[..., 3] = 1
  stats = remesh.frame_face_stats(jnp.ones((4, 4, 1)), jnp.ones((4, 4, 1)), rast, 2)
  np.testing.assert_array_equal(stats.pixel_sum, [0.0, 0.0])
  uniform = remesh.FaceScoreAccumulator(jnp.full((5,), 2.0), jnp.ones((5,), jnp.int32))
  np.testing.assert_array_equal(remesh.face_scores(uniform, 5), np.zeros(5))


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='rast must be'):
    remesh.frame_face_stats(np.zeros((3,)), np.zeros((3,)), np.zeros((3, 4)), 2)
  with pytest.raises(ValueError, match='exceeds the accumulator capacity'):
    remesh.face_scores(remesh.init_accumulator(2), 3)
