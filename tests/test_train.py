"""End to end on a tiny synthetic sequence: train (with a remesh), evaluate, export, and resume.

One uninterrupted run is compared with a run killed twice (after the remesh, and during the
appearance phase) and resumed each time from its workdir: the final parameters must agree.
"""

import json
import os

import jax
import numpy as np
import pytest

from configs import demo
from ngd_jax import checkpoint
from ngd_jax import export
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
  return config


def final_state(workdir):
  ckpt = checkpoint.Checkpointer(workdir, keep=3)
  meta = ckpt.read_meta()
  state = ckpt._manager.restore(ckpt.latest_step())  # pylint: disable=protected-access
  ckpt.close()
  return meta, state


@pytest.fixture(scope='module')
def uninterrupted(sequence_path, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  train.train_and_evaluate(tiny_config(sequence_path), workdir)
  return workdir


def test_run_writes_metrics_and_remeshes(uninterrupted):
  with open(os.path.join(uninterrupted, 'metrics.json')) as f:
    metrics = json.load(f)
  for method in ('reconstruction', 'lbs_baseline'):
    for key in ('chamfer_sq_x1e3', 'chamfer_mm', 'normal_consistency', 'psnr', 'ssim'):
      assert np.isfinite(metrics[method][key]), (method, key)
  assert metrics['frames'] == 4 and len(metrics['per_frame']) == 4
  meta, _ = final_state(uninterrupted)
  assert meta['phase'] == 'done' and meta['remeshes'] == 1
  assert os.path.isfile(os.path.join(uninterrupted, 'config.json'))
  assert os.listdir(os.path.join(uninterrupted, 'tensorboard'))
  # One compile per variant (warm-up, full) and capacity bucket; the remesh stayed in its bucket
  # or added exactly one more.
  assert train.TRACES.counts['geometry_step'] <= 3


def test_export_writes_every_product(uninterrupted, sequence_path):
  export.export_run(tiny_config(sequence_path), uninterrupted)
  for name in ('garment.glb', 'garment_textured.obj', 'texture.png', 'meshes/canonical.obj',
               'meshes/posed/000000.obj', 'previews/grid.png', 'previews/preview.gif'):
    assert os.path.getsize(os.path.join(uninterrupted, name)) > 0, name


class Killed(Exception):
  """Stands for the process being killed at a chosen step."""


def test_killed_and_resumed_run_matches(uninterrupted, sequence_path, tmp_path, monkeypatch):
  config = tiny_config(sequence_path)
  calls = {'n': 0}
  original = train.check_finite

  def kill_at(*kill_calls):
    def check(metrics, step, ckpt):
      original(metrics, step, ckpt)
      calls['n'] += 1
      if calls['n'] in kill_calls:
        raise Killed(f'killed after call {calls["n"]}')
    return check

  # 4 frames x 4 epochs = 16 geometry steps (remesh after step 8, checkpoints every 3 steps),
  # then 8 appearance steps. Kill after geometry step 10 (resume from 9, taken after the remesh),
  # then after appearance step 3 (7 more geometry calls, then 4 appearance calls).
  monkeypatch.setattr(train, 'check_finite', kill_at(11, 22))
  workdir = str(tmp_path)
  with pytest.raises(Killed):
    train.train_and_evaluate(config, workdir)
  meta, _ = final_state(workdir)
  assert meta['remeshes'] == 1 and meta['phase'] == 'geometry'
  with pytest.raises(Killed):
    train.train_and_evaluate(config, workdir)
  assert final_state(workdir)[0]['phase'] == 'appearance'
  train.train_and_evaluate(config, workdir)
  (meta_a, state_a), (meta_b, state_b) = final_state(uninterrupted), final_state(workdir)
  assert meta_a['phase'] == meta_b['phase'] == 'done'
  leaves_a = jax.tree_util.tree_leaves_with_path(state_a['state'])
  leaves_b = dict(jax.tree_util.tree_leaves_with_path(state_b['state']))
  assert len(leaves_a) == len(leaves_b)
  for path, value in leaves_a:
    np.testing.assert_allclose(np.asarray(leaves_b[path]), np.asarray(value), rtol=1e-4, atol=1e-5,
                               err_msg=jax.tree_util.keystr(path))
