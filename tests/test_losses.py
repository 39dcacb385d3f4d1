"""Loss terms on small inputs with hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from configs import default

from ngd_jax import losses
from ngd_jax import supervision


def test_huber_quadratic_and_linear_regimes():
  pred = jnp.array([0.0, 0.0, 0.0])
  target = jnp.array([0.001, 0.005, 0.105])
  # 0.5 e^2 below delta, delta (e - delta / 2) above.
  expected = np.mean([0.5 * 0.001**2, 0.5 * 0.005**2, 0.005 * (0.105 - 0.0025)])
  np.testing.assert_allclose(losses.huber(pred, target, 0.005), expected, rtol=1e-6)


def test_ssim_loss_zero_for_identical_and_positive_otherwise():
  img = jax.random.uniform(jax.random.PRNGKey(0), (32, 32, 1))
  assert abs(float(losses.ssim_loss(img, img))) < 1e-6
  noisy = jnp.clip(img + 0.2 * jax.random.normal(jax.random.PRNGKey(1), img.shape), 0, 1)
  assert float(losses.ssim_loss(noisy, img)) > 0.1


def test_silhouette_loss_ignores_hands():
  mask = jnp.zeros((4, 4)).at[:2].set(1.0)
  hands = jnp.zeros((4, 4)).at[3, 3].set(1.0)
  alpha = mask.at[3, 3].set(1.0)  # covers a hand pixel: not penalised
  assert float(losses.silhouette_loss(alpha, mask, hands)) == 0.0
  alpha = mask.at[3, 2].set(1.0)  # one wrong pixel of 16
  np.testing.assert_allclose(losses.silhouette_loss(alpha, mask, hands), 1 / 16, rtol=1e-6)


def test_render_loss_parts_and_mask_on_rendered_diffuse():
  weights = losses.RenderLossWeights(render=5.0, huber=0.65, huber_delta=0.005, ssim=0.35, mask=0.4, shading_erode=0)
  mask = jnp.zeros((16, 16)).at[4:12, 4:12].set(1.0)
  target = (0.5 * mask)[..., None]
  # Rendered diffuse outside the mask is ignored: the render must equal the target there.
  diffuse = jnp.full((16, 16, 1), 0.5)
  parts = losses.render_loss(diffuse, mask, target, mask, jnp.zeros_like(mask), weights)
  for name, value in parts.items():
    assert abs(float(value)) < 1e-6, name
  parts = losses.render_loss(diffuse * 0.0, mask * 0.0, target, mask, jnp.zeros_like(mask), weights)
  np.testing.assert_allclose(parts['mask'], 5.0 * 0.4 * 64 / 256, rtol=1e-6)
  expected_huber = 5.0 * 0.65 * np.mean(np.where(np.asarray(mask) > 0, 0.005 * (0.5 - 0.0025), 0.0))
  np.testing.assert_allclose(parts['huber'], expected_huber, rtol=1e-5)


def test_shading_terms_leave_the_masks_border_to_the_mask_term():
  """The true garment's edge through a border pixel: the antialiased render covers half of it, the binary
  mask all of it. Left in the shading terms (the paper), that pixel asks for more coverage; eroded, it
  does not, while a shading error inside still counts."""
  mask = jnp.zeros((16, 16)).at[4:12, 4:12].set(1.0)
  target = (0.5 * mask)[..., None]
  coverage = mask.at[4:12, 11].set(0.5)  # The right column half covered by the true garment.
  zeros = jnp.zeros_like(mask)

  def shading_pull(erode, diffuse_scale=1.0):
    weights = losses.RenderLossWeights(render=5.0, huber=0.65, huber_delta=0.005, ssim=0.35, mask=0.4,
                                       shading_erode=erode)
    def shading(alpha):
      parts = losses.render_loss(0.5 * diffuse_scale * alpha[..., None], alpha, target, mask, zeros, weights)
      return parts['huber'] + parts['ssim']
    return jax.grad(shading)(coverage)

  assert float(shading_pull(0)[4:12, 11].min()) < -1e-3  # More coverage of the border column lowers the loss.
  np.testing.assert_array_equal(shading_pull(1)[:, 11], 0.0)
  assert float(jnp.abs(shading_pull(1, diffuse_scale=0.8)[6:10, 6:10]).min()) > 1e-4  # Inside: still judged.


def test_image_region_charges_shading_drawn_off_the_mask_unless_hidden():
  """'mask' (the paper) lets a render one pixel too wide all round keep its shading for free; 'image' charges
  it, except where the occluder hides the garment; a render too narrow costs the same in both."""
  mask = jnp.zeros((16, 16)).at[4:12, 4:12].set(1.0)
  target = (0.5 * mask)[..., None]
  wide = jnp.zeros_like(mask).at[3:13, 3:13].set(1.0)
  narrow = jnp.zeros_like(mask).at[5:11, 5:11].set(1.0)

  def shading(alpha, region, occluder=None):
    weights = losses.RenderLossWeights(render=5.0, huber=0.65, huber_delta=0.005, ssim=0.35, mask=0.4,
                                       shading_erode=0, shading_region=region)
    occluder = jnp.zeros_like(mask) if occluder is None else occluder
    parts = losses.render_loss(0.5 * alpha[..., None], alpha, target, mask, occluder, weights)
    return float(parts['huber']), float(parts['ssim'])

  assert shading(wide, 'mask') == (0.0, 0.0)
  huber_wide, ssim_wide = shading(wide, 'image')
  np.testing.assert_allclose(huber_wide, 5.0 * 0.65 * (100 - 64) / 256 * 0.005 * (0.5 - 0.0025), rtol=1e-5)
  assert ssim_wide > 1e-3
  assert shading(wide, 'image', occluder=wide - mask) == (0.0, 0.0)
  np.testing.assert_allclose(shading(narrow, 'image'), shading(narrow, 'mask'), rtol=1e-6)


def test_depth_correlation_is_zero_for_any_decreasing_affine_map_of_the_target():
  """Relative depth is known up to scale and shift: any rendered depth that decreases affinely with the
  target (nearer renders larger) scores 0, the reverse 2, unknown targets and pixels outside the weight do
  not count, and the gradient matches finite differences."""
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.uniform(2.0, 3.0, (8, 8)), jnp.float32)
  weight = jnp.zeros((8, 8)).at[1:7, 2:6].set(1.0)
  rendered = 0.2 - 0.01 * target
  np.testing.assert_allclose(losses.depth_correlation_loss(rendered, target, weight), 0.0, atol=1e-5)
  np.testing.assert_allclose(losses.depth_correlation_loss(0.2 + 0.01 * target, target, weight), 2.0, atol=1e-5)
  off_weight = rendered.at[0, 0].set(5.0).at[1, 2].set(1.0)
  hidden = target.at[1, 2].set(jnp.nan)  # Unknown target where the rendered depth is off.
  np.testing.assert_allclose(losses.depth_correlation_loss(off_weight, hidden, weight), 0.0, atol=1e-5)
  assert float(losses.depth_correlation_loss(rendered, target, jnp.zeros((8, 8)).at[3, 3].set(1.0))) == 0.0

  noisy = jnp.asarray(rng.normal(0.0, 1.0, (8, 8)), jnp.float32)
  loss = lambda r: losses.depth_correlation_loss(r, target, weight)
  grad = np.asarray(jax.grad(loss)(noisy))
  assert np.all(grad[weight == 0] == 0.0)
  eps = 1e-3
  for row, col in ((2, 3), (5, 4)):
    step = jnp.zeros((8, 8)).at[row, col].set(eps)
    numeric = (float(loss(noisy + step)) - float(loss(noisy - step))) / (2 * eps)
    np.testing.assert_allclose(grad[row, col], numeric, rtol=2e-2, atol=1e-4)


def test_target_diffuse_faces_camera():
  normal = jnp.array([[[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.6, 0.0, -0.8]]])
  mask = jnp.ones((1, 3))
  np.testing.assert_allclose(supervision.target_diffuse(normal, mask)[..., 0], [[1.0, 0.0, 0.8]], rtol=1e-6)


def test_jacobian_loss_identity_zero_and_masking():
  jac = jnp.broadcast_to(jnp.eye(3), (4, 3, 3)).at[1].add(0.1)
  weight = jnp.array([1.0, 1.0, 1.0, 0.0])
  np.testing.assert_allclose(losses.jacobian_loss(jac, weight, jnp.float32(3)), 9 * 0.01 / 27, rtol=1e-5)
  assert float(losses.jacobian_loss(jac, weight.at[1].set(0.0), jnp.float32(3))) == 0.0


def test_depth_pairs_inside_mask_and_box():
  mask = jnp.zeros((64, 64)).at[20:40, 10:30].set(1.0)
  first, second, valid = losses.sample_depth_pairs(jax.random.PRNGKey(0), mask, 200, 8, in_mask=True)
  rows_a, cols_a, rows_b, cols_b = first // 64, first % 64, second // 64, second % 64
  assert np.all(np.asarray(mask.reshape(-1)[first]) == 1.0)
  assert np.all(np.abs(np.asarray(rows_a - rows_b)) <= 4) and np.all(np.abs(np.asarray(cols_a - cols_b)) <= 4)
  np.testing.assert_array_equal(np.asarray(valid), np.asarray(mask.reshape(-1)[second]))
  assert float(valid.mean()) > 0.5


def test_depth_ranking_loss_sign_and_margin():
  target = jnp.array([[1.0, 2.0]])  # pixel 0 nearer
  pairs = (jnp.array([0]), jnp.array([1]), jnp.array([1.0]))
  good = jnp.array([[0.9, 0.5]])  # rendered: nearer = larger
  bad = jnp.array([[0.5, 0.9]])
  assert float(losses.depth_ranking_loss(good, target, pairs, 0.1)) == 0.0
  np.testing.assert_allclose(losses.depth_ranking_loss(bad, target, pairs, 0.1), 0.5, rtol=1e-6)
  unknown = jnp.array([[1.0, jnp.nan]])
  assert float(losses.depth_ranking_loss(bad, unknown, pairs, 0.1)) == 0.0


@pytest.mark.parametrize('pixels', [1, 2])
def test_erode_matches_scipy(pixels):
  from scipy import ndimage  # pylint: disable=g-import-not-at-top

  mask = np.zeros((20, 20), np.float32)
  mask[3:17, 5:15] = 1
  mask[8, 8] = 0
  expected = ndimage.binary_erosion(mask, np.ones((2 * pixels + 1,) * 2), border_value=0)
  np.testing.assert_array_equal(np.asarray(losses.erode(jnp.asarray(mask), pixels)), expected.astype(np.float32))


def test_texture_loss_relative_and_gradient_stops_denominator():
  rendered = jnp.full((2, 2, 3), 0.3)
  target = jnp.full((2, 2, 3), 0.1)
  mask = jnp.array([[1.0, 1.0], [0.0, 0.0]])
  np.testing.assert_allclose(losses.texture_loss(rendered, target, mask), 0.04 / 0.1, rtol=1e-5)
  grad = jax.grad(lambda r: losses.texture_loss(r, target, mask))(rendered)
  # d/dr (r - t)^2 / c with c held constant: 2 (r - t) / c / (num masked values).
  np.testing.assert_allclose(grad[0, 0, 0], 2 * 0.2 / 0.1 / 6, rtol=1e-5)
  assert float(grad[1, 1, 0]) == 0.0


def _rotation(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def test_stretch_smoothness_ignores_rotation_and_sees_stretch():
  tangent = np.diag([1.0, 1.0, 0.0])  # A face in the xy plane: its own Jacobian is I - n n^T.
  pairs = jnp.array([[0, 1], [0, 0], [1, 1]])  # One real pair, two padding rows.
  rotated = _rotation([1.0, 2.0, 0.5], 0.9) @ tangent
  same = jnp.asarray(np.stack([tangent, rotated]), jnp.float32)
  # A rotated face stretches as much as an unrotated one (J^T J equal): nothing to smooth. A prior on
  # J - J_0 would charge the rotation; the front's tilt would be copied to the back of a skirt.
  assert float(losses.stretch_smoothness_loss(same, pairs)) < 1e-10
  stretched = jnp.asarray(np.stack([tangent, np.diag([1.0, 1.5, 0.0])]), jnp.float32)
  # C = diag(1, 2.25, 0) against diag(1, 1, 0): one entry differs by 1.25, over 9 entries, 1 real pair.
  np.testing.assert_allclose(losses.stretch_smoothness_loss(stretched, pairs), 1.25**2 / 9, rtol=1e-6)


def test_penetration_loss_counts_real_vertices_inside_the_margin():
  distance = jnp.array([0.02, 0.004, -0.01, -0.5])
  mask = jnp.array([True, True, True, False])  # The last is padding.
  expected = (0.0 + 0.001**2 + 0.015**2) / 3
  np.testing.assert_allclose(losses.penetration_loss(distance, mask, 0.005), expected, rtol=1e-6)


def _sphere_samples(count: int, radius: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Points spread over a sphere about the origin and its outward normals (a Fibonacci lattice)."""
  i = np.arange(count) + 0.5
  polar, azimuth = np.arccos(1 - 2 * i / count), np.pi * (1 + 5**0.5) * i
  normals = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=-1)
  return jnp.asarray(radius * normals, jnp.float32), jnp.asarray(normals, jnp.float32)


