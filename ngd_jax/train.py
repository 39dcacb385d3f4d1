"""Geometry training: the pure step, its loop, and train_and_evaluate (docs/method.md sections 4-6).

train_and_evaluate is the table of contents of a run:
  1. validate the config, read the sequence and template (pipeline, host);
  2. restore the latest checkpoint of the workdir (restore.py), or initialise (run.py);
  3. geometry epochs (warm-up on J^S, then J^S + f_G), remeshing at the configured epochs
     (remesh_phase.py);
  4. appearance epochs (appearance_phase.py) on the frozen geometry;
  5. evaluation of the trained state as it is in memory (evaluate.py), metrics.json.

Resume order: the checkpoint's meta says the phase; its state holds the step (and so the epoch
and the position inside the epoch's permutation), parameters, optimiser state, the current
(remeshed) template and the epoch's remesh score accumulator. Frame order and every random draw
are functions of (seed, step), so a resumed run replays exactly what an uninterrupted one does.
"""

import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from ngd_jax import appearance_phase
from ngd_jax import body
from ngd_jax import checkpoint as checkpoint_lib
from ngd_jax import compiles
from ngd_jax import configuration
from ngd_jax import data
from ngd_jax import evaluate
from ngd_jax import geometry
from ngd_jax import loop
from ngd_jax import losses
from ngd_jax import model as model_lib
from ngd_jax import optimizers
from ngd_jax import pipeline
from ngd_jax import placement
from ngd_jax import remesh
from ngd_jax import remesh_phase
from ngd_jax import render
from ngd_jax import reporting
from ngd_jax import restore
from ngd_jax import run as run_lib
from ngd_jax import supervision
from ngd_jax import workdir as workdir_lib


class LossSettings(NamedTuple):
  """Exactly the loss values the geometry step reads (config.loss fields by name): hashable, so
  part of the step's static arguments, and a change to any other config value does not recompile."""

  supervision: str
  render_weight: float
  huber_weight: float
  huber_delta: float
  ssim_weight: float
  mask_weight: float
  shading_erode: int
  shading_region: str
  jacobian_weight: float
  jacobian_visible_only: bool
  smoothness_weight: float
  penetration_weight: float
  penetration_margin: float
  posed_penetration_weight: float
  depth_weight: float
  depth_pairs: int
  depth_box: int
  depth_margin: float
  depth_min_gap: float
  depth_pairs_in_mask: bool
  depth_correlation_weight: float
  photometric_weight: float
  photometric_pixels: int

  @classmethod
  def from_config(cls, loss_config: ml_collections.ConfigDict) -> 'LossSettings':
    return cls(*(loss_config[name] for name in cls._fields))

  @property
  def render_weights(self) -> losses.RenderLossWeights:
    return losses.RenderLossWeights(render=self.render_weight, huber=self.huber_weight, huber_delta=self.huber_delta,
                                    ssim=self.ssim_weight, mask=self.mask_weight, shading_erode=self.shading_erode,
                                    shading_region=self.shading_region)


class FrameImages(NamedTuple):
  """The supervision of one frame, as the losses read it."""

  target: Float[Array, 'H W C']  # supervision.target_image.
  rgb: Float[Array, 'H W 3']  # The frame's colours in [0, 1] ([0, 0, 3] without the photometric term).
  mask: Float[Array, 'H W']
  hands: Float[Array, 'H W']
  depth: Float[Array, 'H W']  # nan = unknown.
  body_depth: Float[Array, 'H W']  # z/w of the posed body, inf where none.
  body_points: Float[Array, 'N 3']  # Samples of the posed body (frames.body_samples).
  body_normals: Float[Array, 'N 3']


def frame_images(frames: run_lib.TrainingFrames, t: Int[Array, '']) -> FrameImages:
  return FrameImages(frames.target[t], frames.rgb[t].astype(jnp.float32) / 255.0, frames.mask[t].astype(jnp.float32),
                     frames.hands[t].astype(jnp.float32), frames.depth[t], frames.body_depth[t], frames.body_points[t],
                     frames.body_normals[t])


