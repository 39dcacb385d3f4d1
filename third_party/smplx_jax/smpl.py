"""SMPL forward in JAX: shape blend shapes, joint regression, Rodrigues, pose blend shapes,
kinematic chain and linear blend skinning (Loper et al. 2015, eqs. 1-4 and 10).

The layer is generic over the joint count K read from the model file (SMPL: K = 24, pose 72-d
axis-angle), so an SMPL-X file with full axis-angle pose (no hand PCA) goes through the same code.
"""

import dataclasses
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smplx_jax import io

SMPL_JOINT_NAMES = (
    'pelvis', 'left_hip', 'right_hip', 'spine1', 'left_knee', 'right_knee', 'spine2',
    'left_ankle', 'right_ankle', 'spine3', 'left_foot', 'right_foot', 'neck', 'left_collar',
    'right_collar', 'head', 'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
    'left_wrist', 'right_wrist', 'left_hand', 'right_hand',
)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SMPL:
  """Model arrays (a pytree; `parents` is static so the kinematic chain unrolls under jit).

  v_template f32[V,3]; shapedirs f32[V,3,S]; posedirs f32[V,3,9(K-1)]; J_regressor f32[K,V];
  weights f32[V,K]; faces i32[F,3]; parents: tuple of K ints, -1 for the root.
  """

  v_template: jax.Array
  shapedirs: jax.Array
  posedirs: jax.Array
  J_regressor: jax.Array  # pylint: disable=invalid-name
  weights: jax.Array
  faces: jax.Array
  parents: tuple[int, ...] = dataclasses.field(metadata=dict(static=True))

  @property
  def num_joints(self) -> int:
    return len(self.parents)

  @property
  def num_betas(self) -> int:
    return self.shapedirs.shape[-1]

  @property
  def joint_names(self) -> tuple[str, ...] | None:
    return SMPL_JOINT_NAMES if self.num_joints == len(SMPL_JOINT_NAMES) else None

  @classmethod
  def load(cls, path: str | pathlib.Path, num_betas: int = 10) -> 'SMPL':
    """Host: reads an SMPL .pkl (no chumpy needed) or .npz; keeps the first `num_betas` shape dirs."""
    a = io.load_model_arrays(path)
    if not 0 < num_betas <= a['shapedirs'].shape[-1]:
      raise ValueError(f'num_betas={num_betas} but {path} has {a["shapedirs"].shape[-1]} shape blend shapes.')
    return cls(
        v_template=jnp.asarray(a['v_template'], jnp.float32),
        shapedirs=jnp.asarray(a['shapedirs'][..., :num_betas], jnp.float32),
        posedirs=jnp.asarray(a['posedirs'], jnp.float32),
        J_regressor=jnp.asarray(a['J_regressor'], jnp.float32),
        weights=jnp.asarray(a['weights'], jnp.float32),
        faces=jnp.asarray(a['f'], jnp.int32),
        parents=tuple(int(p) for p in a['parents']),
    )

  def __call__(self, betas, pose, transl=None) -> 'SMPLOutput':
    return forward(self, betas, pose, transl)


class SMPLOutput(NamedTuple):
  """vertices f32[V,3] (posed, with pose blend shapes); joints f32[K,3] (posed, translated);
  transforms f32[K,4,4]: the LBS transforms A_k, posed = sum_k w_k A_k [v_shaped + posedirs; 1];
  shaped_vertices f32[V,3]: the zero-pose shaped body (the rest space of A_k)."""

  vertices: jax.Array
  joints: jax.Array
  transforms: jax.Array
  shaped_vertices: jax.Array


