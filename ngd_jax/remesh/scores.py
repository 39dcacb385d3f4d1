"""Face scores for adaptive remeshing, accumulated inside the training step (docs/method.md section 6).

Per frame: the per-pixel norm of d(render loss)/d(rendered diffuse), times the garment mask,
min-max normalised over the image; then per face the sum of that value and the number of pixels
rasterized to the face (segment sums by triangle id, fixed number of segments = face capacity).

Combination over the epoch, following docs/method.md section 6 ("averaged over each visible face's pixels;
accumulated over all frames of that epoch"): for each frame t the face average
a_{f,t} = sum_{p in f,t} g_p / count_{f,t} is formed where count_{f,t} > 0 (and 0 otherwise);
the epoch accumulates S_f = sum_t a_{f,t}, i.e. a SUM of per-frame averages (a face seen in more
frames scores higher), not the pooled average sum_t sum_p g / sum_t count. The face score is
S_f min-max normalised over the real faces.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


class FrameFaceStats(NamedTuple):
  """Per-face statistics of one frame (or a batch of frames, leading axis B).

  Attributes:
    pixel_sum: float32 [..., face_capacity], normalised gradient norm summed over the face's
      pixels.
    pixel_count: int32 [..., face_capacity], number of pixels whose triangle id is the face.
  """
  pixel_sum: Float[Array, '*b f']
  pixel_count: Int[Array, '*b f']


class FaceScoreAccumulator(NamedTuple):
  """Epoch accumulator, carried by the training loop (same capacity as the padded faces).

  Attributes:
    average_sum: float32 [face_capacity], sum over frames of the per-frame face averages.
    visible_frames: int32 [face_capacity], number of frames in which the face had pixels.
  """
  average_sum: Float[Array, 'f']
  visible_frames: Int[Array, 'f']


def normalized_gradient_norm(grad_diffuse: Float[Array, 'h w c'],
                             mask: Float[Array, 'h w *one']) -> Float[Array, 'h w']:
  """||d loss / d diffuse|| per pixel, times the garment mask, min-max normalised over the image.

  The min and max run over the whole masked image (background pixels are 0). A constant image
  gives all zeros.
  """
  norm = jnp.linalg.norm(grad_diffuse.astype(jnp.float32), axis=-1)
  masked = norm * jnp.reshape(mask, norm.shape).astype(jnp.float32)
  low, high = jnp.min(masked), jnp.max(masked)
  span = high - low
  return jnp.where(span > 0, (masked - low) / jnp.where(span > 0, span, 1.0), 0.0)


def _pixel_faces(rast: Float[Array, 'h w 4'], face_capacity: int) -> Int[Array, 'p']:
  """The face of each pixel; background (-1) goes to an out-of-range segment, which segment_sum drops."""
  face_id = rast[..., 3].reshape(-1).astype(jnp.int32) - 1
  return jnp.where(face_id >= 0, face_id, face_capacity)


def face_pixel_counts(rast: Float[Array, 'h w 4'], face_capacity: int) -> Int[Array, 'f']:
  """Pixels rasterized to each face of one frame (0: the face is not visible)."""
  face_id = _pixel_faces(rast, face_capacity)
  return jax.ops.segment_sum(jnp.ones_like(face_id), face_id, num_segments=face_capacity)


def _frame_face_stats(grad_diffuse, mask, rast, face_capacity):
  values = normalized_gradient_norm(grad_diffuse, mask).reshape(-1)
  pixel_sum = jax.ops.segment_sum(values, _pixel_faces(rast, face_capacity), num_segments=face_capacity)
  return FrameFaceStats(pixel_sum, face_pixel_counts(rast, face_capacity))


def frame_face_stats(grad_diffuse: Float[Array, '*b h w c'], mask: Float[Array, '*b h w 1'],
                     rast: Float[Array, '*b h w 4'], face_capacity: int) -> FrameFaceStats:
  """Per-face gradient sums and pixel counts of one frame [H,W,.] or a batch of frames [B,H,W,.].

  Args:
    grad_diffuse: float [..., H, W, C], gradient of the render loss w.r.t. the rendered diffuse
      image. In the training step: add a zero image `diffuse_offset` to the rendered diffuse
      inside the loss and differentiate w.r.t. it too (one more argnum of the same backward pass).
    mask: float/bool [..., H, W, 1] or [..., H, W], the target garment mask.
    rast: float [..., H, W, 4], rasterizer output, triangle id + 1 in channel 3 (0 = background).
    face_capacity: static number of segments (the padded face count).

  Returns:
    FrameFaceStats with arrays [..., face_capacity]; not differentiated (values only).
  """
  grad_diffuse, mask, rast = jax.lax.stop_gradient((grad_diffuse, mask, rast))
  if rast.ndim == 3:
    return _frame_face_stats(grad_diffuse, mask, rast, face_capacity)
  if rast.ndim == 4:
    per_frame = lambda g, m, r: _frame_face_stats(g, m, r, face_capacity)
    return jax.vmap(per_frame)(grad_diffuse, mask, rast)
  raise ValueError(f'rast must be [H, W, 4] or [B, H, W, 4], got shape {rast.shape}.')


def init_accumulator(face_capacity: int) -> FaceScoreAccumulator:
  """An empty epoch accumulator for `face_capacity` faces."""
  return FaceScoreAccumulator(jnp.zeros((face_capacity,), jnp.float32),
                              jnp.zeros((face_capacity,), jnp.int32))


def accumulate(accumulator: FaceScoreAccumulator, stats: FrameFaceStats) -> FaceScoreAccumulator:
  """Adds the per-face averages of one frame (or each frame of a batch) to the accumulator."""
  visible = stats.pixel_count > 0
  average = jnp.where(visible, stats.pixel_sum / jnp.maximum(stats.pixel_count, 1), 0.0)
  batch_axes = tuple(range(average.ndim - 1))
  return FaceScoreAccumulator(
      accumulator.average_sum + jnp.sum(average, axis=batch_axes),
      accumulator.visible_frames + jnp.sum(visible.astype(jnp.int32), axis=batch_axes))


def face_scores(accumulator: FaceScoreAccumulator, num_faces: int) -> np.ndarray:
  """Host: the face score in [0, 1], float64 [num_faces] (real faces only), docs/method.md section 6.

  S_f (sum over the epoch's frames of the per-frame face averages) min-max normalised over the
  real faces; faces never visible keep S_f = 0 before normalisation. All-equal scores give 0.
  """
  average_sum = np.asarray(jax.device_get(accumulator.average_sum), dtype=np.float64)
  if num_faces > average_sum.shape[0]:
    raise ValueError(
        f'num_faces={num_faces} exceeds the accumulator capacity {average_sum.shape[0]}.')
  scores = average_sum[:num_faces]
  if scores.size == 0 or scores.max() <= scores.min():
    return np.zeros_like(scores)
  return (scores - scores.min()) / (scores.max() - scores.min())
