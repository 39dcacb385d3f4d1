"""End to end in the vertex-displacement baseline (geometry.parameterization = 'displacement',
issue 11): train on the tiny preset with one remesh, evaluate, export, and a run killed after the
remesh resumes to the uninterrupted run's final state (within 1e-5, as tests/test_train.py)."""

import json
import os

import numpy as np
import pytest
from test_train import Killed
from test_train import assert_same_final_state
from test_train import final_state
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config

from ngd_jax import export
from ngd_jax import loop
from ngd_jax import train


def test_displacement_baseline_trains_remeshes_evaluates_exports_and_resumes(sequence_path, tmp_path,
                                                                           monkeypatch):
  config = tiny_config(sequence_path)
  config.geometry.parameterization = 'displacement'
  config.remesh.blend_epochs = 2  # Still blending at the end (remesh after epoch 2 of 4): the target is kept.
  uninterrupted = str(tmp_path / 'uninterrupted')
  train.train_and_evaluate(config, uninterrupted)
  with open(os.path.join(uninterrupted, 'metrics.json')) as f:
    metrics = json.load(f)
  for key in ('chamfer_sq_x1e3', 'chamfer_mm', 'normal_consistency', 'psnr', 'ssim'):
    assert np.isfinite(metrics['reconstruction'][key]), key
  meta, state = final_state(uninterrupted)
  assert meta['phase'] == 'done' and meta['remeshes'] == 1
  geometry = state['state']['geometry']
  offsets, num_vertices = np.asarray(geometry['params']['static']), int(geometry['num_vertices'])
  vertex_capacity = np.asarray(geometry['rest_vertices']).shape[0]
  assert offsets.shape == (vertex_capacity, 3)  # Per-vertex offsets, not per-face Jacobians.
  assert np.asarray(geometry['blend_target']).shape == (4, vertex_capacity, 3)
  assert np.abs(offsets[:num_vertices]).max() > 0 and np.all(np.isfinite(offsets))
  export.export_run(config, uninterrupted)
  for name in ('garment.glb', 'garment_textured.obj', 'meshes/canonical.obj', 'meshes/posed/000000.obj'):
    assert os.path.getsize(os.path.join(uninterrupted, name)) > 0, name

  # Killed at step 10 (after the remesh at step 8; checkpoints at 3, 6, 8, 9), then resumed: the
  # resumed run must end where the uninterrupted one did. (Frames streamed to the devices one step
  # ahead train as resident ones: tests/test_train_step.py.)
  original_check = loop.check_finite

  def check(metrics, step, ckpt, interval):
    original_check(metrics, step, ckpt, interval)
    if step == 10:
      raise Killed('killed at step 10')

  monkeypatch.setattr(loop, 'check_finite', check)
  resumed = str(tmp_path / 'resumed')
  with pytest.raises(Killed):
    train.train_and_evaluate(config, resumed)
  monkeypatch.setattr(loop, 'check_finite', original_check)
  train.train_and_evaluate(config, resumed)
  assert_same_final_state(uninterrupted, resumed)
