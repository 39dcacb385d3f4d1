"""4D-Dress take -> NGD sequence folder (docs/design.md section 3; the paper's data, docs/method.md section 8).

Layout of a 4D-Dress take (Wang et al., CVPR 2024), checked against the dataset's README and its
loader (github.com/eth-ait/4d-dress: the README of its dataset folder, utility.py, postprocess.py):

    <root>/<subject 00xxx>/<Inner|Outer>/<TakeN>/
      basic_info.pkl                    {'scan_frames': ['00011', ...] (5-digit strings), 'gender',
                                         'rotation' (display only, not applied), 'offset', ...}
      Meshes_pkl/mesh-fXXXXX.pkl        {'vertices' (N,3) m world, 'faces' (F,3), 'normals' (N,3),
                                         'uvs', 'colors' (N,3) uint8 (may be absent)}
      Meshes_pkl/atlas-fXXXXX.pkl       texture (1024,1024,3) (not used)
      Semantic/labels/label-fXXXXX.pkl  {'scan_labels': (N,)} per scan vertex:
                                         0 skin, 1 hair, 2 shoe, 3 upper, 4 lower, 5 outer
      SMPL/mesh-fXXXXX_smpl.pkl         {'global_orient' (3,), 'body_pose' (69,), 'transl' (3,),
                                         'betas' (10,)}, same world frame as the scans
      Capture/cameras.pkl               {'0004': {'intrinsics' (3,3) px, 'extrinsics' (3,4)}, ...}
      Capture/<0004|0028|0052|0076>/images/capture-fXXXXX.png   RGB, 1280 high x 940 wide
      Capture/<0004|0028|0052|0076>/masks/mask-fXXXXX.png       person mask (rendered scan)

The dataset's loader turns the extrinsics into PyTorch3D cameras in a way that is algebraically
OpenCV world-to-camera (x = R X + t, u = fx x / z + cx); this importer does not assume it: it
projects the garment's scan vertices into the person mask and stops unless they land inside it.
There is no dress label: a dress appears as upper and/or lower, so --garment=dress takes both.

Conversion (one monocular camera, default 0004 as the dataset's maintainers use):
garment mask = scan faces whose three vertices carry the garment's label, rasterized with the
project's rasterizer together with the rest of the scan (so hands and hair occlude it), AND the
person mask; hands mask = skin faces within --hand_radius of SMPL joints 20-23 (wrists, hands);
body.npz = the user's SMPL model baked with the take's parameters; gt/garment = the labelled scan
faces per frame; the other cameras = held-out views. Normals and depth come from any estimator's
per-frame files, or are rendered from the scan ('oracle': an upper bound, not the paper's setting,
which used Sapiens estimates).

    python -m ngd_jax.data.dress4d --take=4D-DRESS/00148/Inner/Take7 --garment=dress \\
        --camera=0004 --smpl_model=/path/to/SMPL_FEMALE.pkl --out=sequences/seq148 \\
        --first=0 --last=99 --normals=oracle --depth=oracle
"""

from collections.abc import Sequence as SequenceT
import dataclasses
import pathlib
import pickle
from typing import NamedTuple

from absl import flags
from absl import logging
import numpy as np
from PIL import Image
import smplx_jax

from ngd_jax import body as body_lib
from ngd_jax import meshes
from ngd_jax.data import importing
from ngd_jax.data import sequence
from ngd_jax.data.sequence import Camera

LABELS = {'skin': 0, 'hair': 1, 'shoe': 2, 'upper': 3, 'lower': 4, 'outer': 5}
GARMENT_LABELS = {'upper': (3,), 'lower': (4,), 'outer': (5,), 'dress': (3, 4)}
HAND_JOINTS = (20, 21, 22, 23)  # SMPL: left/right wrist, left/right hand.
MIN_OVERLAP = 0.8  # Fraction of projected garment vertices that must fall inside the person mask.
CAPTURE_FPS = 30.0
EXTRINSICS = ('world_to_camera', 'camera_to_world', 'auto')


