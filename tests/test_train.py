"""End to end on a tiny synthetic sequence: train (with a remesh), evaluate, export, and resume.

One uninterrupted run is compared with runs that were killed at random steps (and mid-save), whose
checkpoint write failed, or whose latest checkpoint was corrupted, each resumed from its workdir:
the final parameters must agree within 1e-5. Set NGD_JAX_KILL_SEED to draw other kill points.
"""

import json
import os
import pathlib
import shutil

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from ngd_jax import checkpoint
from ngd_jax import data
from ngd_jax import evaluate
from ngd_jax import export
from ngd_jax import images
from ngd_jax import loop
from ngd_jax import pipeline
from ngd_jax import reporting
from ngd_jax import restore
from ngd_jax import run as run_lib
from ngd_jax import train
from ngd_jax import workdir as workdir_lib
from tests.train_fixtures import placed_step_inputs
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config


def final_state(workdir):
  ckpt = checkpoint.Checkpointer(workdir, keep=3)
  meta = ckpt.read_meta()
  state = ckpt._manager.restore(ckpt.latest_step())  # pylint: disable=protected-access
  ckpt.close()
  return meta, state


# Compiles of the geometry step during the uninterrupted run alone (the counter is process-wide, and
# other test modules of the same pytest worker train too).
_STEP_COMPILES = {}