def photometric_term(colour_field: geometry.ClothColour, colour_params: dict[str, Any], out: render.GarmentRender,
                     rest_vertices: Float[Array, 'Vc 3'], faces: Int[Array, 'Fc 3'], images: FrameImages,
                     key: jax.Array, count: int) -> jax.Array:
  """The photometric term, unweighted (losses.photometric_loss): at `count` pixels drawn from the garment mask,
  the frame's colour against the cloth's colour at the rest point the render draws there (its barycentrics, so
  the gradient moves the posed points to where their colour is, along the surface or off it). Pixels count
  where the render covers them whole with the garment's front (no antialiased edge, no inside of the cloth) and
  no hand hides them."""
  pixels = losses.sample_mask_pixels(key, images.mask, count)
  rast = out.rast.reshape(-1, 4)[pixels][None]  # [1, N, 4]: the drawn pixels as a one-row image.
  rest = render.interpolate(rest_vertices, rast, faces)[0]
  colour = colour_field.apply(colour_params, geometry.unit_box(rest, rest_vertices))
  valid = (out.alpha.reshape(-1)[pixels] > 0.999) & (images.hands.reshape(-1)[pixels] < 0.5)
  return losses.photometric_loss(colour, images.rgb.reshape(-1, 3)[pixels],
                                 jax.lax.stop_gradient(valid.astype(jnp.float32)))


def image_terms(
    out: render.GarmentRender,
    image_probe: Float[Array, 'H W C'],
    images: FrameImages,
    pairs: losses.DepthPairs,
    loss: LossSettings,
    use_depth: bool,
) -> dict[str, jax.Array]:
  """The weighted terms that compare the render with the frame's images: huber, ssim, mask (and the depth terms).

  `image_probe` (zeros shaped like images.target) is added to the supervised image so that the
  gradient w.r.t. it is the remesh face score's input.
  """
  image = supervision.supervised_image(out.diffuse, out.normal, out.alpha, loss.supervision) + image_probe
  garment_depth = jnp.where(out.rast[..., 3] > 0, out.rast[..., 2], jnp.inf)
  occluder = losses.occluder_mask(images.hands, images.mask, garment_depth, images.body_depth)
  terms = losses.render_loss(image, out.alpha[..., 0], images.target, images.mask, occluder, loss.render_weights)
  if use_depth and loss.depth_weight > 0:
    terms['depth'] = loss.depth_weight * losses.depth_ranking_loss(
        out.depth[..., 0], images.depth, pairs, loss.depth_margin, loss.depth_min_gap)
  if use_depth and loss.depth_correlation_weight > 0:
    # The garment's pixels the render covers whole (no antialiased edge) and no hand hides.
    inside = jax.lax.stop_gradient((out.alpha[..., 0] > 0.999) * images.mask * (1.0 - images.hands))
    terms['depth_correlation'] = loss.depth_correlation_weight * losses.depth_correlation_loss(
        out.depth[..., 0], images.depth, inside)
  return terms


def frame_losses(
    out: render.GarmentRender,
    deformation: model_lib.Deformation,
    image_probe: Float[Array, 'H W C'],
    images: FrameImages,
    mesh: model_lib.GarmentMesh,
    pairs: losses.DepthPairs,
    *,
    loss: LossSettings,
    dynamic: bool,
    use_depth: bool,
) -> dict[str, jax.Array]:
  """The weighted loss terms of one frame (docs/method.md section 4, plus the priors of configs/default.py):
  image_terms, the Jacobian term and the priors for what the camera does not see."""
  terms = image_terms(out, image_probe, images, pairs, loss, use_depth)
  jacobians = deformation.jacobians
  face_weight = mesh.operators.face_mask.astype(jnp.float32)
  if dynamic and loss.jacobian_visible_only:
    face_weight = face_weight * (remesh.face_pixel_counts(out.rast, face_weight.shape[0]) > 0)
  terms['jacobian'] = loss.jacobian_weight * losses.jacobian_loss(
      jacobians, face_weight, jnp.sum(mesh.operators.face_mask))
  if loss.smoothness_weight > 0:
    terms['smoothness'] = loss.smoothness_weight * losses.stretch_smoothness_loss(jacobians, mesh.face_pairs)
  if mesh.body_distance is not None:
    distance = body.signed_distance(mesh.body_distance, deformation.canonical)
    terms['penetration'] = loss.penetration_weight * losses.penetration_loss(
        distance, mesh.operators.vertex_mask, loss.penetration_margin)
  if loss.posed_penetration_weight > 0:
    terms['posed_penetration'] = loss.posed_penetration_weight * losses.posed_penetration_loss(
        deformation.posed, mesh.operators.vertex_mask, images.body_points, images.body_normals,
        loss.penetration_margin)
  return terms


