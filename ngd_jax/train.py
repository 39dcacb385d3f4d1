"""Geometry training: the state, the pure step and the loop (METHOD.md sections 4-6).

train_and_evaluate is the table of contents of a run:
  1. read the sequence and template, fit the pose code and field bounds (pipeline, host);
  2. restore the latest checkpoint of the workdir, or initialise;
  3. geometry epochs (warm-up on J^S, then J^S + f_G), remeshing at the configured epochs;
  4. appearance epochs (texturing.py) on the frozen geometry;
  5. evaluation (evaluate.py), metrics.json.

Resume order: the checkpoint's meta says the phase; its state holds the step (and so the epoch
and the position inside the epoch's permutation), parameters, optimiser state, the current
(remeshed) template and the epoch's remesh score accumulator. Frame order and every random draw
are functions of (seed, step), so a resumed run replays exactly what an uninterrupted one does.
"""

import functools
import logging
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ngd_jax import body
from ngd_jax import compiles
from ngd_jax import checkpoint as checkpoint_lib
from ngd_jax import data
from ngd_jax import errors
from ngd_jax import geometry
from ngd_jax import losses
from ngd_jax import model as model_lib
from ngd_jax import pipeline
from ngd_jax import remesh
from ngd_jax import render
from ngd_jax import reporting
from ngd_jax import workdir as workdir_lib


class Constants(NamedTuple):
  """Fitted once from the training frames and saved with the run, so evaluation reproduces them."""

  pose_pca: geometry.PosePCA  # Geometry pose code (config.geometry.pose_components).
  field_bounds: geometry.FieldBounds  # Normalisation of the dynamic field's inputs.


class GeometryState(NamedTuple):
  """Everything the geometry phase needs to continue; what orbax saves (mesh arrays padded)."""

  step: jax.Array  # int32 [], steps done (one frame per step).
  params: dict[str, Any]  # {'static': J^S [Fc, 3, 3] (displacement: offsets [Vc, 3]), 'dynamic': field variables}.
  opt_state: Any
  rest_vertices: jax.Array  # float32 [Vc, 3], current template (after remeshes), padded.
  faces: jax.Array  # int32 [Fc, 3], padded with (0, 0, 0).
  num_vertices: jax.Array  # int32 [].
  num_faces: jax.Array  # int32 [].
  scores: remesh.FaceScoreAccumulator  # Remesh face scores of the current epoch.
  blend_target: jax.Array  # float32 [T, Fc, 3, 3], old J^D per frame after a remesh ([T, Vc, 3]: displacement).
  blend_start_epoch: jax.Array  # int32 [], epoch of the last remesh (-2^30 before any).
  solutions: jax.Array  # float32 [T, Vc, 3], last canonical solution per frame (CG warm start).


class StepBatch(NamedTuple):
  """One training frame on device."""

  t: jax.Array  # int32 [], index of the frame in the bank.
  frame: model_lib.FrameInputs
  target: jax.Array  # [H, W, C], losses.target_image
  mask: jax.Array  # [H, W]
  hands: jax.Array  # [H, W]
  depth: jax.Array  # [H, W]
  blend_weight: jax.Array  # float32 [], weight of the network J^D (1 outside blending).
  vertex_noise_std: jax.Array  # float32 [].
  seed: jax.Array  # int32 [], config.seed.
  step: jax.Array  # int32 [], global step: the step's random draws are keyed by (seed, step).


_NO_BLEND_EPOCH = -(2**30)  # blend_start_epoch before any remesh: J^D is the network's alone.


def log_linear(start: float, end: float, steps: int) -> optax.Schedule:
  """start -> end geometrically over `steps`, then constant at end (METHOD.md section 5)."""
  return optax.exponential_decay(start, transition_steps=steps, decay_rate=end / start, end_value=end)


