"""Appearance training on the frozen geometry: UV atlas, static + dynamic texture (docs/method.md section 7).

The geometry no longer changes, so each training frame is rasterized once; a step is a texture
lookup, the dynamic texture network and the relative L2 loss on the eroded garment mask.
"""

import functools
import logging
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import xatlas
from jaxtyping import Array, Float, Int, UInt8

from ngd_jax import checkpoint as checkpoint_lib
from ngd_jax import compiles
from ngd_jax import geometry
from ngd_jax import loop
from ngd_jax import losses
from ngd_jax import optimizers
from ngd_jax import render
from ngd_jax import reporting
from ngd_jax import run as run_lib
from ngd_jax.appearance import projection
from ngd_jax.appearance import texture as texture_lib


class AppearanceState(NamedTuple):
  step: jax.Array  # int32 []
  params: dict[str, Any]  # {'static': T^S [S, S, 3], 'dynamic': dynamic texture variables}.
  opt_state: Any
  uvs: jax.Array  # float32 [Vt, 2], atlas coordinates (v = 0 at the texture's bottom row).
  uv_faces: jax.Array  # int32 [F, 3], atlas triangles, face-aligned with the garment faces.
  pose_pca: geometry.PosePCA  # Texture pose code (config.appearance.pose_components).
  code_min: jax.Array  # float32 [P], range of the training codes (normalisation to [0, 1]).
  code_max: jax.Array


class UVImage(NamedTuple):
  """The atlas seen by a camera."""

  uv: Float[Array, 'H W 2']  # Atlas coordinates per pixel.
  coverage: Float[Array, 'H W']  # 1 where the garment covers the pixel.
  depth: Float[Array, 'H W']  # The garment's z/w (nearer is smaller), inf where it covers nothing.


class AppearanceFrames(NamedTuple):
  """Every training frame as the frozen geometry sees it, put on the device once."""

  uv: Float[Array, 'T H W 2']  # Atlas coordinates per pixel.
  coverage: Float[Array, 'T H W']
  rgb: UInt8[Array, 'T H W 3']  # The training images.
  mask: Float[Array, 'T H W']  # Eroded garment mask.
  pixels: Int[Array, 'T N']  # Flat indices of covered pixels padded with -1 (see covered_pixels).
  code: Float[Array, 'T P']  # Normalised texture pose code of each frame (no noise).


class AppearanceBatch(NamedTuple):
  """What changes from one step to the next (a few bytes)."""

  t: Int[Array, '']  # The step's frame.
  noise_std: Float[Array, '']  # Pose-code noise (decays over the phase).
  dynamic_weight: Float[Array, '']  # 0 before appearance.dynamic_start_epoch.
  seed: Int[Array, '']  # config.seed + 1: the noise is keyed by (seed, step).
  step: Int[Array, '']


# The appearance step's metrics.
METRICS = ('texture', 'total')


