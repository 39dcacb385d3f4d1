"""The body as an occluder: at the true garment, an arm in front of it must not pull its silhouette in.

A tube (the garment) seen by the camera of tests/test_model.py, with a bar (an arm) in front of its
left half. The garment mask is what the camera sees of the tube: the tube's render minus the bar's.
With frames.body_depth and losses.occluder_mask the silhouette term is met by the true tube; with the
hands mask alone (the paper) it asks the tube to give up the pixels behind the bar.
"""

import jax
import jax.numpy as jnp
import numpy as np
from test_model import _frame, _mesh, _model
from test_remesh_refine import tube_mesh

from ngd_jax import body
from ngd_jax import frames
from ngd_jax import losses
from ngd_jax import train


def _arm() -> body.BodyData:
  """A box 10 cm wide across the camera's view, 0.6 m nearer the camera than the tube's axis (identity pose)."""
  corners = np.array([[x, y, z] for x in (-0.12, -0.02) for y in (-0.6, 0.2) for z in (-0.65, -0.55)], np.float32)
  quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
  faces = np.array([tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))], np.int32)
  return body.BodyData(rest_vertices=corners, faces=faces, skinning_weights=np.ones((8, 1), np.float32),
                       transforms=np.eye(4, dtype=np.float32)[None, None], pose=np.zeros((1, 1), np.float32))


def _mask_term_gradients() -> tuple[dict[str, np.ndarray], float]:
  """The silhouette term's gradient on the true tube's vertices alone, with the arm in front and the body as
  an occluder, and with the arm but the hands mask only (the paper); and how many pixels the arm hides."""
  vertices, faces = tube_mesh(16, 6)
  vertices = vertices[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # Tube axis along -y, facing the camera.
  model, frame, mesh = _model(), _frame(), _mesh(vertices, faces, 1)
  posed = jnp.asarray(vertices, jnp.float32)
  garment = model.render(mesh, posed, frame)
  arm = frames.body_depth(_arm(), np.array([0]), np.asarray(frame.world_to_clip)[None], model.resolution)[0]
  hidden = (np.asarray(garment.rast[..., 3]) > 0) & (arm < np.asarray(garment.rast[..., 2]))
  loss = train.LossSettings(supervision='diffuse', render_weight=5.0, huber_weight=0.0, huber_delta=0.005,
                            ssim_weight=0.0, mask_weight=0.4, shading_erode=0, shading_region='mask',
                            jacobian_weight=0.0, jacobian_visible_only=True, smoothness_weight=0.0,
                            penetration_weight=0.0, penetration_margin=0.0, posed_penetration_weight=0.0,
                            depth_weight=0.0, depth_pairs=1, depth_box=1, depth_margin=0.0, depth_min_gap=0.0,
                            depth_pairs_in_mask=True, depth_correlation_weight=0.0, photometric_weight=0.0,
                            photometric_pixels=1)
  pairs = losses.DepthPairs(jnp.zeros(1, jnp.int32), jnp.zeros(1, jnp.int32), jnp.zeros(1))

  @jax.jit
  def gradient(points, hidden_pixels, body_depth):
    # The mask is the camera's view of the tube, antialiased as the render's own edges are.
    mask = garment.alpha[..., 0] * (1.0 - hidden_pixels)
    images = train.FrameImages(target=jnp.zeros(model.resolution + (1,)), rgb=jnp.zeros((0, 0, 3)), mask=mask,
                               hands=jnp.zeros_like(mask),
                               depth=jnp.full(model.resolution, jnp.nan), body_depth=body_depth,
                               body_points=jnp.zeros((0, 3)), body_normals=jnp.zeros((0, 3)))

    def mask_term(points):
      out = model.render(mesh, points, frame)
      return train.image_terms(out, jnp.zeros(model.resolution + (1,)), images, pairs, loss, use_depth=False)['mask']

    return jax.grad(mask_term)(points)

  nothing = np.full_like(arm, np.inf)
  no_arm = np.zeros_like(hidden, np.float32)
  gradients = {'alone': gradient(posed, no_arm, nothing),
               'occluded': gradient(posed, hidden.astype(np.float32), arm),
               'paper': gradient(posed, hidden.astype(np.float32), nothing)}
  return {name: np.asarray(value) for name, value in gradients.items()}, float(hidden.sum())


def test_the_body_in_front_does_not_pull_the_true_silhouette():
  gradients, hidden_pixels = _mask_term_gradients()
  alone, occluded, paper = gradients['alone'], gradients['occluded'], gradients['paper']
  assert hidden_pixels > 20  # The arm hides part of the tube.
  assert np.linalg.norm(alone) < 1e-6  # The mask is the tube's own render: no pull.
  assert np.linalg.norm(paper) > 1e-3
  assert np.linalg.norm(occluded) < 0.05 * np.linalg.norm(paper)
