"""NGD's loss terms (docs/method.md sections 4 and 7), each a pure function returning a scalar.

Images are float32 [H, W, C] (or [H, W] for masks) in [0, 1]; every function is jit-able and
differentiable in its first (rendered) argument.
"""

from typing import NamedTuple

import dm_pix
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def huber(pred: Array, target: Array, delta: float) -> Array:
  """Mean Huber loss (quadratic below `delta`, linear above)."""
  err = jnp.abs(pred - target)
  quadratic = jnp.minimum(err, delta)
  return jnp.mean(0.5 * quadratic**2 + delta * (err - quadratic))


def ssim_loss(pred: Float[Array, 'H W C'], target: Float[Array, 'H W C']) -> Array:
  """1 - SSIM with an 11x11 Gaussian window, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2."""
  ssim = dm_pix.ssim(pred, target, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)
  return 1.0 - ssim


def silhouette_loss(alpha: Float[Array, 'H W'], mask: Float[Array, 'H W'], occluder: Float[Array, 'H W']) -> Array:
  """MSE(alpha x (1 - occluder), mask): where something else hides the garment (the hands mask, the body in
  front of the rendered garment), the garment's pixels are not asked to disappear from the image."""
  return jnp.mean((alpha * (1.0 - occluder) - mask) ** 2)


class RenderLossWeights(NamedTuple):
  """Weights of the render term: render x [huber x Huber + ssim x (1 - SSIM) + mask x silhouette]."""

  render: float
  huber: float
  huber_delta: float
  ssim: float
  mask: float
  shading_erode: int  # Border pixels of the garment mask left out of the Huber and SSIM terms ('mask' region).
  shading_region: str = 'mask'  # Where the Huber and SSIM terms compare shading: 'mask' or 'image' (render_loss).


def occluder_mask(hands: Float[Array, 'H W'], mask: Float[Array, 'H W'], garment_depth: Float[Array, 'H W'],
                  body_depth: Float[Array, 'H W']) -> Float[Array, 'H W']:
  """Where the frame shows something else in front of the rendered garment, 0/1 (no gradient).

  The hands mask, and the pixels outside the garment mask where the posed body is nearer than the
  rendered garment (depths as z/w, nearer is smaller; `garment_depth` is inf where no garment is drawn, so
  that the antialiased edge of a garment passing behind an arm is not pulled in either; `body_depth` is inf
  where there is no body). Inside the garment mask nothing hides the garment, so a render with the body in
  front there is wrong and keeps its silhouette term.
  """
  body_front = (body_depth < garment_depth) & (mask < 0.5)
  return jax.lax.stop_gradient(jnp.maximum(hands, body_front.astype(hands.dtype)))


def render_loss(
    diffuse: Float[Array, 'H W 1'],
    alpha: Float[Array, 'H W'],
    target_diffuse: Float[Array, 'H W 1'],
    mask: Float[Array, 'H W'],
    occluder: Float[Array, 'H W'],
    weights: RenderLossWeights,
) -> dict[str, Array]:
  """The weighted render term (docs/method.md section 4). Returns the three weighted parts by name (they sum
  to the render term).

  Where the Huber and SSIM terms compare shading (`weights.shading_region`):
  - 'mask' (the paper): the rendered diffuse masked by the target mask, less its `weights.shading_erode`
    border pixels. A render that covers too much costs only the silhouette term there, one that covers too
    little also loses the shading it misses, so a fit that cannot match every frame errs wide; and a border
    pixel of a binary mask holds the full target shading while the antialiased render of the true garment
    covers part of it, so there the shading terms pull every silhouette outwards.
  - 'image': the whole render against the target (zero off the mask), except where the occluder hides the
    garment: garment drawn off the mask costs its shading too, and the border pulls both ways.
  """
  if weights.shading_region == 'image':
    masked, target = diffuse * (1.0 - occluder)[..., None], target_diffuse * mask[..., None]
  else:
    inner = erode(mask, weights.shading_erode)[..., None]
    masked, target = diffuse * inner, target_diffuse * inner
  scale = weights.render
  return {
      'huber': scale * weights.huber * huber(masked, target, weights.huber_delta),
      'ssim': scale * weights.ssim * ssim_loss(masked, target),
      'mask': scale * weights.mask * silhouette_loss(alpha, mask, occluder),
  }


def jacobian_loss(
    jacobians: Float[Array, 'F 3 3'], face_weight: Float[Array, 'F'], num_faces: Array
) -> Array:
  """mean((J - I)^2) over the 9 entries of `num_faces` real faces.

  `face_weight` is 0 for padding faces and, after warm-up, for faces not visible in the frame
  (they count as identity and contribute 0, docs/method.md section 4); the mean still divides by all
  real faces, as the authors do.
  """
  sq = jnp.sum((jacobians - jnp.eye(3)) ** 2, axis=(1, 2))
  return jnp.sum(sq * face_weight) / (9.0 * num_faces)


