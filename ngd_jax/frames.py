"""Host: the training frames of a sequence, loaded once at the training resolution.

One step reads one frame (docs/method.md section 5), so the frames are decoded once into host arrays
and each step transfers one slice; images stay uint8 where that loses nothing.
"""

from typing import NamedTuple

import jax.numpy as jnp
import ml_collections
import numpy as np

from ngd_jax import body
from ngd_jax import configuration
from ngd_jax import data
from ngd_jax import meshes
from ngd_jax import render
from ngd_jax import supervision


class FrameBank(NamedTuple):
  """All training frames (T of them) at resolution (H, W); row t is sequence frame indices[t]."""

  indices: np.ndarray  # int [T]
  rgb: np.ndarray  # uint8 [T, H, W, 3]
  mask: np.ndarray  # uint8 [T, H, W], garment mask 0/1
  hands: np.ndarray  # uint8 [T, H, W], hands mask 0/1 (zeros if absent or unused)
  target: np.ndarray  # float32 [T, H, W, C], supervision.target_image (diffuse: C = 1, normals: C = 3)
  depth: np.ndarray  # float32 [T, H, W], relative depth, nan = unknown (all nan if absent)
  body_depth: np.ndarray  # float32 [T, H, W], z/w of the posed body (inf where none, or all inf: occlusion off)
  body_points: np.ndarray  # float32 [T, N, 3], points of the posed body (body_samples; N = 0: term off)
  body_normals: np.ndarray  # float32 [T, N, 3], the body's outward unit normals there
  world_to_clip: np.ndarray  # float32 [T, 4, 4]
  world_to_camera: np.ndarray  # float32 [T, 4, 4]
  transforms: np.ndarray  # float32 [T, K, 4, 4] body LBS transforms
  pose: np.ndarray  # float32 [T, P] body pose vectors

  @property
  def num_frames(self) -> int:
    return len(self.indices)

  @property
  def resolution(self) -> tuple[int, int]:
    return self.mask.shape[1:3]

  @property
  def has_depth(self) -> bool:
    return bool(np.isfinite(self.depth).any())


def training_indices(num_sequence_frames: int, data_config: ml_collections.ConfigDict) -> np.ndarray:
  """Frame indices selected by data.first_frame, data.num_frames and data.frame_stride.

  ConfigError when the selection leaves the sequence: a first frame past its end, or more frames
  asked for than the stride leaves (rather than training on fewer than asked).
  """
  if not 0 <= data_config.first_frame < num_sequence_frames:
    raise configuration.ConfigError(
        f'--config.data.first_frame={data_config.first_frame} is outside the sequence\'s {num_sequence_frames} '
        f'frames. Fix: pick a first frame in [0, {num_sequence_frames - 1}].')
  indices = np.arange(data_config.first_frame, num_sequence_frames, data_config.frame_stride)
  if data_config.num_frames > len(indices):
    raise configuration.ConfigError(
        f'--config.data.num_frames={data_config.num_frames}: the sequence has {num_sequence_frames} frames, of '
        f'which data.first_frame={data_config.first_frame} and data.frame_stride={data_config.frame_stride} '
        f'select {len(indices)}. Fix: ask for at most {len(indices)}, or -1 for all of them.')
  if data_config.num_frames > 0:
    indices = indices[: data_config.num_frames]
  return indices


def clip_matrix(camera: data.Camera, size: tuple[int, int], render_config) -> np.ndarray:
  """World -> clip matrix float32 [4, 4] of an OpenCV camera for images of `size` (H, W)."""
  return np.asarray(
      render.camera_to_clip(camera.K, camera.world_to_camera, size, render_config.near, render_config.far),
      np.float32,
  )


def posed_body(body_data: body.BodyData, indices: np.ndarray) -> jnp.ndarray:
  """The body's vertices in frames `indices`, float32 [T, Vb, 3]: body.npz's posed vertices, or LBS where it has none."""
  if body_data.posed_vertices is not None:
    return jnp.asarray(body_data.posed_vertices[indices], jnp.float32)
  return body.lbs_frames(jnp.asarray(body_data.rest_vertices, jnp.float32),
                         jnp.asarray(body_data.skinning_weights, jnp.float32),
                         jnp.asarray(body_data.transforms[indices], jnp.float32))


