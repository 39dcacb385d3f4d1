"""Geometry training: the pure step, its loop, and train_and_evaluate (docs/method.md sections 4-6).

train_and_evaluate is the table of contents of a run:
  1. validate the config, read the sequence and template (pipeline, host);
  2. restore the latest checkpoint of the workdir (trained.py), or initialise (run.py);
  3. geometry epochs (warm-up on J^S, then J^S + f_G), remeshing at the configured epochs
     (remeshing.py);
  4. appearance epochs (texturing.py) on the frozen geometry;
  5. evaluation (evaluate.py), metrics.json.

Resume order: the checkpoint's meta says the phase; its state holds the step (and so the epoch
and the position inside the epoch's permutation), parameters, optimiser state, the current
(remeshed) template and the epoch's remesh score accumulator. Frame order and every random draw
are functions of (seed, step), so a resumed run replays exactly what an uninterrupted one does.
"""

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ngd_jax import body
from ngd_jax import checkpoint as checkpoint_lib
from ngd_jax import compiles
from ngd_jax import configuration
from ngd_jax import data
from ngd_jax import evaluate
from ngd_jax import loop
from ngd_jax import losses
from ngd_jax import model as model_lib
from ngd_jax import optimizers
from ngd_jax import pipeline
from ngd_jax import remesh
from ngd_jax import remeshing
from ngd_jax import render
from ngd_jax import reporting
from ngd_jax import run as run_lib
from ngd_jax import supervision
from ngd_jax import texturing
from ngd_jax import trained as trained_lib
from ngd_jax import workdir as workdir_lib


def render_weights(loss_config: ml_collections.ConfigDict) -> losses.RenderLossWeights:
  return losses.RenderLossWeights(
      render=loss_config.render_weight,
      huber=loss_config.huber_weight,
      huber_delta=loss_config.huber_delta,
      ssim=loss_config.ssim_weight,
      mask=loss_config.mask_weight,
  )


def frame_losses(
    out: render.GarmentRender,
    deformation: model_lib.Deformation,
    image_probe: jax.Array,
    batch: run_lib.StepBatch,
    mesh: model_lib.GarmentMesh,
    pairs: losses.DepthPairs,
    *,
    loss_config: ml_collections.FrozenConfigDict,
    dynamic: bool,
    use_depth: bool,
) -> dict[str, jax.Array]:
  """The weighted loss terms of one frame (docs/method.md section 4, plus the priors of configs/default.py).

  `image_probe` (zeros shaped like batch.target) is added to the supervised image so that the
  gradient w.r.t. it is the remesh face score's input.
  """
  image = supervision.supervised_image(out.diffuse, out.normal, loss_config.supervision) + image_probe
  terms = losses.render_loss(image, out.alpha[..., 0], batch.target, batch.mask, batch.hands,
                             render_weights(loss_config))
  jacobians = deformation.jacobians
  face_weight = mesh.operators.face_mask.astype(jnp.float32)
  if dynamic and loss_config.jacobian_visible_only:
    face_weight = face_weight * (remesh.face_pixel_counts(out.rast, face_weight.shape[0]) > 0)
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


class StepAux(NamedTuple):
  """What the step's loss function returns besides the total."""

  terms: dict[str, jax.Array]  # The weighted loss terms by name.
  rast: jax.Array  # float32 [H, W, 4], the rasterizer output (remesh face scores).
  canonical: jax.Array  # float32 [Vc, 3], the frame's canonical solution (the frame's next CG warm start).