def geometry_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam (eps 1e-15) on J^S with norm clipping, and on the network, each with its own decay."""
  static = optax.chain(
      optax.clip_by_global_norm(train_config.static_clip_norm),
      optax.adam(
          log_linear(train_config.static_lr, train_config.static_lr_end, train_config.static_lr_steps),
          eps=train_config.adam_eps,
      ),
  )
  network = optax.adam(
      log_linear(train_config.network_lr, train_config.network_lr_end, train_config.network_lr_steps),
      eps=train_config.adam_eps,
  )
  labels = lambda params: {'static': 'static', 'dynamic': jax.tree.map(lambda _: 'dynamic', params['dynamic'])}
  return optax.multi_transform({'static': static, 'dynamic': network}, labels)


def render_weights(loss_config: ml_collections.ConfigDict) -> losses.RenderLossWeights:
  return losses.RenderLossWeights(
      render=loss_config.render_weight,
      huber=loss_config.huber_weight,
      huber_delta=loss_config.huber_delta,
      ssim=loss_config.ssim_weight,
      mask=loss_config.mask_weight,
  )


def visible_faces(rast: jax.Array, face_capacity: int) -> jax.Array:
  """float32 [Fc]: 1 for faces that own at least one pixel of the frame."""
  ids = rast[..., 3].reshape(-1).astype(jnp.int32) - 1
  ids = jnp.where(ids >= 0, ids, face_capacity)
  return (jax.ops.segment_sum(jnp.ones_like(ids), ids, num_segments=face_capacity) > 0).astype(jnp.float32)


def frame_losses(
    out: render.GarmentRender,
    deformation: model_lib.Deformation,
    image_probe: jax.Array,
    batch: StepBatch,
    mesh: model_lib.GarmentMesh,
    pairs: tuple[jax.Array, jax.Array, jax.Array],
    *,
    loss_config: ml_collections.FrozenConfigDict,
    dynamic: bool,
    use_depth: bool,
) -> dict[str, jax.Array]:
  """The weighted loss terms of one frame (METHOD.md section 4, plus the priors of configs/default.py).

  `image_probe` (zeros shaped like batch.target) is added to the supervised image so that the
  gradient w.r.t. it is the remesh face score's input.
  """
  image = losses.supervised_image(out.diffuse, out.normal, loss_config.supervision) + image_probe
  terms = losses.render_loss(image, out.alpha[..., 0], batch.target, batch.mask, batch.hands,
                             render_weights(loss_config))
  jacobians = deformation.jacobians
  face_weight = mesh.operators.face_mask.astype(jnp.float32)
  if dynamic and loss_config.jacobian_visible_only:
    face_weight = face_weight * visible_faces(out.rast, face_weight.shape[0])
  terms['jacobian'] = loss_config.jacobian_weight * losses.jacobian_loss(
      jacobians, face_weight, jnp.sum(mesh.operators.face_mask))
  if loss_config.smoothness_weight > 0:
    terms['smoothness'] = loss_config.smoothness_weight * losses.stretch_smoothness_loss(jacobians, mesh.face_pairs)
  if mesh.body_distance is not None:
    distance = body.signed_distance(mesh.body_distance, deformation.canonical)
    terms['penetration'] = loss_config.penetration_weight * losses.penetration_loss(
        distance, mesh.operators.vertex_mask, loss_config.penetration_margin)
  if use_depth:
    terms['depth'] = loss_config.depth_weight * losses.depth_ranking_loss(
        out.depth[..., 0], batch.depth, pairs, loss_config.depth_margin)
  return terms


def geometry_step(
    state: GeometryState,
    mesh: model_lib.GarmentMesh,
    constants: Constants,
    batch: StepBatch,
    *,
    model: model_lib.GarmentModel,
    train_config: ml_collections.FrozenConfigDict,
    loss_config: ml_collections.FrozenConfigDict,
    dynamic: bool,
    use_depth: bool,
) -> tuple[GeometryState, dict[str, jax.Array]]:
  """One frame: deform, render, losses, Adam update, remesh scores. Pure; jitted as jit_geometry_step.

  The keyword arguments are static (hashable). `dynamic` is False during warm-up: J^D = 0 and
  every face counts in the Jacobian term.
  The gradient of the render loss w.r.t. the rendered diffuse image (the remesh face score,
  METHOD.md section 6) comes out of the same backward pass through a zero `diffuse_probe`.
  """
  face_capacity = mesh.operators.faces.shape[0]
  key_noise, key_pairs = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(batch.seed), batch.step))
  pairs = losses.sample_depth_pairs(
      key_pairs, batch.mask, loss_config.depth_pairs, loss_config.depth_box, loss_config.depth_pairs_in_mask
  )
  x0 = state.solutions[batch.t]

  def loss_fn(params, image_probe):
    deformation = model.deform(
        params,
        constants.field_bounds,
        mesh,
        batch.frame,
        dynamic=dynamic,
        blend_target=state.blend_target[batch.t],
        blend_weight=batch.blend_weight,
        x0=x0,
    )
    noise = batch.vertex_noise_std * jax.random.normal(key_noise, deformation.posed.shape)
    out = model.render(mesh, deformation.posed + noise, batch.frame)
    terms = frame_losses(out, deformation, image_probe, batch, mesh, pairs,
                         loss_config=loss_config, dynamic=dynamic, use_depth=use_depth)
    total = sum(terms.values())
    return total, (terms, out.rast, deformation.canonical)

  probe = jnp.zeros_like(batch.target)
  (total, (terms, rast, canonical)), (grads, grad_image) = jax.value_and_grad(
      loss_fn, argnums=(0, 1), has_aux=True
  )(state.params, probe)
  updates, opt_state = geometry_optimizer(train_config).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  stats = remesh.frame_face_stats(grad_image, batch.mask[..., None], rast, face_capacity)
  new_state = state._replace(
      step=state.step + 1,
      params=params,
      opt_state=opt_state,
      scores=remesh.accumulate(state.scores, stats),
      solutions=state.solutions.at[batch.t].set(jax.lax.stop_gradient(canonical)),
  )
  metrics = dict(terms, total=total, static_grad_norm=optax.tree.norm(grads['static']))
  return new_state, metrics


# Compiles are counted and logged; one compile per (capacity bucket, warm-up or not) and, being
# module level, shared by every Run of a process with the same configuration.
TRACES = compiles.TraceCounter()
jit_geometry_step = jax.jit(
    TRACES.wrap(geometry_step, 'geometry_step'),
    static_argnames=('model', 'train_config', 'loss_config', 'dynamic', 'use_depth'),
)


class Run:
  """Host-side holder of one run's inputs, model and compiled steps (built once per process)."""

  def __init__(self, config: ml_collections.ConfigDict, inputs: pipeline.RunInputs):
    self.config = config
    self.inputs = inputs
    self.bank = inputs.bank
    self.model = pipeline.make_model(config, self.bank.resolution)
    self.frozen = ml_collections.FrozenConfigDict(config)
    self.optimizer = geometry_optimizer(self.frozen.train)
    self.use_depth = self.bank.has_depth and config.loss.depth_weight > 0
    if not self.use_depth:
      logging.info('Depth ordering loss off (no depth maps in the sequence, or loss.depth_weight = 0).')

  def step(self, state: GeometryState, mesh: model_lib.GarmentMesh, constants: Constants, batch: StepBatch,
           dynamic: bool) -> tuple[GeometryState, dict[str, jax.Array]]:
    """Runs the compiled geometry step (warm-up variant when not `dynamic`)."""
    return jit_geometry_step(
        state, mesh, constants, batch, model=self.model, train_config=self.frozen.train,
        loss_config=self.frozen.loss, dynamic=dynamic, use_depth=self.use_depth)

  def fit_constants(self) -> Constants:
    """Host: pose PCA over the training poses and field bounds from the skinned template."""
    bank, config = self.bank, self.config
    pca = geometry.fit_pose_pca(bank.pose, config.geometry.pose_components)
    codes = np.asarray(geometry.pose_code(pca, jnp.asarray(bank.pose)))
    mesh = self.mesh_for(self.inputs.template_vertices, self.inputs.template_faces)
    posed = body.lbs_frames(mesh.operators.rest_vertices, mesh.skinning_weights, jnp.asarray(bank.transforms))
    bounds = geometry.fit_field_bounds(np.asarray(posed), codes, margin=config.geometry.field_bounds_margin)
    return Constants(pca, bounds)

  def mesh_for(self, rest_vertices: np.ndarray, faces: np.ndarray) -> model_lib.GarmentMesh:
    return pipeline.build_mesh(rest_vertices, faces, self.inputs, self.config)

  def init_state(self, constants: Constants, key: jax.Array) -> tuple[GeometryState, model_lib.GarmentMesh]:
    """Fresh geometry state on the template: J^S = the template's Jacobians (displacement baseline:
    zero offsets [Vc, 3]), a new network."""
    mesh = self.mesh_for(self.inputs.template_vertices, self.inputs.template_faces)
    ops = mesh.operators
    face_capacity, vertex_capacity = ops.faces.shape[0], ops.rest_vertices.shape[0]
    centres = jnp.zeros((face_capacity, 3))
    pose_code = jnp.zeros((constants.pose_pca.components.shape[0],))
    field_params = self.model.field.init(key, centres, centres, pose_code)
    params = {'static': self.model.init_static(ops), 'dynamic': field_params}
    num_frames = self.bank.num_frames
    state = GeometryState(
        step=jnp.int32(0),
        params=params,
        opt_state=self.optimizer.init(params),
        rest_vertices=ops.rest_vertices,
        faces=ops.faces,
        num_vertices=jnp.int32(len(self.inputs.template_vertices)),
        num_faces=jnp.int32(len(self.inputs.template_faces)),
        scores=remesh.init_accumulator(face_capacity),
        blend_target=jnp.zeros((num_frames,) + params['static'].shape, jnp.float32),  # Per-frame J^D (or offsets).
        blend_start_epoch=jnp.int32(_NO_BLEND_EPOCH),
        solutions=jnp.broadcast_to(ops.rest_vertices, (num_frames, vertex_capacity, 3)),
    )
    return state, mesh

  def mesh_of_state(self, state: GeometryState) -> model_lib.GarmentMesh:
    """Host: rebuilds the mesh-derived arrays of a (restored or remeshed) state."""
    vertices, faces = unpadded_template(state)
    return self.mesh_for(vertices, faces)

  def batch(self, state: GeometryState, constants: Constants, t: int, step: int, epoch: int) -> StepBatch:
    """Host: the batch of training frame t at global step `step` (numpy only: no eager device ops)."""
    bank, config = self.bank, self.config
    since_remesh = epoch - int(state.blend_start_epoch)
    blend = float(remesh.blend_weight(since_remesh, config.remesh.blend_epochs)) if since_remesh >= 0 else 1.0
    noise = config.train.vertex_noise_std * max(0.0, 1.0 - step / max(config.train.vertex_noise_steps, 1))
    pca = constants.pose_pca
    code = (bank.pose[t] - np.asarray(pca.mean)) @ np.asarray(pca.components).T
    if config.train.pose_noise_std > 0:
      code = code + config.train.pose_noise_std * np.random.default_rng([config.seed, 2, step]).normal(size=code.shape)
    return StepBatch(
        t=np.int32(t),
        frame=pipeline.frame_inputs(bank, t, code.astype(np.float32)),
        target=bank.target[t],
        mask=bank.mask[t].astype(np.float32),
        hands=bank.hands[t].astype(np.float32),
        depth=bank.depth[t],
        blend_weight=np.float32(blend),
        vertex_noise_std=np.float32(noise),
        seed=np.int32(config.seed),
        step=np.int32(step),
    )


