"""A run's geometry: its inputs and model, the state the geometry phase trains, and inference.

What every phase after loading shares (train, remeshing, texturing, restoring, evaluation and
export all read it; it imports none of them):
  - Constants, GeometryState, StepBatch: the pytrees the jitted geometry step takes;
  - Run: the host-side holder of the inputs, the model and the frame batches;
  - deform_frame / deform_all_frames / posed_frames / canonical_mesh: the trained garment per frame.
"""

import functools
import logging
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jaxtyping import Array, Float, Int, UInt8

from ngd_jax import body
from ngd_jax import configuration
from ngd_jax import geometry
from ngd_jax import model as model_lib
from ngd_jax import optimizers
from ngd_jax import pipeline
from ngd_jax import remesh
from ngd_jax import render

NO_BLEND_EPOCH = -(2**30)  # blend_start_epoch before any remesh: J^D is the network's alone.


class Constants(NamedTuple):
  """Fitted once from the training frames and saved with the run, so evaluation reproduces them."""

  pose_pca: geometry.PosePCA  # Geometry pose code (config.geometry.pose_components).
  field_bounds: geometry.FieldBounds  # Normalisation of the dynamic field's inputs.


class GeometryState(NamedTuple):
  """Everything the geometry phase needs to continue; what orbax saves (mesh arrays padded)."""

  step: Int[Array, '']  # Geometry steps done (train.frames_per_step frames each).
  # {'static': J^S [Fc, 3, 3] (displacement: offsets [Vc, 3]), 'dynamic': field variables, 'colour': the cloth's colour
  # field's variables where the photometric term is on}.
  params: dict[str, Any]
  opt_state: Any
  rest_vertices: Float[Array, 'Vc 3']  # Current template (after remeshes), padded.
  faces: Int[Array, 'Fc 3']  # Padded with (0, 0, 0).
  num_vertices: Int[Array, '']
  num_faces: Int[Array, '']
  scores: remesh.FaceScoreAccumulator  # Remesh face scores of the current epoch.
  # Old J^D per frame after a remesh ([T, Vc, 3]: displacement), while J^D blends from it to the
  # network's (remesh.blend_epochs); None otherwise.
  blend_target: Float[Array, 'T Fc 3 3'] | None
  blend_start_epoch: Int[Array, '']  # Epoch of the last remesh (NO_BLEND_EPOCH before any).
  solutions: Float[Array, 'T Vc 3'] | None  # Last canonical solution per frame, for CG warm starts only.


class TrainingFrames(NamedTuple):
  """Every training frame's images and cameras, put on the device once (indexed inside the step)."""

  target: Float[Array, 'T H W C']  # supervision.target_image.
  rgb: UInt8[Array, 'T H W 3']  # The frames' colours, read by the photometric term only ([T, 0, 0, 3] without it).
  mask: UInt8[Array, 'T H W']  # Garment mask 0/1.
  hands: UInt8[Array, 'T H W']  # Hands mask 0/1.
  depth: Float[Array, 'T H W']  # Relative depth, nan = unknown.
  body_depth: Float[Array, 'T H W']  # z/w of the posed body, inf where none (frames.body_depth).
  body_points: Float[Array, 'T N 3']  # Samples of the posed body and its normals there (frames.body_samples).
  body_normals: Float[Array, 'T N 3']
  transforms: Float[Array, 'T K 4 4']
  world_to_clip: Float[Array, 'T 4 4']
  world_to_camera: Float[Array, 'T 4 4']


class StepBatch(NamedTuple):
  """What changes from one step to the next: which frames (B = train.frames_per_step) and the
  host-side schedule values. A few bytes; the images stay on the device in TrainingFrames."""

  t: Int[Array, 'B']  # Indices of the step's frames in the bank.
  slot: Int[Array, 'B']  # Index of each frame in the TrainingFrames the step receives (t when all are there).
  pose_code: Float[Array, 'B P']  # Geometry pose code of each frame (with pose noise).
  blend_weight: Float[Array, '']  # Weight of the network J^D (1 outside blending).
  vertex_noise_std: Float[Array, '']
  seed: Int[Array, '']  # config.seed.
  step: Int[Array, '']  # Global step: the step's random draws are keyed by (seed, step, frame of the step).