def geometry_step(
    state: run_lib.GeometryState,
    mesh: model_lib.GarmentMesh,
    constants: run_lib.Constants,
    batch: run_lib.StepBatch,
    *,
    model: model_lib.GarmentModel,
    optimizer: optimizers.GeometryOptimizer,
    loss_config: ml_collections.FrozenConfigDict,
    dynamic: bool,
    use_depth: bool,
) -> tuple[run_lib.GeometryState, dict[str, jax.Array]]:
  """One frame: deform, render, losses, Adam update, remesh scores. Pure; jitted as jit_geometry_step.

  The keyword arguments are static (hashable) and hold only what the compiled program depends on.
  `dynamic` is False during warm-up: J^D = 0 and every face counts in the Jacobian term.
  The gradient of the render loss w.r.t. the rendered image (the remesh face score,
  docs/method.md section 6) comes out of the same backward pass through a zero `image_probe`.
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
    return sum(terms.values()), StepAux(terms, out.rast, deformation.canonical)

  probe = jnp.zeros_like(batch.target)
  (total, aux), (grads, grad_image) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(state.params, probe)
  updates, opt_state = optimizers.geometry_optimizer(optimizer).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  stats = remesh.frame_face_stats(grad_image, batch.mask[..., None], aux.rast, face_capacity)
  new_state = state._replace(
      step=state.step + 1,
      params=params,
      opt_state=opt_state,
      scores=remesh.accumulate(state.scores, stats),
      solutions=state.solutions.at[batch.t].set(jax.lax.stop_gradient(aux.canonical)),
  )
  metrics = dict(aux.terms, total=total, static_grad_norm=optax.tree.norm(grads['static']))
  return new_state, metrics


# Compiles are counted and logged; one compile per (capacity bucket, warm-up or not) and, being
# module level, shared by every Run of a process with the same configuration.
TRACES = compiles.TraceCounter()
jit_geometry_step = jax.jit(
    TRACES.wrap(geometry_step, 'geometry_step'),
    static_argnames=('model', 'optimizer', 'loss_config', 'dynamic', 'use_depth'),
)


def run_step(run: run_lib.Run, state: run_lib.GeometryState, mesh: model_lib.GarmentMesh,
             constants: run_lib.Constants, batch: run_lib.StepBatch,
             dynamic: bool) -> tuple[run_lib.GeometryState, dict[str, jax.Array]]:
  """Runs the compiled geometry step of `run` (warm-up variant when not `dynamic`)."""
  return jit_geometry_step(state, mesh, constants, batch, model=run.model, optimizer=run.optimizer_settings,
                           loss_config=ml_collections.FrozenConfigDict(run.config.loss), dynamic=dynamic,
                           use_depth=run.use_depth)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Trains geometry then appearance (resuming from workdir), evaluates, writes metrics.json."""
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
    restored = trained_lib.restore_run(run, checkpointer)
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


def train_geometry(run: run_lib.Run, checkpointer: checkpoint_lib.Checkpointer, reporter: reporting.Reporter,
                   restored: trained_lib.Restored | None) -> run_lib.GeometryResult:
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
    return run_lib.GeometryResult(constants, state, mesh, meta)

  remesh_epochs = tuple(config.remesh.epochs) if config.remesh.enabled else ()
  pose_codes = run.pose_codes(constants)
  # Host copies of the state's counters: the loop reads them without waiting for the device.
  step, blend_start = int(state.step), int(state.blend_start_epoch)
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
    t = int(loop.epoch_order(config.seed, epoch, num_frames)[position])
    batch = run.batch(t, step, run_lib.blend_weight(config, epoch, blend_start), pose_codes)
    dynamic = epoch >= config.train.warmup_epochs
    state, metrics = run_step(run, state, mesh, constants, batch, dynamic)
    metrics = jax.device_get(metrics)
    loop.check_finite(metrics, step, checkpointer, config.train.log_every_steps)
    step += 1
    reporter.advance()
    if step % config.train.log_every_steps == 0 or step == total_steps:
      reporter.scalars(step, dict(metrics, faces=int(state.num_faces), epoch=epoch), 'geometry')
    if step % config.train.image_every_steps == 0:
      reporter.image(step, 'geometry/target_vs_render', preview(run, state, mesh, constants, t))
    completed = step // num_frames
    if step % num_frames == 0 and completed in remesh_epochs and meta['remeshes'] <= remesh_epochs.index(completed):
      state, mesh = remeshing.remesh_state(run, state, mesh, constants, remesh_epochs.index(completed), completed,
                                           reporter)
      blend_start = int(state.blend_start_epoch)
      meta['remeshes'] += 1
      save(state)
    elif step % config.train.checkpoint_every_steps == 0 and step < total_steps:  # The last step: saved below.
      save(state)
  meta['phase'] = 'appearance' if config.appearance.enabled else 'done'
  save(state)
  reporter.write(f'Geometry done: {int(state.num_faces)} faces; compiles: {TRACES.counts}')
  return run_lib.GeometryResult(constants, state, mesh, meta)


def preview(run: run_lib.Run, state: run_lib.GeometryState, mesh: model_lib.GarmentMesh,
            constants: run_lib.Constants, t: int) -> np.ndarray:
  """Host: target | rendered | error of the supervised image, [H, 3W, C] in [0, 1], for TensorBoard."""
  step = int(state.step)
  epoch = step // run.bank.num_frames
  batch = run.batch(t, step, run_lib.blend_weight(run.config, epoch, int(state.blend_start_epoch)),
                    run.pose_codes(constants))
  dynamic = epoch >= run.config.train.warmup_epochs
  deformation = run_lib.deform_frame(run.model, state.params, constants.field_bounds, mesh, batch.frame,
                                     state.blend_target[t], batch.blend_weight, dynamic)
  out = run_lib.render_frame(run.model, mesh, deformation.posed, batch.frame)
  target = run.bank.target[t]
  image = np.asarray(supervision.supervised_image(out.diffuse, out.normal, run.config.loss.supervision))
  image = image * run.bank.mask[t][..., None]
  row = np.concatenate([target, image, np.abs(target - image)], axis=1)
  return np.repeat(row, 3, axis=-1) if row.shape[-1] == 1 else row
