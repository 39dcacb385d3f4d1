"""Tests of evaluation without ground truth (training-view metrics) and of what it writes to TensorBoard.

The end-to-end run (tests/test_train.py) checks the same tags on a trained tiny run; here the
values are hand-made so that every step, value and pixel can be compared exactly.
"""

import logging
import pathlib
import types

import numpy as np
import pytest

from configs import default
from ngd_jax import data
from ngd_jax import evaluate
from ngd_jax import frames as frames_lib
from ngd_jax import metrics
from ngd_jax import reporting

SIZE = (16, 16)
# A 1.2 m square 2 m in front of an f = 20 px camera: pixel columns and rows 2-13 (centres at integers).
QUAD = np.array([[-0.6, -0.6, 2.0], [0.6, -0.6, 2.0], [0.6, 0.6, 2.0], [-0.6, 0.6, 2.0]], np.float32)
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
SHIFT = 0.2  # m along x in frame 1: 2 pixels.
# The body: a strip 1 m from the camera over pixel columns 12-15, in front of the square in both frames.
BODY = np.array([[0.2, -1.0, 1.0], [0.5, -1.0, 1.0], [0.5, 1.0, 1.0], [0.2, 1.0, 1.0]], np.float32)


def _clip_without_ground_truth():
  """A trained run stand-in (no appearance yet) on a clip with neither gt meshes nor held-out views:
  the training frames show the square, left half red, right half blue, up to the body in front of its
  columns 12-13; the LBS baseline is the square in frame 0 and the square moved 2 pixels right in frame 1."""
  config = default.get_config()
  config.eval.lpips = False
  camera = data.Camera(np.array([[20.0, 0, 7.5], [0, 20.0, 7.5], [0, 0, 1]], np.float32), np.eye(4, dtype=np.float32))
  world_to_clip = frames_lib.clip_matrix(camera, SIZE, config.render)
  mask = np.zeros(SIZE, np.uint8)
  mask[2:14, 2:12] = 1  # Columns 12-13 of the square are behind the body.
  rgb = np.zeros(SIZE + (3,), np.uint8)
  rgb[2:14, 2:8, 0] = 255
  rgb[2:14, 8:14, 2] = 255
  bank = types.SimpleNamespace(indices=np.arange(2), rgb=np.stack([rgb, rgb]), mask=np.stack([mask, mask]),
                               world_to_clip=np.stack([world_to_clip, world_to_clip]),
                               pose=np.zeros((2, 72), np.float32), num_frames=2)
  baseline = np.stack([QUAD, QUAD + [SHIFT, 0.0, 0.0]])
  body = types.SimpleNamespace(posed_vertices=np.stack([BODY, BODY]), faces=QUAD_FACES)
  sequence = types.SimpleNamespace(path=pathlib.Path('clip'), frames=('000000', '000001'), gt_frames=frozenset(),
                                   eval_cameras={}, body=body)
  run = types.SimpleNamespace(config=config, bank=bank, template_skinned=lambda: baseline,
                              inputs=types.SimpleNamespace(sequence=sequence, template_faces=QUAD_FACES))
  return types.SimpleNamespace(run=run, appearance=None, posed=baseline, faces=QUAD_FACES,
                               geometry=types.SimpleNamespace(meta={'wall_seconds': 1.0})), rgb, mask


def test_training_view_metrics_without_ground_truth(caplog):
  trained, rgb, mask = _clip_without_ground_truth()
  with caplog.at_level(logging.WARNING):
    result = evaluate.evaluate_trained(trained)
  assert 'clip: no gt/garment meshes (Chamfer, normal consistency) and no held-out views' in caplog.text
  target = rgb / 255.0 * mask[..., None]
  colour = target[mask > 0].mean(axis=0)  # The baseline's flat colour: the garment's mean, purple here.
  # Frame 1's square is 2 pixels to the right; the body hides columns 12-15 of both (eval.body_occlusion).
  for t, columns in enumerate((slice(2, 12), slice(4, 12))):
    flat = np.zeros_like(target)
    flat[2:14, columns] = colour
    expected = -10.0 * np.log10(np.mean((flat - target) ** 2))
    assert result['per_frame'][t]['lbs_baseline']['train_view_psnr'] == pytest.approx(expected, abs=1e-3)
    # No appearance trained: nothing to render; the share inside the body needs no ground truth (none: the body
    # is in front of the garment, not through it).
    assert result['per_frame'][t]['reconstruction'] == {'inside_body_pct': 0.0}
  baseline = result['lbs_baseline']
  assert baseline['train_view_psnr'] == pytest.approx(np.mean([f['lbs_baseline']['train_view_psnr']
                                                               for f in result['per_frame']]))
  assert 0.0 < baseline['train_view_ssim'] < 1.0 and 'train_view_lpips' not in baseline
  assert result['train_view_psnr'] is None and result['train_view_ssim'] is None  # Top level: the reconstruction's.
  assert result['worst_chamfer_ratio'] is None
  rows = [line.split()[0] for line in metrics.format_table(result).splitlines()[2:]]
  assert rows == ['train_view_psnr', 'train_view_ssim', 'train_view_silhouette_iou', 'train_view_covered_psnr',
                  'inside_body_pct']  # Only the rows with values.