def unpadded_template(state: GeometryState) -> tuple[np.ndarray, np.ndarray]:
  """Host: the real rows of the state's template."""
  num_vertices, num_faces = int(state.num_vertices), int(state.num_faces)
  return (
      np.asarray(state.rest_vertices, np.float64)[:num_vertices],
      np.asarray(state.faces, np.int32)[:num_faces],
  )


def epoch_order(seed: int, epoch: int, num_frames: int, phase: int = 0) -> np.ndarray:
  """The shuffled frame order of an epoch, a function of (seed, phase, epoch) only (exact resume)."""
  return np.random.default_rng([seed, phase, epoch]).permutation(num_frames)


@functools.partial(jax.jit, static_argnames=('model', 'dynamic'))
def deform_frame(model: model_lib.GarmentModel, params, bounds, mesh, frame, blend_target, blend_weight,
                 dynamic: bool) -> model_lib.Deformation:
  """The deformation of one frame with the state's parameters (no gradient, jitted once per shape)."""
  return model.deform(params, bounds, mesh, frame, dynamic=dynamic, blend_target=blend_target,
                      blend_weight=blend_weight)


def deform_all_frames(run: Run, state: GeometryState, mesh: model_lib.GarmentMesh, constants: Constants,
                      epoch: int, dynamic: bool) -> model_lib.Deformation:
  """Host loop over the training frames at `epoch`: the Deformation of each, stacked (numpy, padded)."""
  out = []
  for t in range(run.bank.num_frames):
    batch = run.batch(state, constants, t, int(state.step), epoch)
    out.append(jax.device_get(deform_frame(run.model, state.params, constants.field_bounds, mesh, batch.frame,
                                           state.blend_target[t], batch.blend_weight, dynamic)))
  return jax.tree.map(lambda *frames: np.stack(frames), *out)


