"""frames.py: which sequence frames train, and the bank decoded at the training resolution (the same
camera in clip space at every resolution, masks resized with the images)."""

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