# The step's metrics: the loss terms (0 where a term is off) and their total, the gradient norm of J^S,
# and the final Poisson solve's relative residual, CG iterations and whether CG stopped at its cap
# (0 for the direct solvers), each a mean over the step's frames.
METRICS = ('huber', 'ssim', 'mask', 'jacobian', 'smoothness', 'penetration', 'posed_penetration', 'depth',
           'depth_correlation', 'photometric', 'total', 'static_grad_norm', 'poisson_residual', 'poisson_iterations',
           'poisson_capped')


class FrameOutputs(NamedTuple):
  """What the step keeps of each of its frames besides the gradient (leading axis: the step's frames)."""

  terms: dict[str, jax.Array]  # The weighted loss terms by name, [B] each.
  solve: geometry.SolveInfo  # Each frame's final Poisson solve, [B] each.
  canonical: Float[Array, 'B Vc 3']  # Each frame's canonical solution (its next CG warm start).
  face_stats: remesh.FrameFaceStats  # Remesh face statistics, [B, Fc] each.


class StepSettings(NamedTuple):
  """The geometry step's static arguments: exactly what the compiled program depends on."""

  model: model_lib.GarmentModel
  optimizer: optimizers.GeometryOptimizer
  loss: LossSettings
  use_depth: bool
  devices: int  # Devices the step's frames are spread over (a divisor of the frames per step).
  streamed: bool  # The step receives only its own frames (split over the devices), not all of them.


def _frames_gradient(params: dict[str, Any], solutions: Float[Array, 'T Vc 3'] | None, blend_target: jax.Array | None,
                     mesh: model_lib.GarmentMesh, constants: run_lib.Constants, frames: run_lib.TrainingFrames,
                     batch: run_lib.StepBatch, *, settings: StepSettings,
                     dynamic: bool) -> tuple[dict[str, Any], FrameOutputs]:
  """The gradient of the mean loss over this device's frames of the step (averaged across devices).

  Frame i of the step draws its noise and depth pairs from key (seed, step * B + offset + i), so a
  frame's draws do not depend on how the step's B frames are spread over devices. The device's frames
  go through one loop (lax.map), not one copy of the program each: a step of 4 frames on one device
  compiles as fast as a step of one.
  """
  model, loss = settings.model, settings.loss
  local = batch.t.shape[0]
  offset = jax.lax.axis_index('frames') * local
  frames_per_step = local * settings.devices

  def frame_loss(params, probe, i):
    images = frame_images(frames, batch.slot[i])
    draw = batch.step * frames_per_step + offset + i
    key_frame = jax.random.fold_in(jax.random.PRNGKey(batch.seed), draw)
    key_noise, key_pairs = jax.random.split(key_frame)
    pairs = losses.sample_depth_pairs(key_pairs, images.mask, loss.depth_pairs, loss.depth_box,
                                      loss.depth_pairs_in_mask)
    t = batch.t[i]
    frame = pipeline.frame_inputs(frames, batch.slot[i], batch.pose_code[i])
    deformation = model.deform(params, constants.field_bounds, mesh, frame, dynamic=dynamic,
                               blend_target=None if blend_target is None else blend_target[t],
                               blend_weight=batch.blend_weight, x0=None if solutions is None else solutions[t])
    noise = batch.vertex_noise_std * jax.random.normal(key_noise, deformation.posed.shape)
    out = model.render(mesh, deformation.posed + noise, frame)
    terms = frame_losses(out, deformation, probe, images, mesh, pairs, loss=loss, dynamic=dynamic,
                         use_depth=settings.use_depth)
    if model.colour_field is not None:
      terms['photometric'] = loss.photometric_weight * photometric_term(
          model.colour_field, params['colour'], out, mesh.operators.rest_vertices, mesh.operators.faces, images,
          jax.random.fold_in(key_frame, 1), loss.photometric_pixels)
    return terms, out.rast, deformation.canonical, deformation.solve

  def loss_fn(params, probes):
    terms, rasts, canonicals, solves = jax.lax.map(lambda args: frame_loss(params, *args),
                                                   (probes, jnp.arange(local)))
    total = sum(jnp.sum(values) for values in terms.values()) / local
    return total, (terms, rasts, canonicals, solves)

  probes = jnp.zeros((local,) + frames.target.shape[1:], frames.target.dtype)
  (_, (terms, rasts, canonicals, solves)), (grads, grad_images) = jax.value_and_grad(
      loss_fn, argnums=(0, 1), has_aux=True)(params, probes)
  masks = frames.mask[batch.slot].astype(jnp.float32)[..., None]
  stats = remesh.frame_face_stats(grad_images, masks, rasts, mesh.operators.faces.shape[0])
  grads = jax.lax.pmean(grads, 'frames')
  return grads, FrameOutputs(terms, solves, jax.lax.stop_gradient(canonicals), stats)