@pytest.fixture(scope='module')
def uninterrupted(sequence_path, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  before = train.TRACES.counts['geometry_step']
  train.train_and_evaluate(tiny_config(sequence_path), workdir)
  _STEP_COMPILES['uninterrupted'] = train.TRACES.counts['geometry_step'] - before
  return workdir


def test_run_writes_metrics_and_remeshes(uninterrupted, sequence_path):
  with open(os.path.join(uninterrupted, 'metrics.json')) as f:
    metrics = json.load(f)
  for method in ('reconstruction', 'lbs_baseline'):
    for key in ('chamfer_sq_x1e3', 'chamfer_mm', 'normal_consistency', 'psnr', 'ssim'):
      assert np.isfinite(metrics[method][key]), (method, key)
  assert metrics['frames'] == 4 and len(metrics['per_frame']) == 4
  names = [frame['frame'] for frame in metrics['per_frame']]
  for method in ('reconstruction', 'lbs_baseline'):  # 4 frames split into thirds of 2, 1 and 1.
    thirds = metrics[method]['thirds']
    assert [third['frames'] for third in thirds] == [names[0:2], names[2:3] * 2, names[3:4] * 2]
    chamfers = [frame[method]['chamfer_sq_x1e3'] for frame in metrics['per_frame']]
    np.testing.assert_allclose([third['chamfer_sq_x1e3'] for third in thirds],
                               [np.mean(chamfers[0:2]), chamfers[2], chamfers[3]], rtol=1e-12)
    assert all(np.isfinite(third['normal_consistency']) for third in thirds)
  worst = metrics['worst_chamfer_ratio']
  [worst_frame] = [frame for frame in metrics['per_frame'] if frame['frame'] == worst['frame']]
  assert worst['ratio'] == pytest.approx(worst_frame['reconstruction']['chamfer_sq_x1e3'] /
                                         worst_frame['lbs_baseline']['chamfer_sq_x1e3'], rel=1e-12)
  # TensorBoard: per-frame Chamfer curves (step = frame index) and, for every frame (preview_frames
  # >= 4), the export's row at the final step 24: input, render, error, held-out image and render per
  # held-out camera, side view of the reconstruction, of the ground truth, silhouettes.
  events = reporting.read_events(os.path.join(uninterrupted, 'tensorboard'))
  for method in ('reconstruction', 'lbs_baseline'):
    curve = events.scalars[f'{evaluate.CHAMFER_CURVE_PREFIX}/{method}']
    assert [step for step, _ in curve] == [0, 1, 2, 3]
    np.testing.assert_allclose([value for _, value in curve],
                               [frame[method]['chamfer_sq_x1e3'] for frame in metrics['per_frame']], rtol=1e-6)
  pictures = {tag: logged for tag, logged in events.images.items() if tag.startswith(evaluate.PICTURE_PREFIX)}
  assert sorted(pictures) == sorted(f'{evaluate.PICTURE_PREFIX}/{name}' for name in names)
  panels = 3 + 2 * len(data.read_sequence(tiny_config(sequence_path).data.path).eval_cameras) + 3
  for [(step, picture)] in pictures.values():
    assert step == 24 and picture.shape[1] == panels * 64 + (panels - 1) * 2
  meta, _ = final_state(uninterrupted)
  assert meta['phase'] == 'done' and meta['remeshes'] == 1
  assert not meta['blend_target']  # Blended over 1 epoch after the remesh, then freed.
  assert os.path.isfile(os.path.join(uninterrupted, 'config.json'))
  assert os.listdir(os.path.join(uninterrupted, 'tensorboard'))
  # One compile per variant (warm-up, full) and capacity bucket; the remesh stayed in its bucket
  # or added exactly one more.
  assert _STEP_COMPILES['uninterrupted'] <= 3


def obj_arrays(path):
  """The vertices (float64 [V, 3]) and 0-based faces (int [F, 3]) of an OBJ written by export.write_obj."""
  lines = [line.split() for line in pathlib.Path(path).read_text().splitlines()]
  return (np.array([line[1:] for line in lines if line[0] == 'v'], np.float64),
          np.array([line[1:] for line in lines if line[0] == 'f'], np.int64) - 1)


def test_export_writes_every_product(uninterrupted, sequence_path):
  """The export holds the restored run's posed and canonical garment, its texture and one animation
  frame per training frame (the writers' formats are tests/test_export.py's)."""
  config = tiny_config(sequence_path)
  export.export_run(config, uninterrupted)
  trained = restore.load_trained(config, uninterrupted)
  names = [trained.run.inputs.sequence.frames[int(i)] for i in trained.run.bank.indices]
  for t, name in enumerate(names):
    vertices, faces = obj_arrays(os.path.join(uninterrupted, 'meshes', 'posed', f'{name}.obj'))
    np.testing.assert_allclose(vertices, trained.posed[t], rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(faces, trained.faces)
  canonical, canonical_faces = obj_arrays(os.path.join(uninterrupted, 'meshes', 'canonical.obj'))
  np.testing.assert_array_equal(canonical_faces, trained.faces)
  assert canonical.shape == trained.posed[0].shape
  texture = np.clip(np.asarray(trained.appearance.params['static']), 0.0, 1.0)
  np.testing.assert_array_equal(iio.imread(os.path.join(uninterrupted, 'texture.png')), images.to_uint8(texture))
  assert iio.imread(os.path.join(uninterrupted, 'previews', 'preview.gif'), index=None).shape[0] == len(names)
  with open(os.path.join(uninterrupted, 'garment.glb'), 'rb') as f:
    assert f.read(4) == b'glTF'


def test_two_frames_per_step_end_mid_blend(sequence_path, tmp_path, monkeypatch):
  """2 frames per step (3 epochs of 2 steps, streamed), a remesh after epoch 0 blended in over 2 epochs: training
  ends with the blend under way (network weight 1/2). Evaluation right after training (the state in
  memory), --mode=eval and export (restored) pose the garment with the last step's blend weight, and
  training and restoring each check the workdir once."""
  config = tiny_config(sequence_path)
  config.train.frames_per_step, config.train.num_epochs, config.train.warmup_epochs = 2, 3, 0
  config.remesh.epochs, config.remesh.blend_epochs = (1,), 2
  config.appearance.enabled = False
  config.train.image_every_steps, config.export.preview_frames = 100, 0  # No pictures: not what this tests.
  # Each step's frames streamed to the devices one step ahead: the loop's streamed path, run end to end
  # (its steps equal resident ones: tests/test_train_step.py). This test's step is its own compile either way.
  config.train.device_frames_max_gb = 0.0
  workdir = str(tmp_path)
  batches, checks = [], []
  original_batch, original_check = run_lib.Run.batch, workdir_lib.check

  def batch(self, *args, **kwargs):
    batches.append(original_batch(self, *args, **kwargs))
    return batches[-1]

  def check(*args):
    checks.append(args)
    original_check(*args)

  monkeypatch.setattr(run_lib.Run, 'batch', batch)
  monkeypatch.setattr(workdir_lib, 'check', check)
  trained = train.train_and_evaluate(config, workdir)
  assert len(checks) == 1 and len(batches) == 6
  assert batches[-1].blend_weight == 0.5 and trained.geometry.state.blend_target is not None
  run, (constants, state, mesh, _) = trained.run, trained.geometry
  codes = run.pose_codes(constants)

  def posed_at(weight):
    return np.stack([
        run_lib.deform_frame(run.model, state.params, constants.field_bounds, mesh,
                             pipeline.frame_inputs(run.bank, t, codes[t]), run_lib.frame_blend_target(state, t),
                             np.float32(weight), True).posed[: trained.posed.shape[1]]
        for t in range(run.bank.num_frames)])

  np.testing.assert_allclose(trained.posed, posed_at(batches[-1].blend_weight), rtol=0, atol=1e-6)
  assert np.abs(trained.posed - posed_at(0.0)).max() > 1e-4  # The blend weight shows in the garment.
  checks.clear()
  restored = restore.load_trained(config, workdir)  # What --mode=eval and export measure and write.
  assert len(checks) == 1
  np.testing.assert_allclose(restored.posed, trained.posed, rtol=0, atol=1e-6)


class Killed(Exception):
  """Stands for the process being killed at a chosen step."""


def assert_same_final_state(workdir_a, workdir_b):
  """The final checkpoints of two runs agree leaf by leaf within 1e-5."""
  (meta_a, state_a), (meta_b, state_b) = final_state(workdir_a), final_state(workdir_b)
  assert meta_a['phase'] == meta_b['phase'] == 'done'
  leaves_a = jax.tree_util.tree_leaves_with_path(state_a['state'])
  leaves_b = dict(jax.tree_util.tree_leaves_with_path(state_b['state']))
  assert len(leaves_a) == len(leaves_b)
  for path, value in leaves_a:
    np.testing.assert_allclose(np.asarray(leaves_b[path]), np.asarray(value), rtol=1e-5, atol=1e-5,
                               err_msg=jax.tree_util.keystr(path))


def snapshot(workdir):
  """Every file of a folder and its bytes."""
  return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(pathlib.Path(workdir).rglob('*')) if p.is_file()}


@pytest.mark.parametrize('seed', [int(os.environ.get('NGD_JAX_KILL_SEED', '0'))])
def test_killed_at_random_points_and_resumed_run_matches(uninterrupted, sequence_path, tmp_path, monkeypatch, seed):
  """Five kills (one in the warm-up, one after the remesh, one in the appearance phase, two anywhere,
  one of them in the middle of a checkpoint write), each resumed from the workdir."""
  config = tiny_config(sequence_path)
  # 4 frames x 4 epochs = 16 geometry steps (warm-up 0-3, remesh after step 8), then 8 appearance
  # steps numbered 16-23 as their checkpoints are; checkpoints every 3 steps and at phase ends.
  rng = np.random.default_rng(seed)
  targets = {int(rng.integers(0, 4)), int(rng.integers(9, 16)), int(rng.integers(16, 24))}
  while len(targets) < 5:
    targets.add(int(rng.integers(0, 24)))
  mid_save = sorted(targets)[int(rng.integers(0, 5))]  # This kill lands in the first save after its step.
  original_advance, original_save = reporting.Reporter.advance, checkpoint.Checkpointer.save
  state = {'armed_save': False}

  def advance(self, steps=1):  # Called once per step, after the step and before anything is saved.
    original_advance(self, steps)
    step = self._bar.n - 1 + (16 if self._bar.desc == 'appearance' else 0)  # pylint: disable=protected-access
    if step in targets:
      targets.discard(step)
      if step == mid_save:
        state['armed_save'] = True
      else:
        raise Killed(f'killed at step {step} (seed {seed})')

  def save(self, step, tree, meta):
    if state['armed_save']:  # Killed while orbax writes: a temporary folder is left, not finalised.
      state['armed_save'] = False
      os.makedirs(os.path.join(self.directory, f'{step}.orbax-checkpoint-tmp', 'state'))
      raise Killed(f'killed while saving checkpoint {step} (seed {seed})')
    original_save(self, step, tree, meta)

  monkeypatch.setattr(reporting.Reporter, 'advance', advance)
  monkeypatch.setattr(checkpoint.Checkpointer, 'save', save)
  workdir = str(tmp_path)
  kills = 0
  while True:
    try:
      train.train_and_evaluate(config, workdir)
      break
    except Killed:
      kills += 1
  assert kills == 5 and not targets, f'seed {seed}'
  assert_same_final_state(uninterrupted, workdir)


def test_finished_run_reruns_and_survives_a_corrupt_checkpoint(uninterrupted, sequence_path, tmp_path, caplog):
  """Total steps a multiple of the checkpoint interval (the last step was saved twice: a crash); a
  rerun re-evaluates; a truncated latest checkpoint falls back to the previous one in eval, export
  and train."""
  config = tiny_config(sequence_path)
  config.train.checkpoint_every_steps = 4  # 16 geometry steps, 8 appearance steps: both multiples.
  workdir = str(tmp_path)
  train.train_and_evaluate(config, workdir)
  train.train_and_evaluate(config, workdir)  # A finished run: no training, evaluated again.
  assert final_state(workdir)[0]['phase'] == 'done'
  ckpt = checkpoint.Checkpointer(workdir, keep=3)
  latest = ckpt.latest_step()
  ckpt.close()
  assert latest == 24
  metadata = os.path.join(workdir, 'checkpoints', '24', 'state', '_METADATA')
  with open(metadata, 'r+b') as f:
    f.truncate(os.path.getsize(metadata) // 2)
  evaluate.evaluate_run(config, workdir)
  assert 'checkpoints/24 is unreadable' in caplog.text and os.path.isdir(f'{workdir}/checkpoints/24.corrupt')
  export.export_run(config, workdir)
  train.train_and_evaluate(config, workdir)  # Resumes from 20, trains the last 4 appearance steps again.
  assert_same_final_state(uninterrupted, workdir)


def test_failed_save_stops_with_one_message_and_the_same_command_resumes(uninterrupted, sequence_path, tmp_path,
                                                                        monkeypatch):
  config = tiny_config(sequence_path)
  workdir = str(tmp_path)
  original = checkpoint.ocp.CheckpointManager.save

  def disk_full_at_12(self, step, *args, **kwargs):
    if step == 12:  # What tensorstore raises when the disk fills (os_error_code 28).
      os.makedirs(os.path.join(workdir, 'checkpoints', '12.orbax-checkpoint-tmp'))
      raise ValueError('OUT_OF_RANGE: Error writing "state": No space left on device [os_error_code=28]')
    return original(self, step, *args, **kwargs)

  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, 'save', disk_full_at_12)
  with pytest.raises(checkpoint.CheckpointError, match=r'could not write checkpoint 12 \(OUT_OF_RANGE.*No space left '
                     r'on device.*earlier checkpoints \[6, 8, 9\] are intact.*run the same command again'):
    train.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['6', '8', '9']
  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, 'save', original)  # Space freed.
  train.train_and_evaluate(config, workdir)
  assert_same_final_state(uninterrupted, workdir)