def rodrigues(axis_angle: jax.Array) -> jax.Array:
  """Rotation matrices f32[...,3,3] from axis-angle f32[...,3]; exact and differentiable at 0.

  R = I + a K + b K^2 with K = [r]_x, a = sin t / t, b = (1 - cos t) / t^2, t = |r|; Taylor
  series below t^2 = 1e-8 avoid 0/0 in value and gradient.
  """
  theta2 = jnp.sum(axis_angle**2, axis=-1)[..., None, None]
  small = theta2 < 1e-8
  safe2 = jnp.where(small, 1.0, theta2)
  theta = jnp.sqrt(safe2)
  a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
  b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / safe2)
  x, y, z = axis_angle[..., 0], axis_angle[..., 1], axis_angle[..., 2]
  zero = jnp.zeros_like(x)
  skew = jnp.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis_angle.shape[:-1] + (3, 3))
  eye = jnp.eye(3, dtype=axis_angle.dtype)
  return eye + a * skew + b * (skew @ skew)


def lbs(vertices: jax.Array, weights: jax.Array, transforms: jax.Array) -> jax.Array:
  """Linear blend skinning: f32[V,3] = sum_k w[v,k] A_k [v; 1] for weights f32[V,K], A f32[K,4,4]."""
  num_joints = transforms.shape[0]
  blended = (weights @ transforms.reshape(num_joints, 16)).reshape(-1, 4, 4)
  return jnp.einsum('vij,vj->vi', blended[:, :3, :3], vertices) + blended[:, :3, 3]


def kinematic_chain(rotations: jax.Array, joints: jax.Array, parents: tuple[int, ...]):
  """Global joint frames G_k f32[K,4,4] and LBS transforms A_k = G_k [I, -J_k; 0, 1].

  rotations f32[K,3,3] (local, relative to the parent); joints f32[K,3] rest joint positions.
  """
  is_root = np.array(parents)[:, None] < 0
  rel = joints - jnp.where(is_root, 0.0, joints[np.maximum(np.array(parents), 0)])
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], joints.dtype), (len(parents), 1, 4))
  local = jnp.concatenate([jnp.concatenate([rotations, rel[:, :, None]], axis=2), bottom], axis=1)
  frames = [local[0]]
  for k in range(1, len(parents)):
    frames.append(frames[parents[k]] @ local[k])
  frames = jnp.stack(frames)
  offset = frames[:, :3, 3] - jnp.einsum('kij,kj->ki', frames[:, :3, :3], joints)
  return frames, frames.at[:, :3, 3].set(offset)


def shape_blend(model: SMPL, betas: jax.Array) -> jax.Array:
  """The shaped zero-pose body f32[V,3] = v_template + shapedirs[..., :S'] betas (Loper et al. eq. 2)."""
  betas = jnp.asarray(betas, jnp.float32)
  return model.v_template + model.shapedirs[..., : betas.shape[0]] @ betas


def forward(model: SMPL, betas: jax.Array, pose: jax.Array, transl: jax.Array | None = None) -> SMPLOutput:
  """SMPL for one body: betas f32[S'] (S' <= model.num_betas), pose f32[3K] axis-angle, transl f32[3].

  Pure and jit/vmap friendly (vmap over betas/pose/transl for batches); call it under jit: eagerly
  the unrolled kinematic chain dispatches ~100 small ops.
  """
  num_joints = model.num_joints
  betas = jnp.asarray(betas, jnp.float32)
  pose = jnp.asarray(pose, jnp.float32).reshape(num_joints, 3)
  transl = jnp.zeros(3, jnp.float32) if transl is None else jnp.asarray(transl, jnp.float32)
  shaped = shape_blend(model, betas)
  joints = model.J_regressor @ shaped
  rotations = rodrigues(pose)
  pose_feature = (rotations[1:] - jnp.eye(3, dtype=rotations.dtype)).reshape(-1)
  posed_rest = shaped + model.posedirs @ pose_feature
  frames, transforms = kinematic_chain(rotations, joints, model.parents)
  transforms = transforms.at[:, :3, 3].add(transl)
  vertices = lbs(posed_rest, model.weights, transforms)
  return SMPLOutput(
      vertices=vertices, joints=frames[:, :3, 3] + transl, transforms=transforms, shaped_vertices=shaped
  )
