"""The garment model: Jacobian fields -> Poisson solve -> skinning -> rendering (docs/method.md section 2-3).

Everything here is pure JAX over pytrees and runs inside jit; the static parts (network shape,
solver choice, resolution) live in GarmentModel, a frozen dataclass closed over by jit.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ngd_jax import body
from ngd_jax import geometry
from ngd_jax import meshes
from ngd_jax import render


class GarmentMesh(NamedTuple):
  """One topology padded to its capacity bucket (device arrays; rebuilt on host after a remesh)."""

  operators: geometry.PoissonOperators  # faces, rest vertices, masks and the Poisson system.
  skinning_weights: Float[Array, 'Vc K']
  topology: Any  # render.Topology: edge adjacency for antialiasing.
  face_pairs: Int[Array, 'Ec 2']  # Faces sharing an edge (smoothness term); padding rows (0, 0).
  body_distance: body.DistanceGrid | None  # Rest body's signed distance (penetration term), None when off.


class FrameInputs(NamedTuple):
  """What the model needs of one frame besides its images."""

  transforms: Float[Array, 'K 4 4']  # Body LBS transforms of the frame.
  world_to_clip: Float[Array, '4 4']
  world_to_camera: Float[Array, '4 4']
  pose_code: Float[Array, 'P']  # Geometry pose code (PCA of the body pose).


class Deformation(NamedTuple):
  """The deformation of one frame; `dynamic` is per vertex [Vc, 3] in the displacement baseline."""

  jacobians: Float[Array, 'Fc 3 3']  # J^S + J^D (displacement: G x of the displaced mesh).
  dynamic: Float[Array, 'Fc 3 3']  # J^D (zero during warm-up); displacement: dynamic offsets [Vc, 3].
  canonical: Float[Array, 'Vc 3']  # Poisson solution (displacement: rest + offsets) in the rest space.
  posed: Float[Array, 'Vc 3']  # Skinned to the frame (world).
  solve: geometry.SolveInfo  # Of the final Poisson solve (CG iterations, residual); zeros without a solve.


def face_frames(vertices: Float[Array, 'V 3'], faces: Int[Array, 'F 3']) -> tuple[Array, Array]:
  """Face centres [F, 3] and unit normals [F, 3]; degenerate faces get a zero normal."""
  centres = vertices[faces].mean(axis=1)
  return centres, meshes.unit_vectors(meshes.face_normals(vertices, faces), min_squared_length=1e-20)


def blend(network: Array, target: Array | None, weight: Array | float) -> Array:
  """J^D (or the dynamic offsets) after a remesh: (1 - weight) x the old per-frame target + weight x
  the network's (docs/method.md section 6); the network's alone without a target."""
  return network if target is None else (1.0 - weight) * target + weight * network


@dataclasses.dataclass(frozen=True)
class GarmentModel:
  """Static description of the forward model; its methods are pure functions of their arguments."""

  field: geometry.DynamicJacobianField
  solver: str  # config.geometry.solver; 'auto' follows the mesh (dense when it carries an inverse, poisson_solve).
  cg_tol: float
  cg_maxiter: int
  resolution: tuple[int, int]  # (H, W) of the rendered images.
  backend: str  # Rasterizer kernel.
  antialias: bool
  # 'jacobian' (the method) or 'displacement': per-vertex rest-space offsets replace the Jacobians and
  # the Poisson solve (the DGarment-style baseline of issue 11); config.geometry.parameterization.
  parameterization: str = 'jacobian'
  cg_warm_start: bool = True  # config.geometry.cg_warm_start: False ignores the x0 of solve().
  # The cloth's colour over the rest surface that the photometric term compares the frames with (params['colour']);
  # None where config.loss.photometric_weight is 0.
  colour_field: geometry.ClothColour | None = None

  @property
  def warm_starts(self) -> bool:
    """Whether solve() reads x0: CG warm starts, where CG can be the solver ('cg', or 'auto' off CPU)."""
    may_use_cg = self.solver == 'cg' or (self.solver == 'auto' and jax.default_backend() != 'cpu')
    return self.cg_warm_start and may_use_cg

  def init_static(self, operators: geometry.PoissonOperators) -> Array:
    """J^S at initialisation [Fc, 3, 3] (the template's Jacobians), or zero offsets [Vc, 3]."""
    if self.parameterization == 'displacement':
      return jnp.zeros_like(operators.rest_vertices)
    return geometry.init_static_jacobians(operators)

  def static_canonical(self, mesh: GarmentMesh, static: Array, x0: Array | None = None) -> Float[Array, 'Vc 3']:
    """The canonical garment of the static part alone: the Poisson solution of J^S, or rest + offsets."""
    if self.parameterization == 'displacement':
      return mesh.operators.rest_vertices + self._real_vertices(mesh, static)
    return self.solve(mesh, static, x0)

  def _real_vertices(self, mesh: GarmentMesh, offsets: Array) -> Array:
    """Offsets [Vc, 3] with the padding vertices' rows zeroed (they stay copies of vertex 0's rest)."""
    return offsets * mesh.operators.vertex_mask[:, None].astype(offsets.dtype)

  def solve_with_info(self, mesh: GarmentMesh, jacobians: Array,
                      x0: Array | None = None) -> tuple[Float[Array, 'Vc 3'], geometry.SolveInfo]:
    return geometry.poisson_solve_with_info(
        mesh.operators, jacobians, self.solver, x0=x0 if self.cg_warm_start else None, tol=self.cg_tol,
        maxiter=self.cg_maxiter
    )

  def solve(self, mesh: GarmentMesh, jacobians: Array, x0: Array | None = None) -> Float[Array, 'Vc 3']:
    return self.solve_with_info(mesh, jacobians, x0)[0]

  def skin(self, mesh: GarmentMesh, canonical: Array, frame: FrameInputs) -> Float[Array, 'Vc 3']:
    return body.lbs(canonical, mesh.skinning_weights, frame.transforms)

  def dynamic_jacobians(
      self, field_params: dict[str, Any], bounds: geometry.FieldBounds, mesh: GarmentMesh, static_posed: Array,
      frame: FrameInputs
  ) -> Float[Array, 'Fc 3 3']:
    """f_G on the J^S-only mesh skinned to the frame; its inputs carry no gradient (docs/method.md section 2)."""
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

    In the displacement baseline: rest + static offsets + dynamic offsets -> posed vertices (no
    solve); `jacobians` are then G x of the displaced canonical mesh, for the same regulariser.

    Args:
      params: {'static': J^S [Fc, 3, 3] (displacement: offsets [Vc, 3]), 'dynamic': flax
        variables of the field}.
      dynamic: static flag; False during warm-up (J^D = 0, the network is not evaluated).
      blend_target: after a remesh, the old per-frame J^D transferred to the new faces (or the old
        dynamic offsets to the new vertices); J^D is
        (1 - blend_weight) * blend_target + blend_weight * network (docs/method.md section 6).
      x0: warm start of a CG solve (ignored by the direct solves and by the displacement baseline).
    """
    static = params['static']
    if self.parameterization == 'displacement':
      return self._deform_displacement(params, bounds, mesh, frame, dynamic, blend_target, blend_weight)
    if dynamic:
      static_canonical = jax.lax.stop_gradient(self.solve(mesh, static, x0))
      static_posed = self.skin(mesh, static_canonical, frame)
      dyn = blend(self.dynamic_jacobians(params['dynamic'], bounds, mesh, static_posed, frame), blend_target,
                  blend_weight)
    else:
      dyn = jnp.zeros_like(static)
    jacobians = static + dyn
    canonical, info = self.solve_with_info(mesh, jacobians, x0)
    return Deformation(jacobians, dyn, canonical, self.skin(mesh, canonical, frame), info)

  def dynamic_offsets(
      self, field_params: dict[str, Any], bounds: geometry.FieldBounds, mesh: GarmentMesh, static_posed: Array,
      frame: FrameInputs
  ) -> Float[Array, 'Vc 3']:
    """Displacement baseline: f_G (3 outputs) on the vertex positions and area-weighted vertex
    normals of the static-only mesh skinned to the frame; inputs carry no gradient."""
    posed = jax.lax.stop_gradient(static_posed)
    normals = meshes.vertex_normals(posed, mesh.operators.faces)
    inputs = geometry.normalize_field_inputs(bounds, posed, normals, jax.lax.stop_gradient(frame.pose_code))
    return self.field.apply(field_params, inputs.centres, inputs.normals, inputs.pose_code)

  def _deform_displacement(self, params, bounds, mesh, frame, dynamic, blend_target, blend_weight) -> Deformation:
    """deform() of the displacement baseline: canonical = rest + static offsets + dynamic offsets."""
    static_canonical = self.static_canonical(mesh, params['static'])
    if dynamic:
      static_posed = self.skin(mesh, jax.lax.stop_gradient(static_canonical), frame)
      dyn = blend(self.dynamic_offsets(params['dynamic'], bounds, mesh, static_posed, frame), blend_target,
                  blend_weight)
      dyn = self._real_vertices(mesh, dyn)
      canonical = static_canonical + dyn
    else:
      dyn = jnp.zeros_like(static_canonical)
      canonical = static_canonical
    jacobians = geometry.jacobians(mesh.operators, canonical)
    no_solve = geometry.SolveInfo(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))
    return Deformation(jacobians, dyn, canonical, self.skin(mesh, canonical, frame), no_solve)

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