def test_workdir_refuses_other_inputs_and_stays_byte_identical(uninterrupted, sequence_path, tmp_path):
  before = snapshot(uninterrupted)
  config = tiny_config(sequence_path)
  config.geometry.hash_levels = 2
  config.train.log_every_steps = 7  # Free to change.
  with pytest.raises(workdir_lib.WorkdirError, match=r'changed: geometry\.hash_levels: 4 -> 2\. Fix: .*new --workdir'):
    train.train_and_evaluate(config, uninterrupted)
  other = tmp_path / 'other'
  shutil.copytree(sequence_path, other)
  meta = json.loads((other / 'sequence.json').read_text())
  (other / 'sequence.json').write_text(json.dumps(dict(meta, fps=meta['fps'] + 1)))
  with pytest.raises(workdir_lib.WorkdirError, match=r'changed: sequence sequence\.json differs'):
    train.train_and_evaluate(tiny_config(str(other)), uninterrupted)
  bad = tiny_config(sequence_path)
  bad.eval.checkpoint_step = 5  # Not kept: a user error, before anything is written.
  with pytest.raises(checkpoint.CheckpointError, match=r'no checkpoint 5\. Fix: pick one of'):
    evaluate.evaluate_run(bad, uninterrupted)
  assert snapshot(uninterrupted) == before