class DatasetError(importing.InputError):
  """A 4D-Dress take that cannot be imported; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class Take:
  """A 4D-Dress take folder: its frame ids, gender and cameras (extrinsics as stored, 4x4)."""

  path: pathlib.Path
  frames: tuple[str, ...]
  gender: str
  cameras: dict[str, Camera]

  def mesh_path(self, frame: str) -> pathlib.Path:
    return self.path / 'Meshes_pkl' / f'mesh-f{frame}.pkl'

  def label_path(self, frame: str) -> pathlib.Path:
    return self.path / 'Semantic' / 'labels' / f'label-f{frame}.pkl'

  def smpl_path(self, frame: str) -> pathlib.Path:
    return self.path / 'SMPL' / f'mesh-f{frame}_smpl.pkl'

  def image_path(self, camera: str, frame: str) -> pathlib.Path:
    return self.path / 'Capture' / camera / 'images' / f'capture-f{frame}.png'

  def mask_path(self, camera: str, frame: str) -> pathlib.Path:
    return self.path / 'Capture' / camera / 'masks' / f'mask-f{frame}.png'


class SmplParams(NamedTuple):
  """SMPL parameters of T frames: poses float32 [T, 72] (axis-angle), betas [T, 10], transl [T, 3]."""

  poses: np.ndarray
  betas: np.ndarray
  transl: np.ndarray


class CameraCheck(NamedTuple):
  """Outcome of the projection check: the convention used and the overlap of each one tried."""

  convention: str
  camera: Camera
  overlaps: dict[str, float]


class Masks(NamedTuple):
  """bool [H, W] garment and hands masks of one view."""

  garment: np.ndarray
  hands: np.ndarray


@dataclasses.dataclass(frozen=True)
class ImportOptions:
  """What to import beside images and masks (see define_flags for the meaning of each field).

  near / far: clip planes (m) for rasterizing the scans, the defaults of config.render.
  """

  resolution: int = 0
  normals: str = ''
  depth: str = ''
  normals_axes: str = 'opencv'
  normals_encoding: str = 'auto'
  depth_kind: str = 'depth'
  hand_radius: float = 0.1
  near: float = 0.05
  far: float = 20.0

  def validate(self) -> None:
    if (self.normals_axes not in ('opencv', 'opengl') or self.depth_kind not in ('depth', 'disparity') or
        self.normals_encoding not in importing.NORMAL_ENCODINGS):
      raise ValueError(f'normals_axes={self.normals_axes!r} (opencv|opengl), depth_kind={self.depth_kind!r} '
                       f'(depth|disparity), normals_encoding={self.normals_encoding!r} '
                       f'({"|".join(importing.NORMAL_ENCODINGS)}): unknown value.')
    for name, value in (('--normals', self.normals), ('--depth', self.depth)):
      if value not in ('', 'oracle') and not pathlib.Path(value).is_dir():
        raise DatasetError(f"{value}: not a folder ({name} takes '', 'oracle' or a folder of "
                           'per-frame files).')


def _load_pickle(path: pathlib.Path, what: str) -> dict:
  """Host: a pickled dict, with a message naming the file when it is missing or unreadable."""
  if not path.is_file():
    raise DatasetError(f'{path}: missing ({what}). Check that --take points at a 4D-Dress take '
                       'folder (<subject>/<Inner|Outer>/<TakeN>) and that the download is complete.')
  try:
    with path.open('rb') as f:
      data = pickle.load(f, encoding='latin1')
  except Exception as e:  # Truncated downloads raise several pickle/EOF errors.
    raise DatasetError(f'{path}: cannot be unpickled ({e}); re-download this file.') from e
  if not isinstance(data, dict):
    raise DatasetError(f'{path}: expected a dict ({what}), got {type(data).__name__}.')
  return data


def _field(data: dict, key: str, path: pathlib.Path, shape: tuple[int | None, ...]) -> np.ndarray:
  """Host: data[key] as a finite array of the given shape (None = any size)."""
  if key not in data:
    raise DatasetError(f'{path}: no key {key!r} (keys: {sorted(data)}); not a 4D-Dress file?')
  a = np.asarray(data[key])
  if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
    raise DatasetError(f'{path}: {key!r} has shape {a.shape}, expected {shape} (None = any).')
  if a.dtype.kind == 'f' and not np.all(np.isfinite(a)):
    raise DatasetError(f'{path}: {key!r} holds non-finite values; re-download this file.')
  return a


def read_take(path: str | pathlib.Path) -> Take:
  """Host: reads basic_info.pkl and Capture/cameras.pkl of a take folder."""
  path = pathlib.Path(path)
  info_path = path / 'basic_info.pkl'
  info = _load_pickle(info_path, 'basic_info with scan_frames')
  if 'scan_frames' not in info or len(info['scan_frames']) == 0:
    raise DatasetError(f'{info_path}: no scan_frames; the take lists no frames.')
  frames = tuple(str(f) for f in info['scan_frames'])
  cameras_path = path / 'Capture' / 'cameras.pkl'
  raw = _load_pickle(cameras_path, 'per-camera intrinsics and extrinsics')
  cameras = {}
  for cam_id, params in raw.items():
    if not isinstance(params, dict):
      raise DatasetError(f'{cameras_path}: camera {cam_id!r} is not a dict with intrinsics/extrinsics.')
    k = _field(params, 'intrinsics', cameras_path, (3, 3)).astype(np.float64)
    e = np.asarray(params.get('extrinsics'))
    if e.shape not in ((3, 4), (4, 4)) or not np.all(np.isfinite(e)):
      raise DatasetError(f'{cameras_path}: camera {cam_id!r} extrinsics have shape {e.shape} or '
                         'non-finite values; expected a finite 3x4 [R | t].')
    world_to_camera = np.eye(4)
    world_to_camera[:3] = e[:3].astype(np.float64)
    cameras[str(cam_id)] = Camera(k, world_to_camera)
  return Take(path, frames, str(info.get('gender', 'unknown')), cameras)


def read_scan(take: Take, frame: str) -> importing.Scan:
  """Host: the scan mesh of a frame and its per-vertex labels."""
  mesh_path = take.mesh_path(frame)
  mesh = _load_pickle(mesh_path, 'scan mesh')
  vertices = _field(mesh, 'vertices', mesh_path, (None, 3)).astype(np.float64)
  faces = _field(mesh, 'faces', mesh_path, (None, 3)).astype(np.int32)
  if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
    raise DatasetError(f'{mesh_path}: face indices outside [0, {len(vertices)}); re-download this file.')
  label_path = take.label_path(frame)
  _require_labels(take, frame)
  labels = _field(_load_pickle(label_path, 'scan_labels'), 'scan_labels', label_path, (None,))
  labels = labels.astype(np.int32)
  if len(labels) != len(vertices):
    raise DatasetError(f'{label_path}: {len(labels)} labels for {len(vertices)} vertices of '
                       f'{mesh_path}; the two files belong to different scans.')
  normals = np.asarray(mesh.get('normals', np.zeros((0, 3))), np.float64)
  if normals.shape != vertices.shape or not np.all(np.isfinite(normals)):
    normals = meshes.vertex_normals(np.asarray(vertices, np.float64), faces)
  return importing.Scan(vertices, faces, labels, normals)


def _require_labels(take: Take, frame: str) -> None:
  if not take.label_path(frame).is_file():
    raise DatasetError(f'{take.label_path(frame)}: missing, so frame {frame} has no vertex labels. Restore '
                       'Semantic/labels from the download, or leave the frame out with --first/--last.')


def check_files(take: Take, frames: SequenceT[str], cameras: SequenceT[str]) -> None:
  """Host: every per-frame file the import reads exists (fails before any work is done)."""
  for frame in frames:
    if not take.mesh_path(frame).is_file():
      raise DatasetError(f'{take.mesh_path(frame)}: missing scan of frame {frame}; restore Meshes_pkl '
                         'from the download, or leave the frame out with --first/--last.')
    _require_labels(take, frame)
    for cam in cameras:
      for path in (take.image_path(cam, frame), take.mask_path(cam, frame)):
        if not path.is_file():
          raise DatasetError(f'{path}: missing; restore Capture/{cam} from the download, or leave '
                             'the frame out with --first/--last.')


def read_smpl_params(take: Take, frames: SequenceT[str]) -> SmplParams:
  """Host: SMPL parameters of the given frames (pose = global_orient ++ body_pose, 72-d)."""
  missing = [f for f in frames if not take.smpl_path(f).is_file()]
  if missing:
    raise DatasetError(f'{take.path / "SMPL"}: no SMPL fit for {len(missing)} of {len(frames)} frames '
                       f'(first: {take.smpl_path(missing[0]).name}). Restore the SMPL folder from the '
                       'download, or choose frames that have fits with --first/--last/--stride.')
  poses, betas, transl = [], [], []
  for f in frames:
    p = take.smpl_path(f)
    d = _load_pickle(p, 'SMPL parameters')
    flat = {}
    for key, size in (('global_orient', 3), ('body_pose', 69), ('transl', 3), ('betas', None)):
      a = np.reshape(np.asarray(d[key], np.float64), -1) if key in d else None
      if a is None or (size is not None and a.size != size) or (size is None and a.size < 10):
        raise DatasetError(f'{p}: {key!r} missing or of the wrong size (expected '
                           f'{size or ">= 10"} values; keys: {sorted(d)}).')
      if not np.all(np.isfinite(a)):
        raise DatasetError(f'{p}: {key!r} holds non-finite values; re-download this file.')
      flat[key] = a
    poses.append(np.concatenate([flat['global_orient'], flat['body_pose']]))
    betas.append(flat['betas'][:10])
    transl.append(flat['transl'])
  return SmplParams(np.float32(poses), np.float32(betas), np.float32(transl))


def read_image(path: pathlib.Path) -> np.ndarray:
  """Host: uint8 [H, W, 3] RGB."""
  if not path.is_file():
    raise DatasetError(f'{path}: missing capture image; restore it from the download.')
  return np.asarray(Image.open(path).convert('RGB'))


def read_person_mask(path: pathlib.Path) -> np.ndarray:
  """Host: bool [H, W] person mask (0/255 or 0/1 PNGs; any channel count)."""
  if not path.is_file():
    raise DatasetError(f'{path}: missing person mask; restore Capture/<camera>/masks from the download.')
  m = np.asarray(Image.open(path))
  if m.ndim == 3:
    m = m[..., :3].max(axis=-1)
  mask = m > (m.max() / 2 if m.max() > 1 else 0)
  if not mask.any():
    raise DatasetError(f'{path}: the person mask is empty.')
  return mask


def garment_faces(faces: np.ndarray, labels: np.ndarray, garment: str) -> np.ndarray:
  """Host: bool [F], faces whose three vertices all carry one of the garment's labels."""
  return np.isin(labels, GARMENT_LABELS[garment])[faces].all(axis=-1)


