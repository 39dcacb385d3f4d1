"""Tests of what evaluation writes to TensorBoard, read back from the events files.

The end-to-end run (tests/test_train.py) checks the same tags on a trained tiny run; here the
values are hand-made so that every step, value and pixel can be compared exactly.
"""

import numpy as np
import pytest

from ngd_jax import evaluate
from ngd_jax import reporting


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