class GeometryResult(NamedTuple):
  """The geometry phase's outcome: what texturing, evaluation and export read."""

  constants: Constants
  state: GeometryState
  mesh: model_lib.GarmentMesh
  meta: dict[str, Any]


def blend_weight(config: ml_collections.ConfigDict, epoch: int, blend_start_epoch: int) -> float:
  """Host: the network's share of J^D at `epoch` (docs/method.md section 6: it blends in over
  remesh.blend_epochs after a remesh; 1 before any remesh)."""
  since_remesh = epoch - blend_start_epoch
  return float(remesh.blend_weight(since_remesh, config.remesh.blend_epochs)) if since_remesh >= 0 else 1.0


class Mesh(NamedTuple):
  """Host: a mesh without padding."""

  vertices: np.ndarray  # float [V, 3] ([T, V, 3]: one pose per training frame).
  faces: np.ndarray  # int32 [F, 3]


def frame_blend_target(state: GeometryState, t: Int[Array, ''] | int) -> Array | None:
  """The blend target of frame t, or None outside blending."""
  return None if state.blend_target is None else state.blend_target[t]


def blending_ended(config: ml_collections.ConfigDict, epoch: int, blend_start_epoch: int) -> bool:
  """Host: whether the blend after the last remesh is over at `epoch` (the target can go)."""
  return blend_start_epoch != NO_BLEND_EPOCH and epoch - blend_start_epoch >= config.remesh.blend_epochs


def unpadded_template(state: GeometryState) -> Mesh:
  """Host: the real rows of the state's template (vertices float64)."""
  num_vertices, num_faces = int(state.num_vertices), int(state.num_faces)
  return Mesh(np.asarray(state.rest_vertices, np.float64)[:num_vertices],
              np.asarray(state.faces, np.int32)[:num_faces])


@functools.partial(jax.jit, static_argnums=0)
def init_module(module: nn.Module, key: jax.Array, *inputs: jax.Array) -> dict[str, Any]:
  """A flax module's fresh variables, jitted: eagerly, a hash grid's and an MLP's initialisers are hundreds
  of small programs (3 s on CPU for the dynamic field, 1 s once compiled here)."""
  return module.init(key, *inputs)