def geometry_step(
    state: run_lib.GeometryState,
    mesh: model_lib.GarmentMesh,
    constants: run_lib.Constants,
    frames: run_lib.TrainingFrames,
    batch: run_lib.StepBatch,
    log: loop.LogSums,
    *,
    settings: StepSettings,
    dynamic: bool,
) -> tuple[run_lib.GeometryState, loop.LogSums]:
  """One step over B frames: deform, render, losses, Adam update, remesh scores. Pure; jitted as
  jit_geometry_step, with the state and the log sums donated.

  `dynamic` is False during warm-up: J^D = 0 and every face counts in the Jacobian term. The
  step's frames are spread over `settings.devices` devices (shard_map over a 1-D mesh 'frames');
  the gradient is the mean over all B frames. The gradient of the render loss w.r.t. the rendered
  image (the remesh face score, docs/method.md section 6) comes out of the same backward pass
  through a zero image probe per frame. Metrics are added to `log` on the device: the loop reads
  them once per logging interval.
  """
  replicated, split = jax.sharding.PartitionSpec(), jax.sharding.PartitionSpec('frames')
  gradient = jax.shard_map(
      functools.partial(_frames_gradient, settings=settings, dynamic=dynamic),
      mesh=placement.device_mesh(settings.devices),
      in_specs=(replicated,) * 5 + (placement.frames_spec(settings.streamed), placement.batch_specs()),
      out_specs=(replicated, split),
      check_vma=False,
  )
  grads, outputs = gradient(state.params, state.solutions, state.blend_target, mesh, constants, frames, batch)
  updates, opt_state = optimizers.geometry_optimizer(settings.optimizer).update(grads, state.opt_state, state.params)
  new_state = state._replace(
      step=state.step + 1,
      params=optax.apply_updates(state.params, updates),
      opt_state=opt_state,
      scores=remesh.accumulate(state.scores, outputs.face_stats),
      solutions=None if state.solutions is None else state.solutions.at[batch.t].set(outputs.canonical),
  )
  terms = {name: jnp.mean(values) for name, values in outputs.terms.items()}
  capped = outputs.solve.iterations >= settings.model.cg_maxiter
  metrics = dict(terms, total=sum(terms.values()), static_grad_norm=optax.tree.norm(grads['static']),
                 poisson_residual=jnp.mean(outputs.solve.residual),
                 poisson_iterations=jnp.mean(outputs.solve.iterations.astype(jnp.float32)),
                 poisson_capped=jnp.mean(capped.astype(jnp.float32)))
  log = log.add({name: metrics.get(name, jnp.zeros(())) for name in METRICS})
  # Outputs laid out as `place` lays out the inputs, so feeding them back hits the compiled step.
  on_every_device = jax.sharding.NamedSharding(placement.device_mesh(settings.devices), replicated)
  return jax.lax.with_sharding_constraint((new_state, log), on_every_device)


# Compiles are counted and logged; one compile per (capacity bucket, warm-up or not) and, being
# module level, shared by every Run of a process with the same configuration.
TRACES = compiles.TraceCounter()
jit_geometry_step = jax.jit(TRACES.wrap(geometry_step, 'geometry_step'), static_argnames=('settings', 'dynamic'),
                            donate_argnames=('state', 'log'))