def submesh(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: the faces where keep is True, with the vertices they do not use removed."""
  kept = faces[keep]
  used, inverse = np.unique(kept, return_inverse=True)
  return vertices[used], inverse.reshape(kept.shape).astype(np.int32)


def check_camera(camera: Camera, points: np.ndarray, mask: np.ndarray, extrinsics: str,
                 where: str) -> CameraCheck:
  """Host: the extrinsics convention under which the garment's vertices project into the person mask.

  'world_to_camera' and 'camera_to_world' are checked as named; 'auto' takes the better of the two.
  Raises DatasetError (saying what was measured and what to try) below MIN_OVERLAP.
  """
  if extrinsics not in EXTRINSICS:
    raise ValueError(f'extrinsics={extrinsics!r}; expected one of {EXTRINSICS}.')
  inverse = Camera(camera.K, np.linalg.inv(np.asarray(camera.world_to_camera, np.float64)))
  candidates = {'world_to_camera': camera, 'camera_to_world': inverse}
  overlaps = {name: importing.mask_overlap(c, points, mask) for name, c in candidates.items()}
  chosen = max(overlaps, key=overlaps.get) if extrinsics == 'auto' else extrinsics
  if overlaps[chosen] < MIN_OVERLAP:
    other = 'camera_to_world' if chosen == 'world_to_camera' else 'world_to_camera'
    hint = (f'with the extrinsics read as {other} the overlap is {overlaps[other]:.2f}: rerun with '
            f'--extrinsics={other}' if overlaps[other] >= MIN_OVERLAP else
            f'reading them as {other} gives {overlaps[other]:.2f}, no better: check that '
            'cameras.pkl, the meshes and the masks belong to this take and are unmodified')
    raise DatasetError(
        f'{where}: camera check failed. Projected the garment-labelled scan vertices with '
        f'intrinsics K and extrinsics read as {chosen} (OpenCV, x = R X + t, u = fx x/z + cx); only '
        f'{overlaps[chosen]:.2f} land inside the person mask (need >= {MIN_OVERLAP}); {hint}.')
  return CameraCheck(chosen, candidates[chosen], overlaps)


class FaceClasses(NamedTuple):
  """bool [F] per scan face of one frame: garment faces and hand faces (see face_classes)."""

  garment: np.ndarray
  hand: np.ndarray


def face_classes(scan: importing.Scan, garment: str, hand_joints: np.ndarray, hand_radius: float) -> FaceClasses:
  """Host: garment faces (three garment-labelled vertices) and hand faces: skin faces (three skin
  vertices) whose centroid lies within hand_radius of one of the SMPL hand joints float [4, 3]."""
  skin = (scan.labels[scan.faces] == LABELS['skin']).all(axis=-1)
  centroids = scan.vertices[scan.faces].mean(axis=1)
  near_hand = np.zeros(len(scan.faces), bool)
  for joint in hand_joints:
    near_hand |= np.linalg.norm(centroids - joint, axis=-1) < hand_radius
  return FaceClasses(garment_faces(scan.faces, scan.labels, garment), skin & near_hand)


def label_masks(rast: np.ndarray, classes: FaceClasses, person: np.ndarray) -> Masks:
  """Host: garment and hands masks from the visible scan faces (docs/method.md section 4 uses both).

  A pixel belongs to the garment (hands) when its nearest scan face is a garment (hand) face and
  it lies inside the person mask: the rest of the scan occludes.
  """
  face_id = rast[..., 3].astype(np.int64) - 1
  covered = face_id >= 0
  ids = np.where(covered, face_id, 0)
  return Masks(covered & classes.garment[ids] & person, covered & classes.hand[ids] & person)


def hand_joint_positions(model: smplx_jax.SMPL, body: body_lib.BodyData) -> np.ndarray:
  """Host: SMPL joints 20-23 per frame, float64 [T, 4, 3] in the world frame.

  SMPL regresses joints from the shaped rest body, and the baked transforms A_k map joint k's rest
  position to its posed one (A_k = G_k [I, -J_k], translation included), so posed J_k = A_k [J_k; 1].
  """
  rest_joints = (np.asarray(model.J_regressor, np.float64) @ body.rest_vertices)[list(HAND_JOINTS)]
  a = np.asarray(body.transforms, np.float64)[:, list(HAND_JOINTS)]
  return np.einsum('tkij,kj->tki', a[..., :3, :3], rest_joints) + a[..., :3, 3]


def select_frames(take: Take, first: int, last: int, stride: int) -> tuple[str, ...]:
  """Host: scan_frames[first : last + 1 : stride] (indices into basic_info's list; last=-1: the end)."""
  n = len(take.frames)
  last = n - 1 if last < 0 else last
  if not 0 <= first <= last < n or stride < 1:
    raise DatasetError(f'{take.path / "basic_info.pkl"}: frames first={first}, last={last}, '
                       f'stride={stride} do not fit the take\'s {n} scan frames (indices 0..{n - 1}).')
  return take.frames[first:last + 1:stride]


class View(NamedTuple):
  """One camera's frame at the output size: rgb float32 [H, W, 3] in [0, 1], masks, the scan render, the camera."""

  rgb: np.ndarray
  masks: Masks
  scan: importing.ScanRender
  camera: Camera


def render_view(take: Take, cam_id: str, camera: Camera, frame: str, scan: importing.Scan, classes: FaceClasses,
                options: ImportOptions) -> View:
  """Host: image, person mask and rendered scan of one camera, resized to the output size."""
  image = read_image(take.image_path(cam_id, frame))
  person = read_person_mask(take.mask_path(cam_id, frame))
  if person.shape != image.shape[:2]:
    raise DatasetError(f'{take.mask_path(cam_id, frame)}: mask {person.shape} and image '
                       f'{image.shape[:2]} differ in size.')
  size = sequence.resized_size(image.shape[:2], options.resolution or None)
  scaled = sequence.scale_camera(camera, image.shape[:2], size)
  seen = importing.render_scan(scaled, scan, size, options.near, options.far)
  masks = label_masks(seen.rast, classes, sequence.resize_mask(person, size))
  return View(sequence.resize(image, size) / 255.0, masks, seen, scaled)


def _garment_vertices(take: Take, frame: str, scan: importing.Scan, garment: str) -> np.ndarray:
  """Host: the vertices of the garment's faces; DatasetError naming the label file when there are none."""
  keep = garment_faces(scan.faces, scan.labels, garment)
  if not keep.any():
    present = sorted(name for name, lab in LABELS.items() if np.any(scan.labels == lab))
    raise DatasetError(
        f'{take.label_path(frame)}: no face has all three vertices labelled {garment} '
        f'(labels {GARMENT_LABELS[garment]}); labels present: {present}. Choose --garment among '
        'upper/lower/outer/dress (dress = upper + lower) that this take wears.')
  return scan.vertices[np.unique(scan.faces[keep])]


def _estimate_file(folder: str, frame: str) -> pathlib.Path:
  """Host: the estimate of a frame: <frame>.npy|png or capture-f<frame>.npy|png (the image's stem)."""
  return importing.estimate_file(pathlib.Path(folder), (frame, f'capture-f{frame}'),
                                 'run the estimator on every imported frame')


def _normal_and_depth(view: View, frame: str, options: ImportOptions,
                      encoding: importing.NormalEncoding) -> tuple[np.ndarray | None, np.ndarray | None]:
  """Host: the frame's normal and depth maps at the view's size, per the options (None = not imported)."""
  mask = view.masks.garment
  normal = depth = None
  if options.normals:
    normal = view.scan.normal if options.normals == 'oracle' else importing.load_normal_estimate(
        _estimate_file(options.normals, frame), mask, encoding.name, options.normals_axes)
  if options.depth:
    depth = view.scan.depth if options.depth == 'oracle' else importing.load_depth_estimate(
        _estimate_file(options.depth, frame), mask, options.depth_kind)
  return normal, depth


def convert(take_path: str | pathlib.Path, out: str | pathlib.Path, garment: str, smpl_model: str,
            camera: str = '0004', first: int = 0, last: int = -1, stride: int = 1, template: str = '',
            extrinsics: str = 'world_to_camera', options: ImportOptions = ImportOptions(),
            overwrite: bool = False) -> pathlib.Path:
  """Host: writes the sequence folder `out` (docs/design.md section 3) from a 4D-Dress take.

  Everything cheap is checked before anything is written (files of every frame, SMPL fits, camera
  convention on the first frame for every camera). overwrite: replace a sequence folder at `out`,
  which stays as it was if the import fails. Returns the output folder.
  """
  if garment not in GARMENT_LABELS:
    raise ValueError(f'garment={garment!r}; expected one of {sorted(GARMENT_LABELS)}.')
  options.validate()
  if template and not pathlib.Path(template).is_file():
    raise DatasetError(f'{template}: no such template file (--template).')
  take = read_take(take_path)
  if camera not in take.cameras:
    raise DatasetError(f'{take.path / "Capture" / "cameras.pkl"}: no camera {camera!r}; this take '
                       f'has {sorted(take.cameras)}. Pass one of them with --camera.')
  frames = select_frames(take, first, last, stride)
  check_files(take, frames, sorted(take.cameras))
  params = read_smpl_params(take, frames)

  # The convention is decided on the monocular camera, then confirmed on every held-out camera.
  scan = read_scan(take, frames[0])
  points = _garment_vertices(take, frames[0], scan, garment)
  first_mask = read_person_mask(take.mask_path(camera, frames[0]))
  where = lambda c: f'{take.path / "Capture" / "cameras.pkl"} (camera {c}, mask of frame {frames[0]})'
  main_check = check_camera(take.cameras[camera], points, first_mask, extrinsics, where(camera))
  cameras = {c: check_camera(take.cameras[c], points, read_person_mask(take.mask_path(c, frames[0])),
                             main_check.convention, where(c)).camera
             for c in [camera] + sorted(c for c in take.cameras if c != camera)}

  model = smplx_jax.SMPL.load(smpl_model)
  # One shape per subject (4D-Dress repeats it per frame).
  body = body_lib.bake_smpl(model, params.poses, params.betas.mean(axis=0), params.transl)
  hands = hand_joint_positions(model, body)
  encoding, normals_source = importing.NormalEncoding('', ''), ''
  with sequence.SequenceWriter(out, overwrite=overwrite) as writer:
    for t, frame in enumerate(frames):
      scan = scan if t == 0 else read_scan(take, frame)
      _garment_vertices(take, frame, scan, garment)
      classes = face_classes(scan, garment, hands[t], options.hand_radius)
      views = {c: render_view(take, c, cam, frame, scan, classes, options) for c, cam in cameras.items()}
      main = views.pop(camera)
      if not main.masks.garment.any():
        raise DatasetError(f'{take.image_path(camera, frame)}: the {garment} is not visible from camera '
                           f'{camera} in frame {frame} (empty garment mask); leave the frame out.')
      if t == 0 and options.normals not in ('', 'oracle'):
        encoding = importing.resolve_normal_encoding(_estimate_file(options.normals, frame), main.masks.garment,
                                                     options.normals_encoding)
        normals_source = f' decoded as {encoding.name} ({encoding.reason}), axes {options.normals_axes}'
        logging.info('Normal maps %s:%s.', options.normals, normals_source)
      normal, depth = _normal_and_depth(main, frame, options, encoding)
      writer.add_frame(main.rgb, main.masks.garment, hands=main.masks.hands, normal=normal, depth=depth)
      for c, view in views.items():
        writer.add_eval_view(c, view.rgb, view.masks.garment)
      gt_vertices, gt_faces = submesh(scan.vertices, scan.faces, classes.garment)
      writer.add_gt_garment(np.float32(gt_vertices), gt_faces)

    overlap = main_check.overlaps[main_check.convention]
    source = (f'4D-Dress take {take.path.as_posix()} (gender {take.gender}), camera {camera}, scan frames '
              f'{frames[0]}..{frames[-1]} stride {stride}, garment labels {GARMENT_LABELS[garment]}, '
              f'extrinsics read as {main_check.convention} (projection overlap {overlap:.3f}); '
              f'normals: {_source_of(options.normals)}{normals_source}; depth: {_source_of(options.depth)}')
    writer.finish(camera=main.camera, eval_cameras={c: v.camera for c, v in views.items()}, garment=garment,
                  source=source, fps=CAPTURE_FPS / stride, body=body, template=template or None)
  logging.info('Wrote %s: %s', out, source)
  return pathlib.Path(out)


def _source_of(option: str) -> str:
  if option == 'oracle':
    return 'ORACLE, rendered from the labelled 4D-Dress scan (an upper bound, not the paper\'s setting)'
  return f'estimates from {option}' if option else 'none'


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Host: the command line (defined when run as a program, so importing the module adds no flags)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_string('take', None, 'A 4D-Dress take folder: <root>/<subject>/<Inner|Outer>/<TakeN>.', **fv)
  flags.DEFINE_enum('garment', None, sorted(GARMENT_LABELS), 'Garment (dress = upper + lower).', **fv)
  flags.DEFINE_string('camera', '0004', 'The monocular camera; the others become held-out views.', **fv)
  flags.DEFINE_string('smpl_model', None, "SMPL model file (.pkl or .npz) of the take's gender.", **fv)
  flags.DEFINE_string('out', None, 'Output sequence folder (new or empty).', **fv)
  flags.DEFINE_bool('overwrite', False, 'Replace the sequence folder at --out (kept if the import fails).', **fv)
  flags.DEFINE_integer('first', 0, 'First frame (index into basic_info scan_frames).', **fv)
  flags.DEFINE_integer('last', -1, 'Last frame, inclusive (index; -1 = the last).', **fv)
  flags.DEFINE_integer('stride', 1, 'Keep every n-th frame.', **fv)
  flags.DEFINE_integer('resolution', 0, 'Longer output image side (pixels); 0 = capture size.', **fv)
  flags.DEFINE_string('normals', '', "'' (none), 'oracle' (from the scan) or a folder of estimates.", **fv)
  flags.DEFINE_string('depth', '', "'' (none), 'oracle' or a folder of per-frame estimates.", **fv)
  flags.DEFINE_string('template', '', "Template mesh in the body's rest space; '' = none.", **fv)
  flags.DEFINE_enum('extrinsics', 'world_to_camera', EXTRINSICS, 'Extrinsics convention (checked).', **fv)
  flags.DEFINE_float('hand_radius', 0.1, 'Skin faces this close (m) to SMPL joints 20-23 are hands.', **fv)
  flags.DEFINE_enum('normals_axes', 'opencv', ['opencv', 'opengl'], 'Axes of the supplied normal maps.', **fv)
  flags.DEFINE_enum('normals_encoding', 'auto', importing.NORMAL_ENCODINGS,
                    'Values of the normal maps: [-1, 1], [0, 1], 8- or 16-bit; auto = from the first file.', **fv)
  flags.DEFINE_enum('depth_kind', 'depth', ['depth', 'disparity'], 'Supplied maps: depth or disparity.', **fv)
  flags.mark_flags_as_required(['take', 'garment', 'smpl_model', 'out'], flag_values=flag_values)


def convert_from_flags(f: flags.FlagValues) -> pathlib.Path:
  """Host: convert() with the values of parsed flags (see define_flags)."""
  options = ImportOptions(resolution=f.resolution, normals=f.normals, depth=f.depth,
                          normals_axes=f.normals_axes, normals_encoding=f.normals_encoding, depth_kind=f.depth_kind,
                          hand_radius=f.hand_radius)
  return convert(f.take, f.out, f.garment, f.smpl_model, camera=f.camera, first=f.first, last=f.last,
                 stride=f.stride, template=f.template, extrinsics=f.extrinsics, options=options, overwrite=f.overwrite)


if __name__ == '__main__':
  define_flags()
  importing.run_importer(convert_from_flags, 'dress4d')
