"""The tiny synthetic sequence (a module fixture), its training configuration and the placed
inputs of one geometry step, shared by the training tests."""

import jax
import pytest

from configs import demo
from ngd_jax import loop
from ngd_jax import pipeline
from ngd_jax import placement
from ngd_jax import restore
from ngd_jax import run as run_lib
from ngd_jax import train
from ngd_jax.data import synthetic


@pytest.fixture(scope='module')
def sequence_path(tmp_path_factory):
  path = tmp_path_factory.mktemp('data') / 'tiny'
  synthetic.generate(path, 'tiny', seed=0)
  return str(path)


def tiny_config(path):
  config = demo.get_config()
  config.data.path = path
  config.data.resolution = 64
  config.train.num_epochs = 4
  config.train.warmup_epochs = 1
  config.remesh.epochs = (2,)
  config.remesh.blend_epochs = 1
  config.remesh.capacity_multiple = 256
  config.appearance.num_epochs = 2
  config.appearance.dynamic_start_epoch = 1
  config.appearance.texture_size = 32
  config.geometry.hash_levels = 4
  config.appearance.hash_levels = 4
  config.geometry.hash_log2_table_size = 10
  config.appearance.hash_log2_table_size = 10
  config.train.checkpoint_every_steps = 3
  config.train.log_every_steps = 2
  config.train.image_every_steps = 5
  config.eval.lpips = False
  config.eval.chamfer_samples = 2000
  config.loss.posed_penetration_samples = 512
  return config


def fresh_trained(config) -> restore.Trained:
  """An untrained run (J^S = the template's Jacobians, J^D off) posed per frame, as evaluation and
  export receive a trained one: for the tests of what reads a Trained, without training."""
  run = run_lib.Run(config, pipeline.load_inputs(config))
  constants = run.fit_constants()
  state, mesh = run.init_state(constants, jax.random.PRNGKey(0))
  return restore.pose_trained(run, run_lib.GeometryResult(constants, state, mesh, {'phase': 'done'}), None, 0)


def placed_start(config, devices: int):
  """A fresh run, its step settings on `devices` devices, and its state, mesh and constants placed as
  train_geometry places them."""
  run = run_lib.Run(config, pipeline.load_inputs(config))
  constants = run.fit_constants()
  state, mesh = run.init_state(constants, jax.random.PRNGKey(0))
  settings = train.step_settings(run)._replace(devices=devices)
  return run, settings, placement.place((state, mesh, constants), devices)


def placed_step_inputs(config, devices: int):
  """The inputs of step 0, placed as train_geometry places them."""
  run, settings, (state, mesh, constants) = placed_start(config, devices)
  frames, slots = placement.step_frames_on_device(run, placement.step_indices(run, 0), devices, settings.streamed)
  batch = placement.step_batch(run, 0, 1.0, run.pose_codes(constants), slots, devices)
  return settings, (state, mesh, constants, frames, batch, placement.place(loop.LogSums.zeros(train.METRICS), devices))