def test_missing_ground_truth_is_named_only_when_missing():
  seq = types.SimpleNamespace(path=pathlib.Path('seq'), gt_frames=frozenset({'000000'}), eval_cameras={'side': None})
  assert evaluate.missing_ground_truth(seq) is None
  seq.eval_cameras = {}
  assert evaluate.missing_ground_truth(seq).startswith('seq: no held-out views (gt/views image metrics); reporting')


def _result():
  """Three frames; the middle one has no ground-truth mesh, hence no Chamfer."""
  return {'per_frame': [
      {'frame': '000010', 'reconstruction': {'chamfer_sq_x1e3': 1.25, 'psnr': 20.0},
       'lbs_baseline': {'chamfer_sq_x1e3': 2.5}},
      {'frame': '000012', 'reconstruction': {'psnr': 21.0}, 'lbs_baseline': {}},
      {'frame': '000014', 'reconstruction': {'chamfer_sq_x1e3': 3.0}, 'lbs_baseline': {'chamfer_sq_x1e3': 0.5}},
  ]}


def test_log_to_tensorboard_writes_per_frame_chamfer_curves_and_pictures(tmp_path):
  rng = np.random.default_rng(0)
  pictures = {'000010': rng.integers(0, 256, (12, 30, 3), dtype=np.uint8),
              '000014': rng.integers(0, 256, (12, 30, 3), dtype=np.uint8)}
  reporter = reporting.Reporter(str(tmp_path))
  evaluate.log_to_tensorboard(reporter, _result(), frame_indices=[10, 12, 14], step=77, pictures=pictures)
  reporter.close()
  events = reporting.read_events(str(tmp_path))
  curve = evaluate.CHAMFER_CURVE_PREFIX
  # Steps are the sequence frame indices; frame 12 (no ground truth) has no point.
  assert events.scalars == {f'{curve}/reconstruction': [(10, 1.25), (14, 3.0)],
                            f'{curve}/lbs_baseline': [(10, 2.5), (14, 0.5)]}
  assert sorted(events.images) == [f'{evaluate.PICTURE_PREFIX}/000010', f'{evaluate.PICTURE_PREFIX}/000014']
  for name, picture in pictures.items():
    [(step, logged)] = events.images[f'{evaluate.PICTURE_PREFIX}/{name}']
    assert step == 77
    np.testing.assert_array_equal(logged, picture)  # PNG: lossless.
  reporter = reporting.Reporter(str(tmp_path / 'other'))
  with pytest.raises(ValueError):  # A per-frame list that does not match its frame indices.
    evaluate.log_to_tensorboard(reporter, _result(), [10, 12], 77, {})
  reporter.close()


def test_float_images_are_clipped_and_a_damaged_events_file_is_refused(tmp_path):
  reporter = reporting.Reporter(str(tmp_path))
  reporter.image(3, 'picture', np.array([[[-1.0, 0.0, 2.0]]]))
  reporter.close()
  [(step, logged)] = reporting.read_events(str(tmp_path)).images['picture']
  assert step == 3
  np.testing.assert_array_equal(logged, [[[0, 0, 255]]])
  [path] = tmp_path.glob('events.out.tfevents.*')
  data = bytearray(path.read_bytes())
  data[-5] ^= 0xFF  # A byte of the last record's protobuf.
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError, match='corrupt record'):
    reporting.read_events(str(tmp_path))
  path.write_bytes(bytes(data[:-2]))
  with pytest.raises(ValueError, match='truncated record'):
    reporting.read_events(str(tmp_path))


def test_image_metrics_split_the_error_into_silhouette_and_texture():
  """A render one pixel right of a 4x4 garment and 0.1 too bright: IoU 12 / 20, covered PSNR 20 dB (the
  texture's error alone); the whole-image PSNR mixes in the column the render misses (0.5 off) and the one it
  adds (0.6 off), over all 24 x 24 pixels."""
  mask = np.zeros((24, 24), np.float32)  # SSIM's 11-pixel window needs room.
  mask[10:14, 10:14] = 1.0
  drawn = np.roll(mask, 1, axis=1)
  target = 0.5 * mask[..., None] * np.ones(3, np.float32)
  pred = 0.6 * drawn[..., None] * np.ones(3, np.float32)
  out = evaluate.image_metrics(pred, target, False, drawn, mask)
  assert out['silhouette_iou'] == pytest.approx(12 / 20)
  assert out['covered_psnr'] == pytest.approx(20.0, abs=1e-4)
  assert out['psnr'] == pytest.approx(-10 * np.log10((12 * 0.1**2 + 4 * 0.5**2 + 4 * 0.6**2) / 24**2), abs=1e-4)
  assert np.isnan(evaluate.image_metrics(pred, target, False, np.zeros_like(mask), mask)['covered_psnr'])