def step_settings(run: run_lib.Run) -> StepSettings:
  """The static arguments of the run's step; the frames of a step go to as many devices as divide them."""
  frames_per_step = run.config.train.frames_per_step
  devices = max(d for d in range(1, min(frames_per_step, jax.local_device_count()) + 1) if frames_per_step % d == 0)
  return StepSettings(run.model, run.optimizer_settings, LossSettings.from_config(run.config.loss),
                      run.use_depth, devices, not run.frames_resident)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> restore.Trained:
  """Trains geometry then appearance (resuming from workdir), evaluates the trained state (in memory, as
  it was saved last), writes metrics.json; returns what it trained."""
  configuration.validate(config)
  # Nothing in the workdir is written before the inputs are validated (the sequence as it is read,
  # its cameras against the skinned template here) and the workdir's record matches this run.
  run = run_lib.Run(config, pipeline.load_inputs(config))
  data.check_in_view(run.inputs.sequence, run.bank.indices, run.template_skinned(), run.bank.mask,
                     run.bank.world_to_clip)
  workdir_lib.check(config, run.inputs.sequence.path, workdir)
  workdir_lib.record(config, run.inputs.sequence.path, workdir)
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.train.keep_checkpoints)
  reporter = reporting.Reporter(f'{workdir}/tensorboard')
  try:
    restored = restore.restore_run(run, checkpointer)
    if restored is not None:
      reporter.write(f'Resumed from checkpoint {checkpointer.latest_step()} ({restored.meta["phase"]} phase).')
    geometry_result = train_geometry(run, checkpointer, reporter, restored)
    appearance = None
    if config.appearance.enabled:
      appearance = appearance_phase.train_appearance(run, geometry_result, checkpointer, reporter,
                                                     restored.appearance if restored is not None else None)
    last_saved = checkpointer.latest_step()
  finally:
    reporter.close()
    checkpointer.close()
  trained = restore.pose_trained(run, geometry_result, appearance, last_saved)
  evaluate.evaluate_run(config, workdir, trained)
  return trained