class Run:
  """Host-side holder of one run's inputs and model (built once per process)."""

  def __init__(self, config: ml_collections.ConfigDict, inputs: pipeline.RunInputs):
    self.config = config
    self.inputs = inputs
    self.bank = inputs.bank
    if self.bank.num_frames % config.train.frames_per_step:
      raise configuration.ConfigError(
          f'train.frames_per_step = {config.train.frames_per_step} does not divide the {self.bank.num_frames} '
          f'training frames. Fix: use a divisor of {self.bank.num_frames} (1 is the paper\'s setting).')
    self.model = pipeline.make_model(config, self.bank.resolution)
    self.optimizer_settings = optimizers.GeometryOptimizer.from_config(config.train)
    self.use_depth = self.bank.has_depth and (config.loss.depth_weight > 0 or config.loss.depth_correlation_weight > 0)
    if not self.use_depth:
      logging.info('Depth terms off (no depth maps in the sequence, or loss.depth_weight and '
                   'loss.depth_correlation_weight both 0).')

  def fit_constants(self) -> Constants:
    """Host: pose PCA over the training poses and field bounds from the skinned template."""
    bank, config = self.bank, self.config
    pca = geometry.fit_pose_pca(bank.pose, config.geometry.pose_components)
    codes = np.asarray(geometry.pose_code(pca, jnp.asarray(bank.pose)))
    posed = self.template_skinned()
    bounds = geometry.fit_field_bounds(posed, codes, margin=config.geometry.field_bounds_margin)
    return Constants(pca, bounds)

  def template_skinned(self) -> np.ndarray:
    """Host: the template skinned to every training frame, float32 [T, V, 3] (no deformation: the
    LBS-only baseline of evaluation, and the extent of the field's inputs)."""
    vertices = self.inputs.template_vertices
    weights = pipeline.skinning_weights(vertices, self.inputs.template_faces, self.inputs, self.config)
    posed = body.lbs_frames(jnp.asarray(vertices, jnp.float32), jnp.asarray(weights, jnp.float32),
                            jnp.asarray(self.bank.transforms))
    return np.asarray(posed)

  @property
  def steps_per_epoch(self) -> int:
    """Geometry steps in an epoch (every training frame once, train.frames_per_step a step)."""
    return self.bank.num_frames // self.config.train.frames_per_step

  def epoch_of(self, step: int) -> int:
    """Host: the geometry epoch that step `step` (0-based) trains in."""
    return step // self.steps_per_epoch

  def last_epoch(self, state: GeometryState) -> int:
    """Host: the epoch of the state's last step (-1 before any): the blend weight and J^D it was trained with,
    hence the garment it gives (previews, evaluation, export)."""
    return self.epoch_of(int(state.step) - 1)

  def pose_codes(self, constants: Constants) -> np.ndarray:
    """Host: the geometry pose code of every training frame, float32 [T, P]."""
    return np.asarray(geometry.pose_code(constants.pose_pca, jnp.asarray(self.bank.pose)), np.float32)

  def mesh_for(self, rest_vertices: np.ndarray, faces: np.ndarray) -> model_lib.GarmentMesh:
    return pipeline.build_mesh(rest_vertices, faces, self.inputs, self.config)

  def init_state(self, constants: Constants, key: jax.Array) -> tuple[GeometryState, model_lib.GarmentMesh]:
    """Fresh geometry state on the template: J^S = the template's Jacobians (displacement baseline:
    zero offsets [Vc, 3]), a new network (and a grey cloth colour field where the photometric term is on)."""
    mesh = self.mesh_for(self.inputs.template_vertices, self.inputs.template_faces)
    ops = mesh.operators
    face_capacity, vertex_capacity = ops.faces.shape[0], ops.rest_vertices.shape[0]
    centres = jnp.zeros((face_capacity, 3))
    pose_code = jnp.zeros((constants.pose_pca.components.shape[0],))
    field_params = init_module(self.model.field, key, centres, centres, pose_code)
    params = {'static': self.model.init_static(ops), 'dynamic': field_params}
    if self.model.colour_field is not None:
      params['colour'] = init_module(self.model.colour_field, jax.random.fold_in(key, 1), jnp.zeros((1, 3)))
    state = GeometryState(
        step=jnp.int32(0),
        params=params,
        opt_state=optimizers.geometry_optimizer(self.optimizer_settings).init(params),
        rest_vertices=jnp.copy(ops.rest_vertices),  # Copies: the step donates the state, not the mesh.
        faces=jnp.copy(ops.faces),
        num_vertices=jnp.int32(len(self.inputs.template_vertices)),
        num_faces=jnp.int32(len(self.inputs.template_faces)),
        scores=remesh.init_accumulator(face_capacity),
        blend_target=None,
        blend_start_epoch=jnp.int32(NO_BLEND_EPOCH),
        solutions=(jnp.broadcast_to(ops.rest_vertices, (self.bank.num_frames, vertex_capacity, 3))
                   if self.model.warm_starts else None),
    )
    return state, mesh

  def mesh_of_state(self, state: GeometryState) -> model_lib.GarmentMesh:
    """Host: rebuilds the mesh-derived arrays of a (restored or remeshed) state."""
    return self.mesh_for(*unpadded_template(state))

  @property
  def frames_resident(self) -> bool:
    """Whether all training frames stay on the device (train.device_frames_max_gb); otherwise each
    step receives its own frames, put one step ahead."""
    bank = self.bank
    size = sum(array.nbytes for array in (bank.target, self._step_rgb(), bank.mask, bank.hands, bank.depth,
                                          bank.body_depth))
    return size <= self.config.train.device_frames_max_gb * 1e9

  def _step_rgb(self) -> np.ndarray:
    """Host: the frames' colours as the step reads them: all of them for the photometric term, else none."""
    rgb = self.bank.rgb
    return rgb if self.model.colour_field is not None else rgb[:, :0, :0]

  def training_frames(self, ts: np.ndarray | None = None) -> TrainingFrames:
    """Host: the images and cameras of all training frames, or of frames `ts` (numpy)."""
    bank = self.bank
    frames = TrainingFrames(bank.target, self._step_rgb(), bank.mask, bank.hands, bank.depth, bank.body_depth,
                            bank.body_points, bank.body_normals, bank.transforms, bank.world_to_clip,
                            bank.world_to_camera)
    return frames if ts is None else jax.tree.map(lambda values: values[ts], frames)

  def batch(self, ts: np.ndarray, step: int, blend: float, pose_codes: np.ndarray,
            slots: np.ndarray | None = None) -> StepBatch:
    """Host: the batch of training frames `ts` (int [B]) at global step `step` (numpy only).

    `blend` is blend_weight at the step's epoch; `pose_codes` is pose_codes(constants); `slots`
    index the frames the step receives (default: ts, all frames on the device).
    """
    config = self.config
    ts = np.asarray(ts, np.int32).reshape(-1)
    noise = config.train.vertex_noise_std * max(0.0, 1.0 - step / max(config.train.vertex_noise_steps, 1))
    codes = pose_codes[ts]
    if config.train.pose_noise_std > 0:
      codes = codes + config.train.pose_noise_std * np.random.default_rng([config.seed, 2, step]).normal(
          size=codes.shape)
    slots = ts if slots is None else np.asarray(slots, np.int32)
    return StepBatch(t=ts, slot=slots, pose_code=codes.astype(np.float32), blend_weight=np.float32(blend),
                     vertex_noise_std=np.float32(noise), seed=np.int32(config.seed), step=np.int32(step))


