"""frames.py: which sequence frames train, and the bank decoded at the training resolution (the same
camera in clip space at every resolution, masks resized with the images)."""

import gpytoolbox
import numpy as np
import pytest

from ngd_jax import configuration
from ngd_jax import data
from ngd_jax import frames
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config


def test_training_indices_select_first_stride_and_count(sequence_path):
  config = tiny_config(sequence_path).data
  config.first_frame, config.frame_stride, config.num_frames = 1, 3, -1
  np.testing.assert_array_equal(frames.training_indices(10, config), [1, 4, 7])
  config.num_frames = 2
  np.testing.assert_array_equal(frames.training_indices(10, config), [1, 4])
  config.num_frames = 4
  with pytest.raises(configuration.ConfigError, match=r'select 3\. Fix: ask for at most 3'):
    frames.training_indices(10, config)
  config.first_frame = 10
  with pytest.raises(configuration.ConfigError, match=r'first_frame=10 is outside the sequence\'s 10 frames'):
    frames.training_indices(10, config)


def test_bank_is_decoded_at_the_training_resolution(sequence_path):
  config = tiny_config(sequence_path)
  seq = data.read_sequence(sequence_path)
  banks = {}
  for resolution in (64, 32):
    config.data.resolution = resolution
    banks[resolution] = frames.load_frames(seq, config)
  big, small = banks[64], banks[32]
  assert small.resolution == (32, 32) and small.rgb.shape == (4, 32, 32, 3) and small.target.shape == (4, 32, 32, 1)
  assert set(np.unique(small.mask)) <= {0, 1} and small.mask.any()
  np.testing.assert_allclose(small.world_to_clip, big.world_to_clip, rtol=1e-5, atol=1e-6)  # Same camera.
  halved = big.mask.reshape(4, 32, 2, 32, 2).mean(axis=(2, 4))  # 2 x 2 blocks of the 64-pixel mask.
  decided = (halved == 0) | (halved == 1)  # Blocks wholly inside or outside the garment.
  np.testing.assert_array_equal(small.mask[decided], halved[decided])
  np.testing.assert_array_equal(small.indices, big.indices)


def test_body_samples_are_the_same_body_points_in_every_frame_with_outward_normals(sequence_path):
  seq = data.read_sequence(sequence_path)
  indices = np.array([0, 2])
  points, normals = frames.body_samples(seq.body, indices, 300, seed=0)
  assert points.shape == normals.shape == (2, 300, 3) and points.dtype == np.float32
  posed = np.asarray(frames.posed_body(seq.body, indices))
  chosen = np.flatnonzero(np.all(np.isclose(posed[0][:, None], points[0][None]), axis=-1).any(axis=1))
  assert len(chosen) == 300
  np.testing.assert_allclose(points[1], posed[1][chosen], atol=1e-6)  # The same vertices, posed in frame 2.
  np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, rtol=1e-5)
  for t in range(2):  # 5 mm along each normal is outside the body, 5 mm against it inside, nearly everywhere.
    distance = lambda offset: gpytoolbox.signed_distance(
        (points[t] + offset * normals[t]).astype(np.float64), posed[t].astype(np.float64), seq.body.faces)[0]
    assert np.mean(distance(0.005) > 0) > 0.95 and np.mean(distance(-0.005) < 0) > 0.9
  assert frames.body_samples(seq.body, indices, 0, seed=0)[0].shape == (2, 0, 3)