def body_depth(body_data: body.BodyData, indices: np.ndarray, world_to_clip: np.ndarray,
               size: tuple[int, int]) -> np.ndarray:
  """Host: z/w (OpenGL NDC depth, nearer is smaller) of the posed body in each frame, inf where no body is
  drawn: what can hide the garment from the camera (an arm in front of a skirt), float32 [T, H, W]."""
  posed = posed_body(body_data, indices)
  faces = jnp.asarray(body_data.faces, jnp.int32)
  out = []
  for t in range(len(indices)):
    rast = np.asarray(render.rasterize(render.to_clip(posed[t], jnp.asarray(world_to_clip[t])), faces, size))
    out.append(np.where(rast[..., 3] > 0, rast[..., 2], np.inf))
  return np.stack(out).astype(np.float32)


def body_samples(body_data: body.BodyData, indices: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Host: `count` points of the posed body and its outward unit normals there in each frame, float32 [T, N, 3]
  each: what the posed garment must stay out of (losses.posed_penetration_loss).

  The same body vertices in every frame, drawn once without replacement with probability proportional to the
  area around them, so they cover the surface evenly (a body mesh is denser at the face and hands than on the
  legs a skirt meets).
  """
  count = min(count, len(body_data.rest_vertices))
  if count <= 0:
    empty = np.zeros((len(indices), 0, 3), np.float32)
    return empty, empty
  faces = np.asarray(body_data.faces, np.int64)
  area = meshes.vertex_areas(body_data.rest_vertices, faces)
  chosen = np.sort(np.random.default_rng(seed).choice(len(area), count, replace=False, p=area / area.sum()))
  posed = np.asarray(posed_body(body_data, indices))
  normals = np.stack([meshes.vertex_normals(vertices, faces)[chosen] for vertices in posed])
  return posed[:, chosen].astype(np.float32), normals.astype(np.float32)


def load_frames(seq: data.Sequence, config: ml_collections.ConfigDict) -> FrameBank:
  """Decodes the training frames; raises a clear error when NGD's supervision is missing."""
  if 'normal' not in seq.channels:
    raise data.SequenceError(
        seq.path / 'normal',
        'the sequence has no normal maps; NGD is supervised by diffuse images computed from them',
        'add normal/000000.npy ... (camera-space unit normals from any estimator, docs/design.md section 3)',
    )
  indices = training_indices(seq.num_frames, config.data)
  frames = [seq.load_frame(int(i), config.data.resolution) for i in indices]
  size = frames[0].mask.shape
  cameras = [seq.camera(int(i), config.data.resolution) for i in indices]
  mask = np.stack([f.mask for f in frames]).astype(np.float32)
  normal = np.stack([f.normal for f in frames]).astype(np.float32)
  target = np.asarray(supervision.target_image(normal, mask, config.loss.supervision))
  use_hands = config.data.use_hands_mask and all(f.hands is not None for f in frames)
  world_to_clip = np.stack([clip_matrix(c, size, config.render) for c in cameras])
  body_points, body_normals = body_samples(
      seq.body, indices, config.loss.posed_penetration_samples if config.loss.posed_penetration_weight > 0 else 0,
      config.seed)
  return FrameBank(
      indices=indices,
      rgb=np.stack([np.round(np.clip(f.rgb, 0, 1) * 255) for f in frames]).astype(np.uint8),
      mask=mask.astype(np.uint8),
      hands=np.stack([f.hands if use_hands else np.zeros(size) for f in frames]).astype(np.uint8),
      target=target.astype(np.float32),
      depth=np.stack([f.depth if f.depth is not None else np.full(size, np.nan) for f in frames]).astype(np.float32),
      body_depth=(body_depth(seq.body, indices, world_to_clip, size) if config.data.body_occlusion
                  else np.full((len(indices),) + size, np.inf, np.float32)),
      body_points=body_points,
      body_normals=body_normals,
      world_to_clip=world_to_clip,
      world_to_camera=np.stack([c.world_to_camera for c in cameras]).astype(np.float32),
      transforms=np.asarray(seq.body.transforms[indices], np.float32),
      pose=np.asarray(seq.body.pose[indices], np.float32),
  )