def test_posed_penetration_loss_charges_vertices_inside_the_posed_body():
  points, normals = _sphere_samples(2000, 0.1)
  directions = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, -1], [0.6, 0.8, 0]])
  radii = np.array([0.2, 0.103, 0.08, 0.04])  # Far out, just out, 2 cm in, 6 cm in (the last: padding).
  posed = jnp.asarray(directions * radii[:, None], jnp.float32)
  mask = jnp.array([True, True, True, False])
  margin = 0.005
  # Lattice points near each vertex's direction lie within ~0.4 cm of it on the sphere: the plane distance is
  # the radial one to within 1e-4 m.
  expected = (0.0 + (margin - 0.003)**2 + (margin + 0.02)**2) / 3
  value = losses.posed_penetration_loss(posed, mask, points, normals, margin)
  np.testing.assert_allclose(value, expected, rtol=0.03)
  gradient = np.asarray(jax.grad(losses.posed_penetration_loss)(posed, mask, points, normals, margin))
  np.testing.assert_array_equal(gradient[[0, 3]], 0.0)  # Outside the margin, and padding: no pull.
  for i in (1, 2):  # Descent moves a vertex in the margin or inside out along the body's normal.
    assert np.dot(-gradient[i], directions[i]) / np.linalg.norm(gradient[i]) > 0.99
  step = np.zeros_like(np.asarray(posed))
  step[2] = 1e-4 * np.array([0.3, -0.2, 0.5])
  moved = losses.posed_penetration_loss(posed + step, mask, points, normals, margin)
  np.testing.assert_allclose(moved - value, np.sum(gradient * step), rtol=0.05)  # Finite difference.


