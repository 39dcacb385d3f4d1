"""Host: a People-Snapshot subject -> NGD sequence folder (through ngd_jax.data.capture).

    python -m ngd_jax.data.people_snapshot --subject=people_snapshot_public/female-3-casual \\
        --masks=SAM_DIR --normals=SAPIENS_DIR --smpl_model=/path/to/SMPL_FEMALE.pkl --garment=upper \\
        --out=sequences/female-3-casual [--first --last --stride --resolution]

Layout of a subject folder (Alldieck et al., CVPR 2018, "Video Based Reconstruction of 3D People
Models"), as its loaders read it (InstantAvatar and anim-nerf scripts/peoplesnapshot, GART):

    <subject>/<subject>.mp4            the turning person, 1080 x 1080
    <subject>/camera.pkl               latin1 pickle: camera_f (2,) fx, fy; camera_c (2,) cx, cy;
                                       camera_k (5,) distortion; camera_rt (3,) Rodrigues and
                                       camera_t (3,) world -> camera; width, height
    <subject>/masks.hdf5               'masks' (N, H, W) uint8 person masks (non-zero = person)
    <subject>/reconstructed_poses.hdf5 'betas' (10,), 'pose' (N, 72) SMPL axis-angle, 'trans' (N, 3)
    <subject>/consensus.pkl            'betas', 'v_personal' (6890, 3) (clothing offsets: not used)

Frames are the video's (named 000000, ...); the SMPL fits, camera and person masks come from the
files above; garment masks, hands, normals and depth come from the user's tools exactly as for
ngd_jax.data.capture (same flags and checks; the person masks serve the body check). The camera's
lens distortion is not undone (the source text of sequence.json says so when camera_k is not zero).
"""

import pathlib
import pickle

from absl import flags
from absl import logging
import numpy as np
from scipy.spatial.transform import Rotation

from ngd_jax.data import capture
from ngd_jax.data import importing
from ngd_jax.data.sequence import Camera

FILES = ('camera.pkl', 'masks.hdf5', 'reconstructed_poses.hdf5')