def stretch_smoothness_loss(jacobians: Float[Array, 'F 3 3'], face_pairs: Array) -> Array:
  """mean over faces sharing an edge of ||C_f - C_g||^2 / 9, C = J^T J (right Cauchy-Green tensor).

  A monocular view constrains only the faces it sees; this prior spreads how they stretch to the
  unseen side (the back of a skirt lengthens with its front). C is in rest coordinates, so it
  ignores how a face is rotated: the front's tilt is not copied to the back (a prior on J - J_0
  copies it: on the long_skirt case it ended at 18.9 Chamfer x1e3 against 13.1 without it, issue
  11). `face_pairs` int [E, 2]; rows (f, f) are padding.
  """
  first, second = face_pairs[:, 0], face_pairs[:, 1]
  real = (first != second).astype(jacobians.dtype)
  stretch = jnp.einsum('fki,fkj->fij', jacobians, jacobians)
  sq = jnp.sum((stretch[first] - stretch[second]) ** 2, axis=(1, 2))
  return jnp.sum(sq * real) / (9.0 * jnp.maximum(jnp.sum(real), 1.0))


def penetration_loss(distance: Float[Array, 'V'], vertex_mask: Array, margin: float) -> Array:
  """mean over real vertices of max(0, margin - d)^2, d the signed distance to the body (m, < 0 inside).

  The body is in the garment: an unseen side that the render term leaves free must not fold into
  it. `vertex_mask` is False on padding vertices.
  """
  weight = vertex_mask.astype(distance.dtype)
  return jnp.sum(jnp.maximum(margin - distance, 0.0) ** 2 * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def posed_penetration_loss(posed: Float[Array, 'V 3'], vertex_mask: Array, body_points: Float[Array, 'N 3'],
                           body_normals: Float[Array, 'N 3'], margin: float) -> Array:
  """penetration_loss of the posed garment against the posed body of its frame, d the distance of each vertex
  along the normal of its nearest body sample: (x - b) . n (a signed plane distance, as SNUG and HOOD measure
  collisions).

  The rest-space term cannot see a leg swinging into the back of a skirt (skinning moves the leg, not the hem
  that hangs from the waist); no camera sees the back either, so without this the fit lets the leg through.
  The nearest sample is chosen without gradient; the gradient moves the vertex along that sample's normal.
  """
  nearest = jnp.argmin(_squared_distances(jax.lax.stop_gradient(posed), body_points), axis=1)
  distance = jnp.sum((posed - body_points[nearest]) * body_normals[nearest], axis=-1)
  return penetration_loss(distance, vertex_mask, margin)


def _squared_distances(points: Float[Array, 'V 3'], others: Float[Array, 'N 3']) -> Float[Array, 'V N']:
  """|p - o|^2 for every pair by one matrix product, about the others' centre and at full float32 precision
  (not TF32 on a GPU): the cancellation error is then ~1e-7 m^2, enough to rank."""
  centre = jnp.mean(others, axis=0)
  points, others = points - centre, others - centre
  products = jnp.matmul(points, others.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.sum(points ** 2, axis=1)[:, None] - 2.0 * products + jnp.sum(others ** 2, axis=1)[None]


class DepthPairs(NamedTuple):
  """Pixel pairs of the depth-ordering loss (flat pixel indices)."""

  first: Int[Array, 'N']
  second: Int[Array, 'N']
  valid: Float[Array, 'N']  # 1 where the pair counts.


def sample_mask_pixels(key: Array, mask: Float[Array, 'H W'], count: int) -> Int[Array, 'N']:
  """Flat indices of `count` pixels drawn uniformly (with replacement) from the mask; an empty mask gives the
  whole image. Inverse CDF: one cumsum instead of categorical's [count, H W] Gumbel draws
  (benchmarks/README.md, "Proposals, ranked by measured gain", proposal 2)."""
  inside = (mask.reshape(-1) > 0.5).astype(jnp.float32)
  cdf = jnp.cumsum(jnp.where(jnp.any(inside > 0), inside, 1.0))
  return jnp.searchsorted(cdf, jax.random.uniform(key, (count,)) * cdf[-1], side='right')


def photometric_loss(colour: Float[Array, 'N 3'], rgb: Float[Array, 'N 3'], valid: Float[Array, 'N'],
                     epsilon: float = 0.01) -> Array:
  """Mean Charbonnier distance sqrt(d^2 + eps^2) - eps over the valid samples' channels (0 without any): L1's
  robustness to the light on the cloth changing between frames, smooth where the colours agree."""
  distance = jnp.sqrt((colour - rgb)**2 + epsilon**2) - epsilon
  return jnp.sum(valid[:, None] * distance) / jnp.maximum(3.0 * jnp.sum(valid), 1.0)


def sample_depth_pairs(
    key: Array, mask: Float[Array, 'H W'], num_pairs: int, box: int, in_mask: bool
) -> DepthPairs:
  """Pixel pairs for the depth-ordering loss: both pixels of a pair inside a box x box window.

  With `in_mask`, the first pixel is drawn from the garment mask and the pair counts only if the
  second lies in the mask too (the authors draw over the whole image, where most pairs fall on
  background and give a constant).
  """
  height, width = mask.shape
  key_first, key_offset = jax.random.split(key)
  if in_mask:
    first = sample_mask_pixels(key_first, mask, num_pairs)
  else:
    first = jax.random.randint(key_first, (num_pairs,), 0, height * width)
  row_a, col_a = first // width, first % width
  offset = jax.random.randint(key_offset, (num_pairs, 2), -(box // 2), box - box // 2)
  row_b = jnp.clip(row_a + offset[:, 0], 0, height - 1)
  col_b = jnp.clip(col_a + offset[:, 1], 0, width - 1)
  second = row_b * width + col_b
  valid = jnp.ones((num_pairs,), jnp.float32)
  if in_mask:
    flat = mask.reshape(-1)
    valid = (flat[first] > 0.5) & (flat[second] > 0.5)
    valid = valid.astype(jnp.float32)
  return DepthPairs(first, second, valid)


def depth_ranking_loss(
    rendered_depth: Float[Array, 'H W'],
    target_depth: Float[Array, 'H W'],
    pairs: DepthPairs,
    margin: float,
    min_gap: float = 0.0,
) -> Array:
  """Margin ranking on pixel pairs: the pixel nearer in the target must render nearer.

  Rendered depth grows towards the camera, target depth grows away from it (nan = unknown):
  loss = mean over counted pairs of max(0, -s (r_a - r_b) + margin), s = sign(t_b - t_a). A pair counts
  when its target depths differ by more than `min_gap` times their spread over the frame's pairs (the 5th
  to 95th percentile): an estimator does not know the order of two nearly equal depths.

  The rendered depth is (1 - z_ndc) / 2, about near / camera depth: a 10 cm step at 2.5 m changes it by
  ~1e-3, so the paper's margin of 0.1 is never met and the hinge pushes every pair apart without end,
  the true shape included; with margin 0 a correctly ordered surface feels no pull (loss.depth_margin).
  """
  first, second, valid = pairs
  flat_target = target_depth.reshape(-1)
  flat_render = rendered_depth.reshape(-1)
  t_a, t_b = flat_target[first], flat_target[second]
  gap = jnp.nan_to_num(t_b - t_a, nan=0.0)
  values = jnp.concatenate([jnp.where(valid > 0, t_a, jnp.nan), jnp.where(valid > 0, t_b, jnp.nan)])
  spread = jnp.nan_to_num(jnp.nanpercentile(values, 95.0) - jnp.nanpercentile(values, 5.0), nan=0.0)
  sign = jnp.sign(gap)
  weight = valid * (sign != 0) * (jnp.abs(gap) > min_gap * spread)
  hinge = jnp.maximum(0.0, -sign * (flat_render[first] - flat_render[second]) + margin)
  return jnp.sum(hinge * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def depth_correlation_loss(
    rendered_depth: Float[Array, 'H W'],
    target_depth: Float[Array, 'H W'],
    weight: Float[Array, 'H W'],
) -> Array:
  """1 + the Pearson correlation of rendered and target depth over the pixels of `weight` (0/1, no gradient).

  A relative depth estimate is known up to scale and shift, so the term asks only that the rendered depth
  be an affine function of it, decreasing (the rendered depth grows towards the camera, the target away
  from it): 0 when it is, 2 when reversed. min over scale and shift of the squared affine error is
  var(rendered) (1 - corr^2), so this is the affine fit's error made scale-free, over every pixel of the
  garment rather than depth_ranking_loss's few pairs. Pixels with an unknown target (nan) do not count;
  fewer than two pixels give 0.
  """
  known = jnp.isfinite(target_depth)
  weight = jnp.where(known, weight, 0.0)
  target = jnp.where(known, target_depth, 0.0)
  count = jnp.sum(weight)
  safe = jnp.maximum(count, 1.0)
  rendered_centred = (rendered_depth - jnp.sum(weight * rendered_depth) / safe) * weight
  target_centred = (target - jnp.sum(weight * target) / safe) * weight
  covariance = jnp.sum(rendered_centred * target_centred)
  scale = jnp.sqrt(jnp.sum(rendered_centred**2) * jnp.sum(target_centred**2) + 1e-20)
  return jnp.where(count >= 2.0, 1.0 + covariance / scale, 0.0)


def erode(mask: Float[Array, 'H W'], pixels: int) -> Float[Array, 'H W']:
  """Binary erosion by a (2 pixels + 1)^2 square (a min filter); the image border counts as outside."""
  if pixels <= 0:
    return mask
  padded = jnp.pad(mask, pixels, constant_values=0.0)
  size = 2 * pixels + 1
  return -jax.lax.reduce_window(-padded, -jnp.inf, jax.lax.max, (size, size), (1, 1), 'VALID')


def texture_loss(
    rendered: Float[Array, 'H W 3'], target: Float[Array, 'H W 3'], mask: Float[Array, 'H W']
) -> Array:
  """Relative L2 on the (already eroded) mask: mean((I_r - I_t)^2 / (sg(I_r)^2 + 0.01)) (docs/method.md section 7)."""
  rel = (rendered - target) ** 2 / (jax.lax.stop_gradient(rendered) ** 2 + 0.01)
  weight = mask[..., None]
  return jnp.sum(rel * weight) / jnp.maximum(jnp.sum(weight) * rendered.shape[-1], 1.0)
