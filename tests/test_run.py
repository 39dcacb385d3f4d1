"""run.py: the epoch of a step, the blend schedule after a remesh, a step's batch, and inference on an
untrained run (the template's own Jacobians give back the template)."""

import jax
import numpy as np
import pytest

from ngd_jax import configuration
from ngd_jax import pipeline
from ngd_jax import run as run_lib
from tests.train_fixtures import fresh_trained
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config


@pytest.fixture(scope='module')
def trained(sequence_path):
  return fresh_trained(tiny_config(sequence_path))


def test_epoch_of_a_step_counts_frames_per_step(sequence_path):
  config = tiny_config(sequence_path)  # 4 frames.
  config.train.frames_per_step = 2
  run = run_lib.Run(config, pipeline.load_inputs(config))
  assert run.steps_per_epoch == 2
  assert [run.epoch_of(step) for step in range(6)] == [0, 0, 1, 1, 2, 2]
  state = run.init_state(run.fit_constants(), jax.random.PRNGKey(0))[0]
  assert run.last_epoch(state) == -1  # No step yet.
  assert run.last_epoch(state._replace(step=np.int32(4))) == 1  # Steps 0-3 done: the last one in epoch 1.
  config.train.frames_per_step = 3
  with pytest.raises(configuration.ConfigError, match=r'frames_per_step = 3 does not divide the 4 training frames'):
    run_lib.Run(config, pipeline.load_inputs(config))


def test_blend_rises_over_blend_epochs_after_a_remesh(sequence_path):
  config = tiny_config(sequence_path)
  config.remesh.blend_epochs = 4
  assert run_lib.blend_weight(config, 7, run_lib.NO_BLEND_EPOCH) == 1.0
  assert [run_lib.blend_weight(config, epoch, 2) for epoch in (1, 2, 4, 6, 9)] == [1.0, 0.0, 0.5, 1.0, 1.0]
  assert [run_lib.blending_ended(config, epoch, 2) for epoch in (5, 6)] == [False, True]
  assert not run_lib.blending_ended(config, 10**6, run_lib.NO_BLEND_EPOCH)


def test_batch_noise_decays_and_is_drawn_from_seed_and_step(sequence_path):
  config = tiny_config(sequence_path)
  config.train.pose_noise_std, config.train.vertex_noise_std, config.train.vertex_noise_steps = 0.01, 0.002, 10
  run = run_lib.Run(config, pipeline.load_inputs(config))
  codes = run.pose_codes(run.fit_constants())
  ts = np.array([2, 0])
  first, again = run.batch(ts, 5, 0.5, codes), run.batch(ts, 5, 0.5, codes)
  np.testing.assert_array_equal(first.pose_code, again.pose_code)
  np.testing.assert_array_equal(first.slot, ts)  # All frames on the device: slots are the bank indices.
  assert not np.array_equal(first.pose_code, run.batch(ts, 6, 0.5, codes).pose_code)
  assert float(first.blend_weight) == 0.5 and int(first.step) == 5 and int(first.seed) == config.seed
  start, end = run.batch(ts, 0, 1.0, codes), run.batch(ts, config.train.vertex_noise_steps, 1.0, codes)
  middle = run.batch(ts, 5, 1.0, codes)
  assert [float(batch.vertex_noise_std) for batch in (start, middle, end)] == pytest.approx([0.002, 0.001, 0.0])


def test_untrained_run_gives_back_the_template(trained):
  """J^S = the template's Jacobians and no J^D: the canonical garment is the template, and each posed
  frame its LBS (up to the Poisson solve's float32 error)."""
  run = trained.run
  canonical, faces = run_lib.canonical_mesh(run, trained.geometry)
  np.testing.assert_array_equal(faces, run.inputs.template_faces)
  np.testing.assert_allclose(canonical, run.inputs.template_vertices, atol=1e-4)
  np.testing.assert_array_equal(trained.faces, run.inputs.template_faces)
  np.testing.assert_allclose(trained.posed, run.template_skinned(), atol=1e-4)