def test_non_finite_loss_names_a_sound_checkpoint(tmp_path):
  class Kept:  # The checkpointer as check_finite sees it.
    directory = str(tmp_path / 'checkpoints')

    def all_steps(self):
      return [10, 20, 30]

  loop.check_finite({'total': np.float32(1.0)}, 35, Kept(), 10)
  # Step 35 broke: 30 may hold the diverged update (only 5 finite steps after it), 20 is sound.
  with pytest.raises(loop.NonFiniteLossError, match=r"\['render', 'total'\] by step 35\. Checkpoint 20 is sound .*later ones "
                     r"\[30\] may hold diverged .*cp -r .*checkpoints/20 NEW/checkpoints/"):
    loop.check_finite({'render': np.float32(np.nan), 'total': np.float32(np.nan)}, 35, Kept(), 10)
  with pytest.raises(loop.NonFiniteLossError, match=r'no kept checkpoint .* is followed by 30 finite steps'):
    loop.check_finite({'total': np.float32(np.inf)}, 35, Kept(), 30)


def test_logging_intervals_do_not_recompile_the_step(sequence_path):
  """The step's static arguments hold only what changes the program: other logging, preview and
  checkpoint intervals, or a loss value the step does not read, reuse the compiled step; another loss
  weight traces a new one (lowered only: a new trace is a new compile, and XLA's compile is not what
  this tests)."""

  def traces(config, run_step):
    settings, inputs = placed_step_inputs(config, 1)
    before = train.TRACES.counts.get('geometry_step', 0)
    if run_step:
      jax.block_until_ready(train.jit_geometry_step(*inputs, settings=settings, dynamic=False))
    else:
      train.jit_geometry_step.lower(*inputs, settings=settings, dynamic=False)
    return train.TRACES.counts['geometry_step'] - before

  config = tiny_config(sequence_path)
  traces(config, run_step=True)
  config.train.log_every_steps, config.train.image_every_steps = 7, 11
  config.train.checkpoint_every_steps, config.train.keep_checkpoints = 13, 1
  config.loss.texture_erode += 1  # The appearance phase's.
  assert traces(config, run_step=True) == 0
  config.loss.jacobian_weight = 0.5
  assert traces(config, run_step=False) == 1