class Subject:
  """A People-Snapshot subject folder: the clip, SMPL track, camera and person masks."""

  def __init__(self, path: str | pathlib.Path):
    import h5py  # pylint: disable=import-outside-toplevel
    self.path = pathlib.Path(path)
    for name in FILES:
      if not (self.path / name).is_file():
        raise capture.CaptureError(self.path / name, 'missing', 'pass a People-Snapshot subject folder with '
                                   f'--subject (it holds {", ".join(FILES)} and <subject>.mp4)')
    videos = sorted(self.path.glob('*.mp4'))
    if len(videos) != 1:
      raise capture.CaptureError(self.path, f'{len(videos)} .mp4 files, expected one (<subject>.mp4)',
                                 'keep the subject\'s own video only')
    self.clip = capture.open_video(videos[0])
    self.camera, self.distortion = self._read_camera(self.path / 'camera.pkl')
    masks_path = self.path / 'masks.hdf5'
    with h5py.File(masks_path, 'r') as f:
      if 'masks' not in f or f['masks'].ndim != 3:
        raise capture.CaptureError(masks_path, "no 'masks' dataset of shape (N, H, W)", 'restore the file')
      self.masks = np.asarray(f['masks'])
    if self.masks.shape[1:] != self.clip.size:
      raise capture.CaptureError(masks_path, f'masks are {self.masks.shape[1]}x{self.masks.shape[2]} but the '
                                 f'video is {self.clip.size[0]}x{self.clip.size[1]}',
                                 'use the masks.hdf5 and video of one subject, unresized')
    self.track = self._read_track(self.path / 'reconstructed_poses.hdf5')

  def _read_camera(self, path: pathlib.Path) -> tuple[Camera, np.ndarray]:
    try:
      with path.open('rb') as f:
        cam = pickle.load(f, encoding='latin1')
    except Exception as e:  # Truncated or foreign pickles raise several types.
      raise capture.CaptureError(path, f'cannot be unpickled ({e})', 'restore it from the download') from e
    keys = ('camera_f', 'camera_c', 'camera_rt', 'camera_t')
    if not isinstance(cam, dict) or any(k not in cam for k in keys):
      raise capture.CaptureError(path, f'expected a dict with {keys}', 'restore it from the download')
    f, c = np.reshape(cam['camera_f'], -1).astype(np.float64), np.reshape(cam['camera_c'], -1).astype(np.float64)
    k = np.array([[f[0], 0.0, c[0]], [0.0, f[-1], c[1]], [0.0, 0.0, 1.0]])
    w2c = np.eye(4)
    w2c[:3, :3] = Rotation.from_rotvec(np.reshape(cam['camera_rt'], 3)).as_matrix()
    w2c[:3, 3] = np.reshape(cam['camera_t'], 3)
    size = (int(cam.get('height', self.clip.size[0])), int(cam.get('width', self.clip.size[1])))
    if size != self.clip.size:
      raise capture.CaptureError(path, f'the camera is for {size[0]}x{size[1]} images, the video is '
                                 f'{self.clip.size[0]}x{self.clip.size[1]}', 'use the files of one subject')
    return Camera(np.float32(k), np.float32(w2c)), np.reshape(cam.get('camera_k', np.zeros(5)), -1)

  def _read_track(self, path: pathlib.Path) -> capture.BodyTrack:
    import h5py  # pylint: disable=import-outside-toplevel
    with h5py.File(path, 'r') as f:
      missing = [k for k in ('betas', 'pose', 'trans') if k not in f]
      if missing:
        raise capture.CaptureError(path, f'no {missing} datasets', 'restore it from the download')
      betas, pose, trans = (np.asarray(f[k], np.float64) for k in ('betas', 'pose', 'trans'))
    if pose.ndim != 2 or pose.shape[1] != 72 or trans.shape != (len(pose), 3):
      raise capture.CaptureError(path, f'pose {pose.shape} and trans {trans.shape}, expected (N, 72), (N, 3)',
                                 'restore it from the download')
    n = len(self.clip.names)
    betas = np.broadcast_to(betas.reshape(-1, betas.shape[-1]), (len(pose), betas.shape[-1]))
    note = ('' if not np.any(self.distortion) else
            f', lens distortion camera_k={np.round(self.distortion, 4).tolist()} NOT undone')
    track = capture.BodyTrack([None] * n, [None] * n, [None] * n, [None] * n,
                              f'People-Snapshot subject {self.path.name} (camera.pkl, reconstructed_poses.hdf5, '
                              f'masks.hdf5{note})', lambda t: path)
    for t in range(min(n, len(pose))):
      track.poses[t], track.betas[t], track.transl[t] = pose[t], betas[t], trans[t]
      track.cameras[t] = self.camera
    return track

  def person(self, t: int) -> np.ndarray:
    """bool [H, W] person mask of video frame t."""
    if t >= len(self.masks):
      raise capture.CaptureError(self.path / 'masks.hdf5', f'no mask for frame {t} (it holds {len(self.masks)})',
                                 'leave the frames without masks out with --last')
    return self.masks[t] > 0


def convert_from_flags(f: flags.FlagValues) -> capture.Report:
  """Host: capture.convert() on the subject of parsed flags."""
  subject = Subject(f.subject)
  if subject.distortion.any():
    logging.warning('%s: lens distortion %s is not undone.', subject.path / 'camera.pkl', subject.distortion)
  return capture.convert(subject.clip, subject.track, capture.inputs_from_flags(f), f.smpl_model, f.out,
                         f.garment, first=f.first, last=f.last, stride=f.stride, template=f.template,
                         template_garment=f.template_garment, person=subject.person, overwrite=f.overwrite)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Host: --subject plus capture's input flags."""
  flags.DEFINE_string('subject', None, 'A People-Snapshot subject folder, e.g. .../female-3-casual.',
                      flag_values=flag_values)
  capture.define_input_flags(flag_values)
  flags.mark_flags_as_required(['subject', 'masks', 'smpl_model', 'garment', 'out'], flag_values=flag_values)


if __name__ == '__main__':
  define_flags()
  importing.run_importer(convert_from_flags, 'people_snapshot')
