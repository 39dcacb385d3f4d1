"""Host: pictures that show a reconstruction in 3-D, not only from the training camera.

A monocular fit can match the training view while its unseen side is wrong, so the export's
preview grid and the evaluation's TensorBoard images add, per frame:
  - each held-out camera: the held-out image next to the reconstruction rendered from it;
  - a side view (the training camera turned 90 degrees about the garment's vertical axis): the
    reconstruction shaded, the ground truth shaded, and their silhouettes overlaid (red:
    reconstruction only, green: ground truth only, yellow: both).
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ngd_jax import data
from ngd_jax import frames as frames_lib
from ngd_jax import render

RECONSTRUCTION_TINT = np.array([0.95, 0.55, 0.45])
GROUND_TRUTH_TINT = np.array([0.45, 0.8, 0.5])


class Shaded(NamedTuple):
  rgb: np.ndarray  # float32 [H, W, 3] in [0, 1], white background.
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
  """A mesh in one colour, shaded by |cos| of its vertex normals against the view axis."""
  vertices = np.asarray(vertices, np.float32)
  world_to_camera = np.asarray(camera.world_to_camera, np.float64)
  normals = render.vertex_normals(jnp.asarray(vertices), jnp.asarray(faces, jnp.int32))
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
