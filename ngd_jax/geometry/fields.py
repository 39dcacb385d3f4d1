"""Static and dynamic Jacobian fields, J_t = J^S + J^D_t (docs/method.md section 2).

J^S is a plain learnable array [Fc, 3, 3] initialised to the template's own Jacobians. J^D_t is
f_G(face centre, face normal, pose code): three hash grids (16 levels x 2 features each) feeding
an MLP 96 -> 64 -> 64 -> 9 with ReLU and no biases.

Hash grids want inputs in [0, 1]. FieldBounds holds the affine maps, stored with the model (a
pytree of arrays, checkpointed with the parameters) so that evaluation reproduces training:
  centres: the axis-aligned box of the template skinned to every training frame (the J^S-only
    mesh stays near it), grown by a margin on each side; values outside are clipped;
  normals: (n + 1) / 2, exact for unit normals;
  pose codes: the per-component range over the training frames, grown by the same margin.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ngd_jax import hash_encoding
from ngd_jax.geometry import operators as operators_lib


def init_static_jacobians(operators: operators_lib.PoissonOperators) -> jax.Array:
  """J^S at initialisation: float32 [Fc, 3, 3], the template's I - n n^T (0 on padding faces)."""
  return operators_lib.jacobians(operators, operators.rest_vertices)


class FieldBounds(NamedTuple):
  """Affine normalisation of the dynamic field's inputs to [0, 1] (float32 arrays)."""

  centre_min: jax.Array  # [3]
  centre_max: jax.Array  # [3]
  pose_min: jax.Array  # [P]
  pose_max: jax.Array  # [P]


def fit_field_bounds(posed_vertices: np.ndarray, pose_codes: np.ndarray,
                     margin: float) -> FieldBounds:
  """Host: bounds from the template skinned to the training frames and their pose codes.

  Args:
    posed_vertices: [..., 3] positions of the template skinned to the training frames (world).
    pose_codes: [T, P] pose codes of the training frames.
    margin: fraction of each extent added on both sides (room for the learned deformation and
      pose-code noise).
  """
  points = np.asarray(posed_vertices, np.float64).reshape(-1, 3)
  codes = np.asarray(pose_codes, np.float64)
  if codes.ndim != 2 or len(codes) == 0 or len(points) == 0:
    raise ValueError(f'Need posed vertices [..., 3] and pose codes [T, P] with T > 0, got '
                     f'{np.shape(posed_vertices)} and {np.shape(pose_codes)}.')

  def grown(values):
    low, high = values.min(axis=0), values.max(axis=0)
    pad = margin * np.maximum(high - low, 1e-6) + 1e-6
    return jnp.asarray(low - pad, jnp.float32), jnp.asarray(high + pad, jnp.float32)

  centre_min, centre_max = grown(points)
  pose_min, pose_max = grown(codes)
  return FieldBounds(centre_min, centre_max, pose_min, pose_max)


class FieldInputs(NamedTuple):
  """Dynamic field inputs mapped to [0, 1]."""

  centres: jax.Array  # [F, 3]
  normals: jax.Array  # [F, 3]
  pose_code: jax.Array  # [P]


def normalize_field_inputs(bounds: FieldBounds, centres: jax.Array, normals: jax.Array,
                           pose_code: jax.Array) -> FieldInputs:
  """Maps world face centres [F, 3], unit normals [F, 3] and a pose code [P] into [0, 1]."""
  unit = lambda x, low, high: jnp.clip((x - low) / (high - low), 0.0, 1.0)
  return FieldInputs(
      centres=unit(centres, bounds.centre_min, bounds.centre_max),
      normals=jnp.clip(0.5 * (normals + 1.0), 0.0, 1.0),
      pose_code=unit(pose_code, bounds.pose_min, bounds.pose_max))


class DynamicJacobianField(hash_encoding.HashGridMLP):
  """f_G: (centres [F, 3], normals [F, 3], pose_code [P], all in [0, 1]) -> J^D float32 [F, 3, 3].

  The caller normalises the inputs (normalize_field_inputs) and stops their gradients. Output
  J^D[f][i, j] = out[f, 3 i + j]. Initialisation: every layer keeps Flax's LeCun-normal init;
  with no biases and tables at +-1e-4 the output starts at O(1e-4), i.e. J^D ~ 0 as the method
  needs, while the gradient still reaches every layer and table (a zero last layer would not).

  num_outputs = 3 is the displacement baseline (geometry.parameterization = 'displacement'): the
  same network on vertex positions and vertex normals, giving offsets float32 [V, 3].
  """

  num_outputs: int = 9  # 9: J^D [F, 3, 3]; 3: vertex offsets [V, 3] (the displacement baseline).

  @nn.compact
  def __call__(self, centres: jax.Array, normals: jax.Array, pose_code: jax.Array) -> jax.Array:
    if self.num_outputs not in (3, 9):
      raise ValueError(f'num_outputs must be 9 (Jacobians) or 3 (offsets), got {self.num_outputs}.')
    num_faces = centres.shape[0]
    pose_features = self.encoder('pose_grid')(pose_code[None, :])  # One lookup for all faces.
    x = jnp.concatenate([
        self.encoder('centre_grid')(centres),
        self.encoder('normal_grid')(normals),
        jnp.broadcast_to(pose_features, (num_faces, pose_features.shape[-1])),
    ], axis=-1)
    for layer in range(self.mlp_depth):
      x = nn.relu(nn.Dense(self.mlp_width, use_bias=False, name=f'hidden_{layer}')(x))
    x = nn.Dense(self.num_outputs, use_bias=False, name='out')(x)
    return x.reshape(num_faces, 3, 3) if self.num_outputs == 9 else x


def dynamic_field_from_config(geometry_config: ml_collections.ConfigDict) -> DynamicJacobianField:
  """The field with sizes from config.geometry (configs/default.py); 3 outputs per vertex when
  geometry.parameterization is 'displacement', 9 per face otherwise."""
  field = DynamicJacobianField.from_config(geometry_config)
  return field.clone(num_outputs=3) if geometry_config.parameterization == 'displacement' else field
