"""Host: a generated sequence turned into what real tools give, or given the paper's template (issue 19).

Each function copies a sequence folder and changes only what its kind of input changes, so a case
differs from the clean one by that alone:
  estimator_inputs      normals blurred and tilted by a smooth rotation field, garment masks grown or
                        shrunk by one pixel per frame, no depth (a normal estimator and a segmenter);
  estimator_depth       depth relative per frame, bent by a power, a smooth error and blurred (a
                        monocular depth estimator);
  tracked_body_sequence body.npz as a body tracker gives it (per-joint drift and jitter, global rotation,
                        translation mostly along the camera's depth axis); pictures and truth stay exact;
  first_frame_template  template.obj = the first frame's true garment unposed to the rest pose (the
                        paper's setting: 4D-Dress ships a scan of the garment).
"""

import dataclasses
import json
import os
import pathlib
import shutil

import jax.numpy as jnp
import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import transform
import trimesh

from ngd_jax import body as body_lib
from ngd_jax.body import anny
from ngd_jax.data import sequence as sequence_lib

ESTIMATOR_SIZE = 384  # The estimators' working size: blur radii are given in its pixels.
_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-neighbours: a 1-px ring.


def copy_sequence(src: str | os.PathLike, dst: str | os.PathLike, note: str, leave_out: tuple = ()) -> None:
  """Host: copies the folder `src` to the new folder `dst` without the top-level entries in `leave_out`,
  and appends `note` to sequence.json's "source"."""
  src, dst = pathlib.Path(src), pathlib.Path(dst)
  shutil.copytree(src, dst, ignore=lambda folder, names: [n for n in names if pathlib.Path(folder) == src
                                                          and n in leave_out])
  meta = json.loads((dst / 'sequence.json').read_text())
  meta['source'] = f'{meta.get("source", "")}; {note}'
  (dst / 'sequence.json').write_text(json.dumps(meta, indent=1))


def _unit(vectors: np.ndarray) -> np.ndarray:
  """Vectors scaled to length 1; zero vectors stay 0."""
  length = np.linalg.norm(vectors, axis=-1, keepdims=True)
  return np.where(length > 0, vectors / np.where(length > 0, length, 1.0), 0.0)


