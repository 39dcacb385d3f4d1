"""Host: pictures that show a reconstruction in 3-D, not only from the training camera.

A monocular fit can match the training view while its unseen side is wrong, so the export's
preview grid and the evaluation's TensorBoard images add, per frame:
  - each held-out camera: the held-out image next to the reconstruction rendered from it;
  - a side view (the training camera turned 90 degrees about the garment's vertical axis): the
    reconstruction shaded, the ground truth shaded, and their silhouettes overlaid (red:
    reconstruction only, green: ground truth only, yellow: both).
frame_panels assembles them for a trained run; export's preview grid and evaluation's TensorBoard
pictures both use it.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ngd_jax import appearance_phase
from ngd_jax import data
from ngd_jax import frames as frames_lib
from ngd_jax import images
from ngd_jax import meshes
from ngd_jax import render
from ngd_jax import restore

RECONSTRUCTION_TINT = np.array([0.95, 0.55, 0.45])
GROUND_TRUTH_TINT = np.array([0.45, 0.8, 0.5])


class Shaded(NamedTuple):
  rgb: np.ndarray  # float32 [H, W, 3] in [0, 1].
  coverage: np.ndarray  # float32 [H, W].


def turned_camera(camera: data.Camera, centre: np.ndarray, degrees: float) -> data.Camera:
  """The camera orbited by `degrees` about the vertical axis (the camera's -y) through `centre`.

  Same intrinsics; it keeps looking at `centre` from the same distance and height.
  """
  world_to_camera = np.asarray(camera.world_to_camera, np.float64)
  rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
  up = -rotation[1]
  angle = np.deg2rad(degrees)
  # Rodrigues' rotation about `up`, applied to the camera's position and axes alike.
  cross = np.array([[0, -up[2], up[1]], [up[2], 0, -up[0]], [-up[1], up[0], 0]])
  orbit = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
  eye = -rotation.T @ translation
  new_eye = centre + orbit @ (eye - centre)
  new_rotation = rotation @ orbit.T
  turned = np.eye(4)
  turned[:3, :3] = new_rotation
  turned[:3, 3] = -new_rotation @ new_eye
  return data.Camera(np.asarray(camera.K, np.float32), turned.astype(np.float32))


def shaded(vertices: np.ndarray, faces: np.ndarray, camera: data.Camera, size: tuple[int, int],
           render_config, tint: np.ndarray) -> Shaded:
  """A mesh in one colour (white background), shaded by |cos| of its vertex normals against the view axis."""
  vertices = np.asarray(vertices, np.float32)
  world_to_camera = np.asarray(camera.world_to_camera, np.float64)
  normals = meshes.vertex_normals(jnp.asarray(vertices), jnp.asarray(faces, jnp.int32))
  facing = np.abs(np.asarray(normals) @ world_to_camera[2, :3])
  colours = (0.25 + 0.75 * facing)[:, None] * tint[None, :]
  out = render.render_colors(jnp.asarray(vertices), jnp.asarray(faces, jnp.int32),
                             jnp.asarray(colours, jnp.float32),
                             jnp.asarray(frames_lib.clip_matrix(camera, size, render_config)), size,
                             backend=render_config.backend)
  coverage = np.asarray(out.coverage)[..., 0]
  rgb = np.asarray(out.rgb) + (1.0 - coverage[..., None])
  return Shaded(np.clip(rgb, 0.0, 1.0).astype(np.float32), coverage.astype(np.float32))


def silhouette_overlay(reconstruction: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
  """float32 [H, W, 3] from two coverages [H, W]: red where only the reconstruction covers, green
  only the ground truth, yellow both, white neither."""
  neither = (1.0 - reconstruction) * (1.0 - ground_truth)
  rgb = np.stack([reconstruction + neither, ground_truth + neither, neither], axis=-1)
  return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def preview_indices(num_frames: int, count: int) -> np.ndarray:
  """Host: `count` frame positions (int [<= count]) spread evenly from the first frame to the last,
  so the previews and the evaluation's TensorBoard pictures show the whole sequence."""
  return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).astype(int))


