"""People-Snapshot import (ngd_jax.data.people_snapshot): the synthetic tiny clip written in the
subject layout (mp4, camera.pkl, masks.hdf5, reconstructed_poses.hdf5, consensus.pkl)."""

import pathlib
import pickle
import shutil

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ngd_jax import data
from ngd_jax.data import capture
from ngd_jax.data import people_snapshot
from tests import capture_fixtures

BODY_TOLERANCE = 2e-4  # m: float32 SMPL forward vs the generator's LBS.


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
  return capture_fixtures.Clip(tmp_path_factory.mktemp('snapshot'))


def write_subject(clip, root: pathlib.Path, num_poses: int | None = None, mask_size=None,
                  camera_t_offset=(0.0, 0.0, 0.0)) -> pathlib.Path:
  """The subject folder of People-Snapshot (module docstring of people_snapshot) for the clip."""
  subject = root / 'female-9-synthetic'
  subject.mkdir(parents=True)
  shutil.copy(clip.video(), subject / 'female-9-synthetic.mp4')
  w2c = np.asarray(clip.camera.world_to_camera, np.float64)
  k = np.asarray(clip.camera.K, np.float64)
  camera = {'camera_f': np.array([k[0, 0], k[1, 1]]), 'camera_c': np.array([k[0, 2], k[1, 2]]),
            'camera_k': np.zeros(5), 'camera_rt': Rotation.from_matrix(w2c[:3, :3]).as_rotvec(),
            'camera_t': w2c[:3, 3] + np.asarray(camera_t_offset), 'width': clip.size[1], 'height': clip.size[0]}
  with (subject / 'camera.pkl').open('wb') as f:
    pickle.dump(camera, f, protocol=2)
  masks = np.stack([clip.person_mask(t) for t in range(len(clip.names))]).astype(np.uint8)
  if mask_size is not None:
    masks = np.zeros((len(masks),) + mask_size, np.uint8)
  with h5py.File(subject / 'masks.hdf5', 'w') as f:
    f.create_dataset('masks', data=masks)
  n = num_poses or len(clip.names)
  with h5py.File(subject / 'reconstructed_poses.hdf5', 'w') as f:
    f.create_dataset('betas', data=np.zeros(10))
    f.create_dataset('pose', data=clip.poses[:n])
    f.create_dataset('trans', data=clip.transl[:n])
  with (subject / 'consensus.pkl').open('wb') as f:
    pickle.dump({'betas': np.zeros(10), 'v_personal': np.zeros((6890, 3))}, f, protocol=2)
  return subject


def _convert(clip, subject, tmp_path, **kwargs):
  s = people_snapshot.Subject(subject)
  inputs = capture.Inputs(capture.MaskSource(clip.write_binary_masks(tmp_path / 'sam')), **kwargs)
  return capture.convert(s.clip, s.track, inputs, str(clip.model), tmp_path / 'seq', 'lower',
                         template=str(clip.seq.template_path), person=s.person)


def test_subject_imports_to_the_generators_sequence(clip, tmp_path):
  subject = write_subject(clip, tmp_path)
  report = _convert(clip, subject, tmp_path, normals=str(clip.write_normals(tmp_path / 'normals')))
  assert data.validate_sequence(tmp_path / 'seq') == []
  seq = data.read_sequence(tmp_path / 'seq')
  assert report.normal_axes == 'x,y,z' and report.min_overlap >= capture.MIN_BODY_IN_PERSON
  np.testing.assert_allclose(seq.world_to_camera[0], clip.camera.world_to_camera, atol=1e-5)
  np.testing.assert_allclose(seq.K[0], clip.camera.K, atol=1e-4)
  assert 'People-Snapshot subject female-9-synthetic' in seq.source
  for t in range(seq.num_frames):
    np.testing.assert_allclose(seq.body.posed_vertices[t], clip.seq.body.posed_vertices[t], atol=BODY_TOLERANCE)
    np.testing.assert_array_equal(seq.load_frame(t).mask > 0, clip.garment_mask(t))


def test_frames_without_poses_are_refused(clip, tmp_path):
  subject = write_subject(clip, tmp_path, num_poses=2)
  with pytest.raises(capture.CaptureError) as e:
    _convert(clip, subject, tmp_path)
  assert 'reconstructed_poses.hdf5' in str(e.value) and 'frames missing: 000002, 000003' in str(e.value)


def test_masks_of_another_size_are_refused(clip, tmp_path):
  subject = write_subject(clip, tmp_path, mask_size=(32, 32))
  with pytest.raises(capture.CaptureError) as e:
    people_snapshot.Subject(subject)
  assert str(subject / 'masks.hdf5') in str(e.value) and '32x32' in str(e.value)


def test_a_wrong_camera_fails_the_body_check(clip, tmp_path):
  subject = write_subject(clip, tmp_path, camera_t_offset=(0.6, 0.0, 0.0))
  with pytest.raises(capture.CaptureError) as e:
    _convert(clip, subject, tmp_path)
  assert 'does not match the masks in 4 of 4 frames' in str(e.value) and 'reconstructed_poses.hdf5' in str(e.value)


def test_missing_files_are_named(tmp_path):
  (tmp_path / 'subject').mkdir()
  with pytest.raises(capture.CaptureError) as e:
    people_snapshot.Subject(tmp_path / 'subject')
  assert str(tmp_path / 'subject' / 'camera.pkl') in str(e.value) and '--subject' in str(e.value)