def remesh_state(run: Run, state: GeometryState, mesh: model_lib.GarmentMesh, constants: Constants,
                 remesh_index: int, epoch: int, reporter: reporting.Reporter
                 ) -> tuple[GeometryState, model_lib.GarmentMesh]:
  """Host: refine the template where the epoch's face scores are high, and carry the state over.

  METHOD.md section 6: J^S by inverse-distance blend of the 3 nearest old faces, Adam moments of
  J^S from the nearest old face, skinning weights and the Poisson system rebuilt, and the old
  per-frame J^D kept as the blend target for the next remesh.blend_epochs epochs. The displacement
  baseline carries its offsets, their Adam moments and the per-frame dynamic offsets to a split's
  midpoint as the mean of its two parent vertices.
  """
  config = run.config.remesh
  num_remeshes = len(config.epochs)
  old_vertices, old_faces = unpadded_template(state)
  scores = remesh.face_scores(state.scores, len(old_faces))
  selected = remesh.select_faces(scores, remesh.quantile_schedule(remesh_index, config.quantile, config.quantile_step))
  threshold = remesh.threshold_schedule(remesh_index, num_remeshes, config.min_edge_start, config.min_edge_end)
  result = remesh.refine_mesh(old_vertices, old_faces, selected, threshold)
  # The state keeps float32 rest vertices; build from the same values a resumed run will see.
  result = result._replace(vertices=result.vertices.astype(np.float32).astype(np.float64))
  dynamic_on = epoch >= run.config.train.warmup_epochs
  old_dynamic = deform_all_frames(run, state, mesh, constants, epoch, True).dynamic if dynamic_on else None
  new_mesh = run.mesh_for(result.vertices, result.faces)
  face_capacity = new_mesh.operators.faces.shape[0]
  vertex_capacity = new_mesh.operators.rest_vertices.shape[0]
  correspondence = remesh.face_correspondence(old_vertices, old_faces, result.vertices, result.faces)
  old_face_capacity = state.faces.shape[0]
  opt_state = jax.device_get(state.opt_state)
  inner = dict(opt_state.inner_states)
  if run.model.parameterization == 'displacement':
    move = functools.partial(remesh.transfer_vertex_leaves, vertex_parent=result.vertex_parent,
                             num_old_vertices=len(old_vertices), vertex_dim=state.rest_vertices.shape[0],
                             vertex_capacity=vertex_capacity)
    static = move(np.asarray(state.params['static']))
    inner['static'] = move(inner['static'])
    blend_target = np.zeros((run.bank.num_frames, vertex_capacity, 3), np.float32)
    if old_dynamic is not None:
      blend_target[:, : len(result.vertices)] = remesh.parent_means(
          old_dynamic[:, : len(old_vertices)], result.vertex_parent, axis=1)
  else:
    static = remesh.transfer_face_leaves(
        np.asarray(state.params['static']), correspondence, old_face_capacity, 'blend', face_capacity)
    inner['static'] = remesh.transfer_face_leaves(inner['static'], correspondence, old_face_capacity, 'nearest',
                                                  face_capacity)
    blend_target = np.zeros((run.bank.num_frames, face_capacity, 3, 3), np.float32)
    if old_dynamic is not None:
      blend_target[:, : len(result.faces)] = remesh.blend_faces(
          old_dynamic[:, : len(old_faces)], correspondence, axis=1)
  opt_state = opt_state._replace(inner_states=inner)
  old_solutions = np.asarray(state.solutions)[:, : len(old_vertices)]
  midpoints = old_solutions[:, result.vertex_parent].mean(axis=2)
  solutions = np.concatenate(
      [midpoints, np.repeat(midpoints[:, :1], vertex_capacity - len(result.vertices), axis=1)], axis=1)
  new_state = state._replace(
      params=dict(state.params, static=jnp.asarray(static)),
      opt_state=jax.tree.map(jnp.asarray, opt_state),
      rest_vertices=new_mesh.operators.rest_vertices,
      faces=new_mesh.operators.faces,
      num_vertices=jnp.int32(len(result.vertices)),
      num_faces=jnp.int32(len(result.faces)),
      scores=remesh.init_accumulator(face_capacity),
      blend_target=jnp.asarray(blend_target, jnp.float32),
      blend_start_epoch=jnp.int32(epoch if dynamic_on else _NO_BLEND_EPOCH),
      solutions=jnp.asarray(solutions, jnp.float32),
  )
  reporter.write(f'Remesh {remesh_index + 1}/{num_remeshes} after epoch {epoch}: {result.report}')
  return new_state, new_mesh


