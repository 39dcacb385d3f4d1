"""The garment model: Jacobian fields -> Poisson solve -> skinning -> rendering (METHOD.md 2-3).

Everything here is pure JAX over pytrees and runs inside jit; the static parts (network shape,
solver choice, resolution) live in GarmentModel, a frozen dataclass closed over by jit.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ngd_jax import body
from ngd_jax import geometry
from ngd_jax import render


class GarmentMesh(NamedTuple):
  """One topology padded to its capacity bucket (device arrays; rebuilt on host after a remesh)."""

  operators: geometry.PoissonOperators  # faces, rest vertices, masks and the Poisson system.
  skinning_weights: Float[Array, 'Vc K']
  topology: Any  # render.Topology: edge adjacency for antialiasing.


class FrameInputs(NamedTuple):
  """What the model needs of one frame besides its images."""

  transforms: Float[Array, 'K 4 4']  # Body LBS transforms of the frame.
  world_to_clip: Float[Array, '4 4']
  world_to_camera: Float[Array, '4 4']
  pose_code: Float[Array, 'P']  # Geometry pose code (PCA of the body pose).


class Deformation(NamedTuple):
  jacobians: Float[Array, 'Fc 3 3']  # J^S + J^D.
  dynamic: Float[Array, 'Fc 3 3']  # J^D (zero during warm-up).
  canonical: Float[Array, 'Vc 3']  # Poisson solution in the rest space.
  posed: Float[Array, 'Vc 3']  # Skinned to the frame (world).


def face_frames(vertices: Float[Array, 'V 3'], faces) -> tuple[Array, Array]:
  """Face centres [F, 3] and unit normals [F, 3]; degenerate faces get a zero normal."""
  corners = vertices[faces]
  centres = corners.mean(axis=1)
  cross = jnp.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  norm_sq = jnp.sum(cross**2, axis=-1, keepdims=True)
  safe = jnp.where(norm_sq > 1e-20, norm_sq, 1.0)
  normals = jnp.where(norm_sq > 1e-20, cross / jnp.sqrt(safe), 0.0)
  return centres, normals


@dataclasses.dataclass(frozen=True)
class GarmentModel:
  """Static description of the forward model; its methods are pure functions of their arguments."""

  field: geometry.DynamicJacobianField
  solver: str  # 'cg' or 'cholesky' (already resolved).
  cg_tol: float
  cg_maxiter: int
  resolution: tuple[int, int]  # (H, W) of the rendered images.
  backend: str  # Rasterizer kernel.
  antialias: bool

  def solve(self, mesh: GarmentMesh, jacobians: Array, x0: Array | None = None) -> Float[Array, 'Vc 3']:
    return geometry.poisson_solve(
        mesh.operators, jacobians, self.solver, x0=x0, tol=self.cg_tol, maxiter=self.cg_maxiter
    )

  def skin(self, mesh: GarmentMesh, canonical: Array, frame: FrameInputs) -> Float[Array, 'Vc 3']:
    return body.lbs(canonical, mesh.skinning_weights, frame.transforms)

  def dynamic_jacobians(
      self, field_params, bounds: geometry.FieldBounds, mesh: GarmentMesh, static_posed: Array, frame: FrameInputs
  ) -> Float[Array, 'Fc 3 3']:
    """f_G on the J^S-only mesh skinned to the frame; its inputs carry no gradient (METHOD.md 2)."""
    centres, normals = face_frames(jax.lax.stop_gradient(static_posed), mesh.operators.faces)
    inputs = geometry.normalize_field_inputs(bounds, centres, normals, jax.lax.stop_gradient(frame.pose_code))
    return self.field.apply(field_params, inputs.centres, inputs.normals, inputs.pose_code)

  def deform(
      self,
      params: dict[str, Any],
      bounds: geometry.FieldBounds,
      mesh: GarmentMesh,
      frame: FrameInputs,
      *,
      dynamic: bool,
      blend_target: Array | None = None,
      blend_weight: Array | float = 1.0,
      x0: Array | None = None,
  ) -> Deformation:
    """J = J^S + J^D -> canonical vertices -> posed vertices.

    Args:
      params: {'static': J^S [Fc, 3, 3], 'dynamic': flax variables of the field}.
      dynamic: static flag; False during warm-up (J^D = 0, the network is not evaluated).
      blend_target: after a remesh, the old per-frame J^D transferred to the new faces; J^D is
        (1 - blend_weight) * blend_target + blend_weight * network (METHOD.md section 6).
      x0: warm start of a CG solve (ignored by Cholesky).
    """
    static = params['static']
    if dynamic:
      static_canonical = jax.lax.stop_gradient(self.solve(mesh, static, x0))
      static_posed = self.skin(mesh, static_canonical, frame)
      dyn = self.dynamic_jacobians(params['dynamic'], bounds, mesh, static_posed, frame)
      if blend_target is not None:
        dyn = (1.0 - blend_weight) * blend_target + blend_weight * dyn
    else:
      dyn = jnp.zeros_like(static)
    jacobians = static + dyn
    canonical = self.solve(mesh, jacobians, x0)
    return Deformation(jacobians, dyn, canonical, self.skin(mesh, canonical, frame))

  def render(self, mesh: GarmentMesh, posed: Array, frame: FrameInputs) -> render.GarmentRender:
    return render.render_garment(
        posed,
        mesh.operators.faces,
        mesh.topology,
        frame.world_to_clip,
        frame.world_to_camera,
        self.resolution,
        backend=self.backend,
        antialias=self.antialias,
    )