def blur_inside(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
  """Host: f64[H, W, C] `values` of `mask` blurred by a Gaussian of `sigma` px, everywhere.

  Each pixel outside the mask first takes its nearest masked pixel's value: what the outline gets
  comes from the garment alone, and a grown mask has values in its new ring.
  """
  _, (rows, cols) = ndimage.distance_transform_edt(~np.asarray(mask, bool), return_indices=True)
  filled = np.asarray(values, np.float64)[rows, cols]
  return np.stack([ndimage.gaussian_filter(filled[..., c], sigma) for c in range(filled.shape[-1])], -1)


def blur_normals(normal: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
  """Host: f[H, W, 3] normals of `mask` blurred by a Gaussian of `sigma` px and renormalized, everywhere."""
  return _unit(blur_inside(normal, mask, sigma))


def rotation_field(shape: tuple, max_degrees: float, rng: np.random.Generator, smooth_pixels: float,
                   smooth_frames: float) -> np.ndarray:
  """Host: f64[T, H, W, 3] axis-angles, smooth over pixels and frames, the largest of angle `max_degrees`."""
  field = ndimage.gaussian_filter(rng.normal(size=tuple(shape) + (3,)), (smooth_frames, smooth_pixels,
                                                                         smooth_pixels, 0))
  return field * np.radians(max_degrees) / np.linalg.norm(field, axis=-1).max()


def rotate(vectors: np.ndarray, axis_angle: np.ndarray) -> np.ndarray:
  """Rodrigues' rotation of f[..., 3] vectors by f[..., 3] axis-angles."""
  angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
  axis = axis_angle / np.where(angle > 0, angle, 1.0)
  along = np.sum(axis * vectors, -1, keepdims=True)
  return vectors * np.cos(angle) + np.cross(axis, vectors) * np.sin(angle) + axis * along * (1 - np.cos(angle))


def jitter_masks(masks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Host: bool[T, H, W] masks each grown or shrunk (at random) by its 1-px 4-neighbour ring; and
  bool[T], True where grown."""
  grown = rng.random(len(masks)) < 0.5
  return np.stack([ndimage.binary_dilation(m, _CROSS) if g else ndimage.binary_erosion(m, _CROSS)
                   for m, g in zip(np.asarray(masks, bool), grown)]), grown


def estimator_inputs(src: str | os.PathLike, dst: str | os.PathLike, seed: int, normal_blur: float = 3.0,
                     prior_blur: float = 0.0, max_tilt_degrees: float = 12.0) -> None:
  """Host: `src` copied to `dst` with inputs as estimators give them.

  Normals: blurred to a total of `normal_blur` px at ESTIMATOR_SIZE (scaled to the sequence's
  size; `prior_blur`, in the sequence's pixels, is what they already have: Gaussians add in
  quadrature), then tilted by a smooth rotation field of at most `max_tilt_degrees`; garment masks
  grown or shrunk by 1 px per frame (normals follow the new mask); depth removed.
  """
  seq = sequence_lib.read_sequence(src)
  if 'normal' not in seq.channels:
    raise ValueError(f'{src}: no normal/ to degrade.')
  height, width = seq.image_size
  blur = np.sqrt(max((normal_blur * max(height, width) / ESTIMATOR_SIZE) ** 2 - prior_blur**2, 0.0))
  rng = np.random.default_rng(seed)
  frames = [seq.load_frame(i) for i in range(seq.num_frames)]
  masks, _ = jitter_masks(np.stack([f.mask > 0.5 for f in frames]), rng)
  tilt = rotation_field((seq.num_frames, height, width), max_tilt_degrees, rng, max(height, width) / 8, 2.0)
  copy_sequence(src, dst, f'estimator-like inputs (seed {seed}): normals blurred {blur:.2f} px more and tilted up '
                f'to {max_tilt_degrees} deg, masks 1 px grown or shrunk, no depth', leave_out=('depth',))
  dst = pathlib.Path(dst)
  for i, (frame, mask) in enumerate(zip(frames, masks)):
    normal = rotate(blur_normals(frame.normal, frame.mask > 0.5, blur), tilt[i])
    np.save(dst / 'normal' / f'{seq.frames[i]}.npy', np.where(mask[..., None], normal, 0.0).astype(np.float32))
    Image.fromarray(np.uint8(mask) * 255, 'L').save(dst / 'mask' / f'{seq.frames[i]}.png')


def estimator_depth(src: str | os.PathLike, dst: str | os.PathLike, seed: int, depth_blur: float = 3.0,
                    gamma_range: tuple[float, float] = (0.7, 1.4), max_error: float = 0.05) -> None:
  """Host: `src` copied to `dst` with depth as a monocular estimator gives it: relative, not metric.

  Per frame: the camera depth over the garment mapped to [0, 1] (an unknown scale and shift), bent by
  a power gamma drawn from `gamma_range` (monotonic but not affine, as estimators' depth is), plus a
  smooth error field of at most `max_error` (over pixels and frames), blurred by a further `depth_blur` px
  at ESTIMATOR_SIZE (scaled to the sequence's size); nan off the garment as before. Larger is still farther.
  """
  seq = sequence_lib.read_sequence(src)
  if 'depth' not in seq.channels:
    raise ValueError(f'{src}: no depth/ to degrade.')
  height, width = seq.image_size
  rng = np.random.default_rng(seed)
  gammas = rng.uniform(*gamma_range, seq.num_frames)
  error = ndimage.gaussian_filter(rng.normal(size=(seq.num_frames, height, width)),
                                  (2.0, max(height, width) / 8, max(height, width) / 8))
  error *= max_error / np.abs(error).max()
  blur = depth_blur * max(height, width) / ESTIMATOR_SIZE
  copy_sequence(src, dst, f'estimator-like depth (seed {seed}): per frame normalised, power {gamma_range}, '
                f'smooth error up to {max_error}, blurred {blur:.2f} px', leave_out=('depth',))
  (pathlib.Path(dst) / 'depth').mkdir()
  for i in range(seq.num_frames):
    depth = seq.load_frame(i).depth
    known = np.isfinite(depth)
    low, high = depth[known].min(), depth[known].max()
    relative = ((depth - low) / max(high - low, 1e-9)).clip(0.0, 1.0) ** gammas[i] + error[i]
    blurred = blur_inside(np.where(known, relative, 0.0)[..., None], known, blur)[..., 0]
    np.save(pathlib.Path(dst) / 'depth' / f'{seq.frames[i]}.npy', np.where(known, blurred, np.nan).astype(np.float32))


@dataclasses.dataclass(frozen=True)
class TrackerNoise:
  """A body tracker's errors: smooth drift plus per-frame jitter (degrees, metres; each the largest)."""
  joint_drift: float = 2.0  # Local rotation of every joint but the root.
  joint_jitter: float = 1.0
  global_drift: float = 1.5  # Rotation of the whole body about its root joint.
  global_jitter: float = 0.5
  depth_drift: float = 0.012  # Translation along the training camera's optical axis.
  depth_jitter: float = 0.003
  lateral_drift: float = 0.002  # Translation across it.
  lateral_jitter: float = 0.001
  smooth_frames: float = 4.0  # Gaussian width of the drift over time (frames).


def _track_noise(rng: np.random.Generator, shape: tuple, drift: float, jitter: float,
                 smooth_frames: float) -> np.ndarray:
  """Host: f64[T, N, D]: per series a smooth drift whose largest norm over frames is `drift`, plus per-frame
  jitter of norm up to `jitter` (a random direction)."""
  smooth = ndimage.gaussian_filter1d(rng.normal(size=shape), smooth_frames, axis=0)
  smooth *= drift / np.linalg.norm(smooth, axis=-1, keepdims=True).max(axis=0, keepdims=True)
  direction = _unit(rng.normal(size=shape))
  return smooth + jitter * rng.random(shape[:-1] + (1,)) * direction


def root_translation(body: body_lib.BodyData, joints: np.ndarray) -> np.ndarray:
  """Host: f64[T, 3] the root's translation of anny.forward_kinematics, read back from the transforms."""
  root = np.asarray(body.transforms, np.float64)[:, 0]
  return root[:, :3, 3] - joints[0] + root[:, :3, :3] @ joints[0]


def tracked_body(body: body_lib.BodyData, joints: np.ndarray, depth_axis: np.ndarray, rng: np.random.Generator,
                 noise: TrackerNoise = TrackerNoise()) -> body_lib.BodyData:
  """Host: `body` (pose = local axis-angles [T, 3K], parents given) as a tracker would give it.

  joints f[K, 3]: the rest joints the transforms were made from (anny.forward_kinematics); depth_axis:
  the camera's optical axis in the world. Pose vector, transforms and posed vertices all change.
  """
  num_frames, num_joints = body.num_frames, body.num_joints
  depth_axis = np.asarray(depth_axis, np.float64) / np.linalg.norm(depth_axis)
  across = np.linalg.svd(depth_axis[None])[2][1:]  # Two unit axes orthogonal to depth_axis.
  local = transform.Rotation.from_rotvec(np.asarray(body.pose, np.float64).reshape(-1, 3))
  local = local.as_matrix().reshape(num_frames, num_joints, 3, 3)
  joint_noise = _track_noise(rng, (num_frames, num_joints - 1, 3), np.radians(noise.joint_drift),
                             np.radians(noise.joint_jitter), noise.smooth_frames)
  global_noise = _track_noise(rng, (num_frames, 1, 3), np.radians(noise.global_drift),
                              np.radians(noise.global_jitter), noise.smooth_frames)[:, 0]
  depth = _track_noise(rng, (num_frames, 1, 1), noise.depth_drift, noise.depth_jitter, noise.smooth_frames)[:, 0]
  lateral = _track_noise(rng, (num_frames, 1, 2), noise.lateral_drift, noise.lateral_jitter,
                         noise.smooth_frames)[:, 0]
  as_matrix = lambda v: transform.Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(v.shape + (3,))
  local[:, 0] = as_matrix(global_noise) @ local[:, 0]  # World-aligned rotation about the root joint.
  local[:, 1:] = local[:, 1:] @ as_matrix(joint_noise)
  pose = transform.Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(num_frames, num_joints, 3)
  translation = root_translation(body, joints) + depth * depth_axis + lateral @ across
  transforms = anny.forward_kinematics(np.asarray(joints, np.float32), np.asarray(body.parents),
                                       pose.astype(np.float32), translation.astype(np.float32))
  posed = body_lib.lbs_frames(jnp.asarray(body.rest_vertices), jnp.asarray(body.skinning_weights),
                              jnp.asarray(transforms))
  return dataclasses.replace(body, transforms=transforms.astype(np.float32),
                             pose=pose.reshape(num_frames, -1).astype(np.float32),
                             posed_vertices=np.asarray(posed, np.float32))


def tracked_body_sequence(src: str | os.PathLike, dst: str | os.PathLike, seed: int,
                          noise: TrackerNoise = TrackerNoise()) -> float:
  """Host: `src` (an Anny body: ngd_jax.data.synthetic) copied to `dst` with a tracked body.npz; every
  other file is the same. Returns the mean distance (m) of the tracked body's vertices from the true ones."""
  seq = sequence_lib.read_sequence(src)
  rig = anny.load_anny()
  if seq.body.rest_vertices.shape != rig.rest_vertices.shape or seq.body.parents is None:
    raise ValueError(f'{src}: body.npz is not the Anny body of ngd_jax.data.synthetic.')
  body = tracked_body(seq.body, rig.joints, seq.world_to_camera[0, 2, :3], np.random.default_rng(seed), noise)
  offset = float(np.linalg.norm(body.posed_vertices - seq.body.posed_vertices, axis=-1).mean())
  copy_sequence(src, dst, f'tracker-like body (seed {seed}, {noise}): body vertices {1e3 * offset:.0f} mm off '
                'on average', leave_out=('body.npz',))
  body_lib.write_body_npz(pathlib.Path(dst) / 'body.npz', body)
  return offset


def unposed(vertices: np.ndarray, faces: np.ndarray, body: body_lib.BodyData, frame: int, tolerance: float = 1e-5,
            max_iterations: int = 30, **skinning) -> np.ndarray:
  """Host: f64[V, 3] rest-space points that garment skinning (body.garment_weights of the points themselves,
  with `skinning`) maps to `vertices` at `frame`.

  Fixed point of U = (sum_k w_k(U) A_k)^-1 X, from the weights on the posed body; stops when the
  re-skinned points are within `tolerance` (m) of `vertices`. ValueError if they never are. The default
  rule is the paper's (contact_distance -1): under the contact rule the band a rest shape pins flips
  between iterates on the long skirt, so no rest shape re-skins exactly.
  """
  target = np.asarray(vertices, np.float64)
  transforms = np.asarray(body.transforms[frame], np.float64)
  near = body.rest_vertices if body.posed_vertices is None else body.posed_vertices[frame]
  weights = body_lib.garment_weights(target, faces, near, body.skinning_weights, **skinning)
  for _ in range(max_iterations):
    blend = np.einsum('vk,kij->vij', weights, transforms)
    rest = np.linalg.solve(blend[:, :3, :3], (target - blend[:, :3, 3])[..., None])[..., 0]
    weights = body_lib.garment_weights(rest, faces, body.rest_vertices, body.skinning_weights, **skinning)
    blend = np.einsum('vk,kij->vij', weights.astype(np.float64), transforms)
    error = np.linalg.norm(np.einsum('vij,vj->vi', blend[:, :3, :3], rest) + blend[:, :3, 3] - target, axis=-1)
    if error.max() < tolerance:
      return rest
  raise ValueError(f'unposing did not converge: re-skinned points up to {error.max():.2e} m off.')


def first_frame_template(src: str | os.PathLike, dst: str | os.PathLike, **skinning) -> None:
  """Host: `src` copied to `dst` with template.obj = its first frame's true garment unposed (`unposed`; exact
  under the skinning rule of `skinning`, the paper's by default)."""
  seq = sequence_lib.read_sequence(src)
  mesh = seq.gt_mesh(0)
  rest = unposed(mesh.vertices, np.asarray(mesh.faces), seq.body, 0, **skinning)
  copy_sequence(src, dst, 'template: the first frame\'s true garment unposed', leave_out=('template.obj',))
  template = trimesh.Trimesh(rest, mesh.faces, process=False)
  (pathlib.Path(dst) / 'template.obj').write_text(template.export(file_type='obj'))