def body_in_front(trained: restore.Trained, t: int, world_to_clip: np.ndarray, size: tuple[int, int]
                  ) -> np.ndarray | None:
  """Host: z/w [H, W] of frame t's posed body from a camera (inf where no body), what hides the garment
  there as it does in the frames' masks; None when eval.body_occlusion is off."""
  run = trained.run
  if not run.config.eval.body_occlusion:
    return None
  return frames_lib.body_depth(run.inputs.sequence.body, run.bank.indices[t:t + 1],
                               np.asarray(world_to_clip)[None], size)[0]


def render_reconstruction(trained: restore.Trained, t: int, camera: data.Camera,
                          size: tuple[int, int]) -> Shaded:
  """Host: the reconstruction of training frame t seen by `camera` at `size` (H, W) (black
  background); textured when the run has an appearance (where the body does not hide it, see
  body_in_front), else its diffuse shading."""
  run = trained.run
  config = run.config
  posed, faces = jnp.asarray(trained.posed[t]), jnp.asarray(trained.faces)
  world_to_clip = frames_lib.clip_matrix(camera, size, config.render)
  if trained.appearance is not None:
    return Shaded(*appearance_phase.render_textured(config, trained.appearance, posed, faces,
                                                    jnp.asarray(world_to_clip), jnp.asarray(run.bank.pose[t]), size,
                                                    body_in_front(trained, t, world_to_clip, size)))
  out = render.render_garment(posed, faces, render.build_topology(trained.faces), jnp.asarray(world_to_clip),
                               jnp.asarray(camera.world_to_camera), size, config.render.backend)
  return Shaded(np.repeat(np.asarray(out.diffuse), 3, axis=-1), np.asarray(out.alpha)[..., 0])


class TrainingView(NamedTuple):
  input: np.ndarray  # float32 [H, W, 3], the training image.
  render: np.ndarray  # float32 [H, W, 3], the reconstruction over the training image.


def preview_frame(trained: restore.Trained, t: int) -> TrainingView:
  """Host: the training image of frame t and the reconstruction drawn over it."""
  run = trained.run
  bank, seq, config = run.bank, run.inputs.sequence, run.config
  image = bank.rgb[t].astype(np.float32) / 255.0
  camera = seq.camera(int(bank.indices[t]), config.data.resolution)
  rgb, coverage = render_reconstruction(trained, t, camera, bank.resolution)
  composite = image * (1.0 - coverage[..., None]) + rgb
  return TrainingView(image, np.clip(composite, 0.0, 1.0))


def frame_panels(trained: restore.Trained, t: int, training_view: TrainingView,
                 name: str) -> tuple[list[np.ndarray], list[str]]:
  """Host: the labelled pictures of frame t for the preview grid (see the module docstring for why).

  Training view (input | render | error), then per held-out camera (held-out image | the
  reconstruction from it), then the side view (reconstruction | ground truth | silhouettes) when the
  sequence has the frame's true mesh.
  """
  run = trained.run
  config, bank, seq = run.config, run.bank, run.inputs.sequence
  index = int(bank.indices[t])
  panels, labels = images.training_panels(*training_view, label=name)
  for view_name in sorted(seq.eval_cameras):
    view = seq.eval_view(view_name, index, config.data.resolution)
    rgb, coverage = render_reconstruction(trained, t, view.camera, view.mask.shape)
    panels += [view.rgb, np.clip(rgb + (1.0 - coverage[..., None]), 0.0, 1.0)]
    labels += [f'{view_name} held-out', f'{view_name} render']
  if seq.frames[index] in seq.gt_frames:
    gt = seq.gt_mesh(index)
    centre = np.asarray(gt.vertices).mean(axis=0)
    side = turned_camera(seq.camera(index, config.data.resolution), centre, 90.0)
    mine = shaded(trained.posed[t], trained.faces, side, bank.resolution, config.render, RECONSTRUCTION_TINT)
    truth = shaded(gt.vertices, gt.faces, side, bank.resolution, config.render, GROUND_TRUTH_TINT)
    panels += [mine.rgb, truth.rgb, silhouette_overlay(mine.coverage, truth.coverage)]
    labels += ['side: reconstruction', 'side: ground truth', 'red ours, green truth']
  return panels, labels