class GeometryResult(NamedTuple):
  constants: Constants
  state: GeometryState
  mesh: model_lib.GarmentMesh
  meta: dict[str, Any]


class Restored(NamedTuple):
  """The latest checkpoint of a workdir, split by phase (appearance is None before that phase)."""

  constants: Constants
  geometry: GeometryState
  appearance: Any
  meta: dict[str, Any]


def restore_run(run: Run, checkpointer: checkpoint_lib.Checkpointer, step: int | None = None) -> Restored | None:
  """Host: restores checkpoint `step` (default latest) of the workdir, or None if there is none.

  The meta item says which phase wrote it, hence which items the state holds.
  """
  from ngd_jax import texturing  # pylint: disable=g-import-not-at-top

  workdir_lib.check(run.config, run.inputs.sequence.path, os.path.dirname(checkpointer.directory))

  def template_of(meta: dict[str, Any]) -> dict[str, Any]:
    constants = run.fit_constants()
    state, _ = run.init_state(constants, jax.random.PRNGKey(0))
    template = {'constants': constants, 'geometry': state}
    has_appearance = meta['phase'] in ('appearance', 'done') and meta.get('appearance_started', False)
    if has_appearance:
      template['appearance'] = texturing.state_template(run.config, run.bank.pose)
    return template

  restored = checkpointer.restore_latest(template_of, step)  # Skips unreadable checkpoints when step is None.
  if restored is None:
    return None
  return Restored(restored.state['constants'], restored.state['geometry'],
                  restored.state.get('appearance'), restored.meta)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Trains geometry then appearance (resuming from workdir), evaluates, writes metrics.json."""
  from ngd_jax import evaluate  # pylint: disable=g-import-not-at-top
  from ngd_jax import texturing  # pylint: disable=g-import-not-at-top

  # Nothing in the workdir is written before the inputs are validated (the sequence as it is read,
  # its cameras against the skinned template here) and the workdir's record matches this run.
  run = Run(config, pipeline.load_inputs(config))
  data.check_in_view(run.inputs.sequence, run.bank.indices, evaluate.lbs_baseline(run), run.bank.mask,
                     run.bank.world_to_clip)
  workdir_lib.check(config, run.inputs.sequence.path, workdir)
  workdir_lib.record(config, run.inputs.sequence.path, workdir)
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.train.keep_checkpoints)
  reporter = reporting.Reporter(f'{workdir}/tensorboard')
  try:
    restored = restore_run(run, checkpointer)
    if restored is not None:
      reporter.write(f'Resumed from checkpoint {checkpointer.latest_step()} ({restored.meta["phase"]} phase).')
    geometry_result = train_geometry(run, checkpointer, reporter, restored)
    if config.appearance.enabled:
      texturing.train_appearance(run, geometry_result, checkpointer, reporter,
                                 restored.appearance if restored is not None else None)
  finally:
    reporter.close()
    checkpointer.close()
  evaluate.evaluate_run(config, workdir)


def train_geometry(run: Run, checkpointer: checkpoint_lib.Checkpointer, reporter: reporting.Reporter,
                   restored: Restored | None) -> GeometryResult:
  """The geometry epochs, continuing `restored` if given."""
  config, bank = run.config, run.bank
  num_frames = bank.num_frames
  total_steps = config.train.num_epochs * num_frames
  if restored is None:
    constants = run.fit_constants()
    state, mesh = run.init_state(constants, jax.random.PRNGKey(config.seed))
    meta = {'phase': 'geometry', 'remeshes': 0, 'wall_seconds': 0.0}
  else:
    constants, state, meta = restored.constants, restored.geometry, dict(restored.meta)
    mesh = run.mesh_of_state(state)
  if meta['phase'] != 'geometry':
    return GeometryResult(constants, state, mesh, meta)

  remesh_epochs = tuple(config.remesh.epochs) if config.remesh.enabled else ()
  step = int(state.step)
  reporter.start_phase('geometry', total_steps, step)
  started = time.time()
  wall_before = meta['wall_seconds']

  def save(state):
    meta.update(wall_seconds=wall_before + time.time() - started, faces=int(state.num_faces))
    checkpointer.save(int(state.step), {'constants': constants, 'geometry': state}, meta)

  while step < total_steps:
    epoch, position = divmod(step, num_frames)
    if position == 0:
      state = state._replace(scores=remesh.init_accumulator(state.faces.shape[0]))
    t = int(epoch_order(config.seed, epoch, num_frames)[position])
    batch = run.batch(state, constants, t, step, epoch)
    dynamic = epoch >= config.train.warmup_epochs
    state, metrics = run.step(state, mesh, constants, batch, dynamic)
    metrics = jax.device_get(metrics)
    check_finite(metrics, step, checkpointer, config.train.log_every_steps)
    step += 1
    reporter.advance()
    if step % config.train.log_every_steps == 0 or step == total_steps:
      reporter.scalars(step, dict(metrics, faces=int(state.num_faces), epoch=epoch), 'geometry')
    if step % config.train.image_every_steps == 0:
      reporter.image(step, 'geometry/target_vs_render', preview(run, state, mesh, constants, t))
    completed = step // num_frames
    if step % num_frames == 0 and completed in remesh_epochs and meta['remeshes'] <= remesh_epochs.index(completed):
      state, mesh = remesh_state(run, state, mesh, constants, remesh_epochs.index(completed), completed, reporter)
      meta['remeshes'] += 1
      save(state)
    elif step % config.train.checkpoint_every_steps == 0 and step < total_steps:  # The last step: saved below.
      save(state)
  meta['phase'] = 'appearance' if config.appearance.enabled else 'done'
  save(state)
  reporter.write(f'Geometry done: {int(state.num_faces)} faces; compiles: {TRACES.counts}')
  return GeometryResult(constants, state, mesh, meta)


class NonFiniteLossError(errors.UserError, FloatingPointError):
  """A loss term became NaN or inf (learning rates too high, or bad input frames)."""


def check_finite(metrics: dict[str, Any], step: int, checkpointer: checkpoint_lib.Checkpointer,
                 interval: int) -> None:
  """Stops the run on a non-finite loss term, naming it and the last sound checkpoint.

  `step` counts as checkpoints do (appearance steps after the geometry steps). A checkpoint is sound
  when the loss stayed finite for `interval` (the logging interval) steps after it: the one written
  just before the failing step may already hold the update that diverged.
  """
  bad = [name for name, value in metrics.items() if not np.all(np.isfinite(value))]
  if not bad:
    return
  fix = ('lower the learning rates (--config.train.static_lr, --config.train.network_lr, --config.appearance.lr) '
         'or check the input frames')
  sound = [s for s in checkpointer.all_steps() if s + interval <= step]
  if not sound:
    raise NonFiniteLossError(
        f'Non-finite loss term(s) {bad} at step {step}; no kept checkpoint in {checkpointer.directory} is followed '
        f'by {interval} finite steps. Fix: {fix}, and start again with a new --workdir.')
  later = [s for s in checkpointer.all_steps() if s > sound[-1]]
  raise NonFiniteLossError(
      f'Non-finite loss term(s) {bad} at step {step}. Checkpoint {sound[-1]} is sound (the loss stayed finite for '
      f'{interval} steps after it)' + (f'; later ones {later} may hold diverged parameters' if later else '') +
      f'. Fix: {fix}, and restart from checkpoint {sound[-1]} in a new workdir: mkdir -p NEW/checkpoints && '
      f'cp -r {checkpointer.directory}/{sound[-1]} NEW/checkpoints/, then run again with --workdir=NEW.')


def preview(run: Run, state: GeometryState, mesh: model_lib.GarmentMesh, constants: Constants, t: int) -> np.ndarray:
  """Host: target | rendered | error of the supervised image, [H, 3W, C] in [0, 1], for TensorBoard."""
  batch = run.batch(state, constants, t, int(state.step), int(state.step) // run.bank.num_frames)
  dynamic = int(state.step) // run.bank.num_frames >= run.config.train.warmup_epochs
  deformation = deform_frame(run.model, state.params, constants.field_bounds, mesh, batch.frame,
                             state.blend_target[t], batch.blend_weight, dynamic)
  out = render_frame(run.model, mesh, deformation.posed, batch.frame)
  target = run.bank.target[t]
  image = np.asarray(losses.supervised_image(out.diffuse, out.normal, run.config.loss.supervision))
  image = image * run.bank.mask[t][..., None]
  row = np.concatenate([target, image, np.abs(target - image)], axis=1)
  return np.repeat(row, 3, axis=-1) if row.shape[-1] == 1 else row


@functools.partial(jax.jit, static_argnames=('model',))
def render_frame(model: model_lib.GarmentModel, mesh, posed, frame) -> render.GarmentRender:
  return model.render(mesh, posed, frame)