def atlas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: xatlas UVs of a mesh: (uvs float32 [Vt, 2], uv_faces int32 [F, 3] in the input face order)."""
  _, uv_faces, uvs = xatlas.parametrize(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32))
  return uvs.astype(np.float32), uv_faces.astype(np.int32)


def init_state(config: ml_collections.ConfigDict, uvs: np.ndarray, uv_faces: np.ndarray, poses: np.ndarray,
               settings: optimizers.AppearanceOptimizer, key: jax.Array) -> AppearanceState:
  """Static texture at appearance.texture_init (train_appearance then reads it off the frames if
  appearance.texture_from_frames), a fresh dynamic texture, the texture pose PCA."""
  pca = geometry.fit_pose_pca(poses, config.appearance.pose_components)
  codes = np.asarray(geometry.pose_code(pca, jnp.asarray(poses)))
  size = config.appearance.texture_size
  module = texture_lib.dynamic_texture_from_config(config.appearance)
  dynamic = run_lib.init_module(module, key, jnp.zeros((1, 2)), jnp.zeros((config.appearance.pose_components,)))
  params = {'static': jnp.full((size, size, 3), config.appearance.texture_init, jnp.float32), 'dynamic': dynamic}
  return AppearanceState(
      step=jnp.int32(0), params=params, opt_state=optimizers.appearance_optimizer(settings).init(params),
      uvs=jnp.asarray(uvs),
      uv_faces=jnp.asarray(uv_faces), pose_pca=pca, code_min=jnp.asarray(codes.min(0), jnp.float32),
      code_max=jnp.asarray(codes.max(0), jnp.float32))


def texture_code(state: AppearanceState, pose: jax.Array) -> jax.Array:
  """Normalised texture pose code [P] of a body pose vector."""
  raw = geometry.pose_code(state.pose_pca, pose)
  return texture_lib.normalize_pose_code(raw, state.code_min, state.code_max)


@functools.partial(jax.jit, static_argnames=('resolution', 'backend'))
def rasterize_uv(posed: jax.Array, faces: jax.Array, uvs: jax.Array, uv_faces: jax.Array, world_to_clip: jax.Array,
                 resolution: tuple[int, int], backend: str) -> UVImage:
  """The atlas coordinates and coverage of the posed garment seen by a camera."""
  rast = render.rasterize(render.to_clip(posed, world_to_clip), faces, resolution, backend)
  covered = rast[..., 3] > 0
  return UVImage(render.interpolate(uvs, rast, uv_faces), covered.astype(jnp.float32),
                 jnp.where(covered, rast[..., 2], jnp.inf))


def covered_pixels(coverage: np.ndarray, capacity: int | None = None) -> np.ndarray:
  """Host: flat indices of covered pixels, int32 [N] padded with -1 (N = capacity or the count
  rounded up to a multiple of 1024, so frames share one compiled step)."""
  indices = np.flatnonzero(np.asarray(coverage).reshape(-1) > 0)
  capacity = capacity or max(1024, -(-len(indices) // 1024) * 1024)
  return np.concatenate([indices, np.full(capacity - len(indices), -1)]).astype(np.int32)


@functools.partial(jax.jit, static_argnums=(0,))
def shade(module: texture_lib.DynamicTexture, params: dict[str, Any], uv: Float[Array, 'H W 2'],
          code: Float[Array, 'P'], dynamic_weight: Float[Array, ''] | float, pixels: Int[Array, 'N']
          ) -> Float[Array, 'H W 3']:
  """Textured colour [H, W, 3] at atlas coordinates uv [H, W, 2]; T^D only at `pixels`."""
  return texture_lib.shade(params['static'], module, params['dynamic'], uv, code, dynamic_weight, pixels)


def appearance_step(state: AppearanceState, frames: AppearanceFrames, batch: AppearanceBatch, log: loop.LogSums, *,
                    module: texture_lib.DynamicTexture,
                    settings: optimizers.AppearanceOptimizer) -> tuple[AppearanceState, loop.LogSums]:
  """One frame of texture fitting; pure, jitted as jit_appearance_step (keyword arguments static,
  the state and the log sums donated)."""
  optimizer = optimizers.appearance_optimizer(settings)
  t = batch.t
  noise = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(batch.seed), batch.step), frames.code.shape[1:])
  code = frames.code[t] + batch.noise_std * noise
  target = frames.rgb[t].astype(jnp.float32) / 255.0

  def loss_fn(params):
    rgb = texture_lib.shade(params['static'], module, params['dynamic'], frames.uv[t], code, batch.dynamic_weight,
                            frames.pixels[t])
    return losses.texture_loss(rgb * frames.coverage[t][..., None], target, frames.mask[t])

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return (state._replace(step=state.step + 1, params=params, opt_state=opt_state),
          log.add({'texture': loss, 'total': loss}))


TRACES = compiles.TraceCounter()
jit_appearance_step = jax.jit(TRACES.wrap(appearance_step, 'appearance_step'), static_argnames=('module', 'settings'),
                              donate_argnames=('state', 'log'))


def state_template(config: ml_collections.ConfigDict, poses: np.ndarray) -> AppearanceState:
  """An AppearanceState of the right tree structure (tiny atlas) to restore a checkpoint into."""
  return init_state(config, np.zeros((3, 2), np.float32), np.zeros((1, 3), np.int32), poses,
                    optimizers.AppearanceOptimizer.from_config(config, 1), jax.random.PRNGKey(0))


def train_appearance(run: run_lib.Run, result: run_lib.GeometryResult, checkpointer: checkpoint_lib.Checkpointer,
                     reporter: reporting.Reporter, restored: AppearanceState | None) -> AppearanceState:
  """The appearance epochs on the frozen geometry, continuing `restored` if given."""
  config, bank = run.config, run.bank
  num_frames = bank.num_frames
  total_steps = config.appearance.num_epochs * num_frames
  settings = optimizers.AppearanceOptimizer.from_config(config, total_steps)
  if restored is not None:
    state = restored
  else:
    uvs, uv_faces = atlas(*run_lib.canonical_mesh(run, result))
    state = init_state(config, uvs, uv_faces, bank.pose, settings, jax.random.PRNGKey(config.seed + 1))
  step = int(state.step)
  if step >= total_steps:
    return state
  frames = appearance_frames(run, result, state)
  if restored is None and config.appearance.texture_from_frames:
    # Adam's moments start at zero whatever the values, so the optimizer state made above still fits.
    static = projection.texture_from_frames(frames.uv, frames.coverage * frames.mask,
                                            frames.rgb.astype(jnp.float32) / 255.0, config.appearance.texture_size)
    state = state._replace(params=dict(state.params, static=jnp.asarray(static)))
  module = texture_lib.dynamic_texture_from_config(config.appearance)
  log = jax.device_put(loop.LogSums.zeros(METRICS))
  reporter.start_phase('appearance', total_steps, step)
  meta = dict(result.meta, phase='appearance', appearance_started=True)
  saved = {'constants': result.constants, 'geometry': result.state}
  geometry_steps = int(result.state.step)

  def save(state):
    checkpointer.save(geometry_steps + step, dict(saved, appearance=state), meta)

  while step < total_steps:
    epoch, position = divmod(step, num_frames)
    t = int(loop.epoch_order(config.seed, epoch, num_frames, phase=1)[position])
    batch = jax.device_put(AppearanceBatch(
        t=np.int32(t),
        noise_std=np.float32(texture_lib.linear_decay(step, total_steps, config.appearance.pose_noise_std)),
        dynamic_weight=np.float32(epoch >= config.appearance.dynamic_start_epoch), seed=np.int32(config.seed + 1),
        step=np.int32(step)))
    state, log = jit_appearance_step(state, frames, batch, log, module=module, settings=settings)
    step += 1
    reporter.advance()
    save_now = step == total_steps or step % config.train.checkpoint_every_steps == 0
    if save_now or step % config.train.log_every_steps == 0:
      means, log = log.means(), jax.device_put(loop.LogSums.zeros(METRICS))
      loop.check_finite(means, geometry_steps + step, checkpointer, config.train.log_every_steps)
      reporter.scalars(step, means, 'appearance')
    if save_now and step < total_steps:  # The last step: saved below.
      save(state)
  meta['phase'] = 'done'
  save(state)
  logging.info('Appearance done after %d steps.', step)
  return state


def appearance_frames(run: run_lib.Run, result: run_lib.GeometryResult, state: AppearanceState) -> AppearanceFrames:
  """Host: each training frame's atlas image, coverage, eroded mask and texture pose code, on the device.

  The geometry no longer changes, so this runs once per phase (and once per resume).
  """
  config, bank = run.config, run.bank
  posed, faces = run_lib.posed_frames(run, result)
  seen = [rasterize_uv(jnp.asarray(posed[t]), jnp.asarray(faces), state.uvs, state.uv_faces,
                       jnp.asarray(bank.world_to_clip[t]), bank.resolution, config.render.backend)
          for t in range(bank.num_frames)]
  coverage = np.stack([np.asarray(image.coverage) for image in seen])
  capacity = max(len(covered_pixels(c)) for c in coverage)
  eroded = jax.vmap(losses.erode, in_axes=(0, None))(jnp.asarray(bank.mask, jnp.float32), config.loss.texture_erode)
  return jax.device_put(AppearanceFrames(
      uv=jnp.stack([image.uv for image in seen]), coverage=coverage, rgb=bank.rgb, mask=eroded,
      pixels=np.stack([covered_pixels(c, capacity) for c in coverage]),
      code=texture_code(state, jnp.asarray(bank.pose))))


class Textured(NamedTuple):
  rgb: np.ndarray  # float32 [H, W, 3], black where the garment does not cover the pixel.
  coverage: np.ndarray  # float32 [H, W].


def render_textured(config: ml_collections.ConfigDict, state: AppearanceState, posed: Float[Array, 'V 3'],
                    faces: Int[Array, 'F 3'], world_to_clip: Float[Array, '4 4'], pose: Float[Array, 'P'],
                    resolution: tuple[int, int], occluder_depth: np.ndarray | None = None) -> Textured:
  """Host: the textured colour and coverage of a posed garment from a camera; with `occluder_depth` (z/w
  [H, W] of what else the camera sees, inf where nothing: frames.body_depth), only where the garment is nearer."""
  uv, coverage, depth = rasterize_uv(posed, faces, state.uvs, state.uv_faces, world_to_clip, resolution,
                                     config.render.backend)
  if occluder_depth is not None:
    coverage = coverage * (depth < occluder_depth)
  module = texture_lib.dynamic_texture_from_config(config.appearance)
  rgb = shade(module, state.params, uv, texture_code(state, pose), 1.0, covered_pixels(coverage))
  return Textured(np.asarray(rgb * coverage[..., None]), np.asarray(coverage))