@functools.partial(jax.jit, static_argnames=('model', 'dynamic'))
def deform_frame(model: model_lib.GarmentModel, params: dict[str, Any], bounds: geometry.FieldBounds,
                 mesh: model_lib.GarmentMesh, frame: model_lib.FrameInputs, blend_target: Array | None,
                 network_weight: Float[Array, ''], dynamic: bool) -> model_lib.Deformation:
  """The deformation of one frame with the state's parameters (no gradient, jitted once per shape)."""
  return model.deform(params, bounds, mesh, frame, dynamic=dynamic, blend_target=blend_target,
                      blend_weight=network_weight)


@functools.partial(jax.jit, static_argnames=('model',))
def render_frame(model: model_lib.GarmentModel, mesh: model_lib.GarmentMesh, posed: Float[Array, 'Vc 3'],
                 frame: model_lib.FrameInputs) -> render.GarmentRender:
  return model.render(mesh, posed, frame)


def deform_all_frames(run: Run, state: GeometryState, mesh: model_lib.GarmentMesh, constants: Constants,
                      epoch: int, dynamic: bool) -> model_lib.Deformation:
  """Host loop over the training frames at `epoch`: the Deformation of each, stacked (numpy, padded)."""
  codes = run.pose_codes(constants)
  blend = np.float32(blend_weight(run.config, epoch, int(state.blend_start_epoch)))
  out = []
  for t in range(run.bank.num_frames):
    frame = pipeline.frame_inputs(run.bank, t, codes[t])
    out.append(jax.device_get(deform_frame(run.model, state.params, constants.field_bounds, mesh, frame,
                                           frame_blend_target(state, t), blend, dynamic)))
  return jax.tree.map(lambda *frames: np.stack(frames), *out)


def posed_frames(run: Run, result: GeometryResult) -> Mesh:
  """Host loop: the posed garment of every training frame as the state's last step made it (vertices float32
  [T, V, 3])."""
  vertices, faces = unpadded_template(result.state)
  epoch = run.last_epoch(result.state)
  dynamic = epoch >= run.config.train.warmup_epochs
  posed = deform_all_frames(run, result.state, result.mesh, result.constants, epoch, dynamic).posed
  return Mesh(posed[:, : len(vertices)], faces)


def canonical_mesh(run: Run, result: GeometryResult) -> Mesh:
  """Host: the J^S-only (displacement baseline: static offsets only) canonical garment (rest space), unpadded."""
  vertices, faces = unpadded_template(result.state)
  canonical = run.model.static_canonical(result.mesh, result.state.params['static'])
  return Mesh(np.asarray(canonical)[: len(vertices)], faces)