def test_target_image_for_each_supervision():
  normal = jnp.array([[[0.0, 0.0, -1.0], [0.6, 0.0, -0.8]]])
  mask = jnp.array([[1.0, 0.0]])
  np.testing.assert_allclose(supervision.target_image(normal, mask, 'diffuse')[..., 0], [[1.0, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(supervision.target_image(normal, mask, 'normals'), [[[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]],
                             atol=1e-7)
  coverage = jnp.array([[[1.0], [0.0]]])
  rendered = supervision.supervised_image(jnp.zeros((1, 2, 1)), normal * coverage, coverage, 'normals')
  np.testing.assert_allclose(rendered[0, 0], [0.5, 0.5, 0.0], atol=1e-7)
  np.testing.assert_array_equal(rendered[0, 1], 0.0)  # Nothing drawn: zero, as the target off the mask.
  with pytest.raises(ValueError, match='supervision'):
    supervision.target_image(normal, mask, 'depth')


def test_occluder_mask_is_the_body_in_front_of_the_garment_where_the_frame_shows_none():
  mask = jnp.array([[0.0, 0.0, 1.0, 0.0, 0.0]])
  hands = jnp.array([[0.0, 0.0, 0.0, 0.0, 1.0]])
  garment = jnp.array([[0.5, 0.5, 0.5, jnp.inf, jnp.inf]])  # z/w; inf: no garment drawn.
  body = jnp.array([[0.4, 0.6, 0.4, 0.3, jnp.inf]])
  # Pixel 0: body in front, no garment in the frame: hidden. Pixel 1: body behind: the garment must go.
  # Pixel 2: the frame shows garment, so a body rendered in front is the render's error, not an occluder.
  # Pixel 3: body where the garment is not drawn (its antialiased edge behind an arm). Pixel 4: a hand.
  np.testing.assert_array_equal(losses.occluder_mask(hands, mask, garment, body), [[1.0, 0.0, 0.0, 1.0, 1.0]])


def _ordered_pairs():
  """A surface tilted in depth, pairs two rows apart: targets in metres, renders in (1 - z_ndc) / 2."""
  camera_depth = jnp.linspace(2.4, 2.6, 32).reshape(4, 8)  # 20 cm of relief, as a skirt has.
  rendered = 0.05 / camera_depth  # About the rendered depth for near = 0.05: nearer is larger.
  first = jnp.arange(16)
  pairs = losses.DepthPairs(first, first + 16, jnp.ones(first.shape))
  return rendered, camera_depth, pairs


def test_depth_ranking_does_not_pull_a_correctly_ordered_surface():
  rendered, target, pairs = _ordered_pairs()
  loss_config = default.get_config().loss
  grad = jax.grad(losses.depth_ranking_loss)(rendered, target, pairs, loss_config.depth_margin,
                                             loss_config.depth_min_gap)
  assert float(jnp.max(jnp.abs(grad))) == 0.0
  # The paper's margin (0.1 in this unit) is never met: it pushes the truth itself.
  grad = jax.grad(losses.depth_ranking_loss)(rendered, target, pairs, 0.1)
  assert float(jnp.max(jnp.abs(grad))) > 0.0


def test_depth_ranking_ignores_pairs_closer_than_the_min_gap():
  rendered, target, pairs = _ordered_pairs()
  wrong = rendered[::-1]  # Every pair rendered in the wrong order.
  noisy_target = target.at[2, 0].set(target[0, 0] + 1e-5)  # Pair 0 (pixels [0, 0] and [2, 0]): nearly equal.
  counted = jax.grad(losses.depth_ranking_loss)(wrong, noisy_target, pairs, 0.0, 0.0)
  filtered = jax.grad(losses.depth_ranking_loss)(wrong, noisy_target, pairs, 0.0, 0.05)
  assert float(jnp.abs(counted[0, 0])) > 0.0
  assert float(jnp.abs(filtered[0, 0])) == 0.0
  assert float(jnp.abs(filtered[0, 1])) > 0.0  # Pair 1 still counts.