def train_geometry(run: run_lib.Run, checkpointer: checkpoint_lib.Checkpointer, reporter: reporting.Reporter,
                   restored: restore.Restored | None) -> run_lib.GeometryResult:
  """The geometry epochs, continuing `restored` if given.

  Between two logging intervals the loop sends each step a few bytes (StepBatch) and reads
  nothing back: the frames stay on the device (or, above train.device_frames_max_gb, each step's
  own frames are put there while the step before runs), the metrics are summed there, and the
  host keeps its own copies of the counters it needs (step, faces, epoch of the last remesh).
  """
  config, steps_per_epoch = run.config, run.steps_per_epoch
  total_steps = config.train.num_epochs * steps_per_epoch
  if restored is None:
    constants = run.fit_constants()
    state, mesh = run.init_state(constants, jax.random.PRNGKey(config.seed))
    meta = {'phase': 'geometry', 'remeshes': 0, 'wall_seconds': 0.0}
  else:
    constants, state, meta = restored.constants, restored.geometry, dict(restored.meta)
    mesh = run.mesh_of_state(state)
  if meta['phase'] != 'geometry':
    return run_lib.GeometryResult(constants, state, mesh, meta)

  remesh_epochs = tuple(config.remesh.epochs) if config.remesh.enabled else ()
  pose_codes = run.pose_codes(constants)
  settings = step_settings(run)
  step, faces, blend_start = int(state.step), int(state.num_faces), int(state.blend_start_epoch)
  state, mesh, constants = placement.place((state, mesh, constants), settings.devices)

  frames, slots = placement.step_frames_on_device(run, placement.step_indices(run, step), settings.devices,
                                                  settings.streamed)
  log = placement.place(loop.LogSums.zeros(METRICS), settings.devices)
  reporter.start_phase('geometry', total_steps, step)
  started = time.time()
  wall_before = meta['wall_seconds']

  def save(state):
    meta.update(wall_seconds=wall_before + time.time() - started, faces=faces,
                blend_target=state.blend_target is not None)
    checkpointer.save(step, {'constants': constants, 'geometry': state}, meta)

  while step < total_steps:
    epoch = run.epoch_of(step)
    if step % steps_per_epoch == 0:  # The epoch's first step.
      scores = remesh.init_accumulator(state.faces.shape[0])
      state = state._replace(scores=placement.place(scores, settings.devices))
      if state.blend_target is not None and run_lib.blending_ended(config, epoch, blend_start):
        state = state._replace(blend_target=None)  # Its memory (T x Fc x 9 floats) is freed.
    batch = placement.step_batch(run, step, run_lib.blend_weight(config, epoch, blend_start), pose_codes, slots,
                                 settings.devices)
    state, log = jit_geometry_step(state, mesh, constants, frames, batch, log, settings=settings,
                                   dynamic=epoch >= config.train.warmup_epochs)
    step += 1
    if settings.streamed and step < total_steps:  # The transfer overlaps the step just dispatched.
      frames, slots = placement.step_frames_on_device(run, placement.step_indices(run, step), settings.devices,
                                                      settings.streamed)
    reporter.advance()
    completed = run.epoch_of(step)  # Epochs done (at an epoch's end).
    remesh_now = (step % steps_per_epoch == 0 and completed in remesh_epochs
                  and meta['remeshes'] <= remesh_epochs.index(completed))
    save_now = remesh_now or step == total_steps or step % config.train.checkpoint_every_steps == 0
    if save_now or step % config.train.log_every_steps == 0:
      # Read once per interval, and before anything is saved: a checkpoint never holds a diverged state.
      means, log = log.means(), placement.place(loop.LogSums.zeros(METRICS), settings.devices)
      loop.check_finite(means, step, checkpointer, config.train.log_every_steps)
      if means['poisson_capped'] > 0:
        geometry.warn_if_capped(config.geometry.cg_maxiter, means['poisson_residual'], config.geometry.cg_maxiter)
      reporter.scalars(step, dict(means, faces=faces, epoch=epoch), 'geometry')
    if step % config.train.image_every_steps == 0:
      t = int(placement.step_indices(run, step - 1)[0])  # The first frame of the step just taken.
      reporter.image(step, 'geometry/target_vs_render', preview(run, state, mesh, constants, t))
    if remesh_now:
      remeshed = remesh_phase.remesh_state(run, state, mesh, constants, remesh_epochs.index(completed), completed,
                                           reporter)
      state, mesh = placement.place(remeshed, settings.devices)
      faces, blend_start = int(state.num_faces), int(state.blend_start_epoch)
      meta['remeshes'] += 1
      save(state)
    elif save_now and step < total_steps:  # The last step: saved below, with the next phase in its meta.
      save(state)
  meta['phase'] = 'appearance' if config.appearance.enabled else 'done'
  save(state)
  reporter.write(f'Geometry done: {faces} faces; compiles: {TRACES.counts}')
  return run_lib.GeometryResult(constants, state, mesh, meta)


def preview(run: run_lib.Run, state: run_lib.GeometryState, mesh: model_lib.GarmentMesh,
            constants: run_lib.Constants, t: int) -> np.ndarray:
  """Host: target | rendered | error of the supervised image, [H, 3W, C] in [0, 1], for TensorBoard."""
  epoch = run.last_epoch(state)
  blend = np.float32(run_lib.blend_weight(run.config, epoch, int(state.blend_start_epoch)))
  frame = pipeline.frame_inputs(run.bank, t, run.pose_codes(constants)[t])
  dynamic = epoch >= run.config.train.warmup_epochs
  deformation = run_lib.deform_frame(run.model, state.params, constants.field_bounds, mesh, frame,
                                     run_lib.frame_blend_target(state, t), blend, dynamic)
  out = run_lib.render_frame(run.model, mesh, deformation.posed, frame)
  target = run.bank.target[t]
  image = np.asarray(supervision.supervised_image(out.diffuse, out.normal, out.alpha, run.config.loss.supervision))
  image = image * run.bank.mask[t][..., None]
  row = np.concatenate([target, image, np.abs(target - image)], axis=1)
  return np.repeat(row, 3, axis=-1) if row.shape[-1] == 1 else row
