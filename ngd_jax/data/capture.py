"""Host: a user's own clip -> NGD sequence folder, from the outputs of monocular capture tools.

    python -m ngd_jax.data.capture --video=clip.mp4 --smpl=demo_clip.pkl --masks=SAM_DIR \\
        --normals=SAPIENS_DIR [--depth=DIR] [--hands=DIR] --smpl_model=/path/to/SMPL_NEUTRAL.pkl \\
        --garment=dress --out=sequences/mine [--first=0 --last=-1 --stride=1 --resolution=540] \\
        [--normals_encoding=auto|signed|unsigned|png8|png16] [--overwrite]

Nothing here runs a tool or downloads weights: it imports what the tools wrote (README "Data").

Frames: a video file (decoded by imageio-ffmpeg; frame t is named f'{t:06d}') or a folder of
images (.png/.jpg, sorted by name; a frame is named by its file stem). Every per-frame input of
another tool is looked up by that name: <name>.png | <name>.npy | <name>_seg.npy (Sapiens).

Body and camera (--smpl), one of:
- a 4DHumans / PHALP tracking pickle (joblib.dump of {frame path: {'time': t, 'tid': [ids],
  'smpl': [{'global_orient' (1,3,3), 'body_pose' (23,3,3), 'betas' (10,)}], 'camera': [(3,)],
  'size': [[H, W]], 'tracked_time': [0 = detected in this frame], ...}}; PHALP's
  trackers/PHALP.py, models/hmar/hmar.py get_3d_parameters). The SMPL body is in the camera frame
  (OpenCV axes, world_to_camera = identity) at translation 'camera' (pred_cam_t), for a pinhole of
  focal FOCAL_LENGTH (5000) pixels in a RES (256) pixel square image that is the frame padded to a
  square of side S = max(H, W): full-image K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] with
  f = FOCAL_LENGTH * S / RES, cx = S/2 - (S - W)//2 - 0.5, cy = S/2 - (S - H)//2 - 0.5 (the -0.5:
  PHALP's box coordinates put pixel centres at +0.5, OpenCV at integers). --person_id picks the
  track (required when several are tracked); frames where it was not detected
  (tracked_time > 0: PHALP repeats the last state) count as missing.
- a folder of per-frame <name>.npz or <name>.json (any other fitter; README "Data"):
  global_orient (3) or (3,3), body_pose (69) / (23,3) / (23,3,3), betas (S <= model's), transl (3,
  default 0), K (3,3) pixels of the frame, world_to_camera (4,4) OpenCV.
The SMPL shape is fixed over the clip: the mean of the per-frame betas (stated in sequence.json).

Masks (--masks): binary PNGs (SAM / SAM2: 0/255 or 0/1), or label maps (SCHP index PNGs, Sapiens
<name>_seg.npy) with --mask_labels naming the garment classes (numbers, or names of
--label_set=lip|sapiens). A label map also gives the person mask (label > 0); --person_masks gives
it from binary PNGs. Hands: --hands (binary, or label maps with --hand_labels), or --hand_labels
alone on the --masks label maps. Masks must have the frame's size.

Checks, each refusing with one message naming the file and the fix:
- body vs masks, every frame: with a person mask, >= MIN_BODY_IN_PERSON of the SMPL vertices that
  project into the image land inside it (dress4d's camera self-check); without, >= MIN_GARMENT_NEAR_BODY of the
  garment mask lies within BODY_MARGIN (fraction of the body's image height) of the rendered body;
  the failing frames are listed;
- normals: decoded by --normals_encoding (data/importing.py: [-1, 1], [0, 1], 8/16-bit, or auto
  with the reason logged), then on the garment they must lie in [-1, 1] and have unit length. The
  estimator's axes are found, not assumed: of the 48 signed axis permutations, the one whose mean
  cosine with the rendered SMPL body normals (over the pixels where the body is seen and the
  estimate is given, all frames) is largest is applied; refused below MIN_NORMAL_AGREEMENT, when
  the next best is within MIN_NORMAL_MARGIN, or when the best-fitting rotation lies more than
  MAX_NORMAL_ROTATION degrees away (maps in world or object axes, or rotated);
- depth: the Spearman rank correlation with the rendered body depth on the same pixels (mean over
  frames) picks depth (> 0) or disparity (< 0, negated); refused when |rho| < MIN_DEPTH_RANK.
Template: --template=PATH, or built from the body (geometry.body_template, the same builder as
config.template.source='body') for --template_garment (default: from --garment).
"""

from collections.abc import Callable, Iterator, Sequence as SequenceT
import dataclasses
import itertools
import json
import pathlib
from typing import NamedTuple

from absl import flags
from absl import logging
import numpy as np
from PIL import Image
from scipy import ndimage
from scipy import stats
from scipy.spatial.transform import Rotation
import smplx_jax

from ngd_jax import body as body_lib
from ngd_jax import geometry
from ngd_jax import meshes
from ngd_jax.data import importing
from ngd_jax.data import sequence
from ngd_jax.data.sequence import Camera

MIN_BODY_IN_PERSON = 0.8  # Fraction of projected SMPL vertices inside the person mask.
MIN_GARMENT_NEAR_BODY = 0.8  # Fraction of garment-mask pixels near the rendered body.
BODY_MARGIN = 0.15  # "Near": within this fraction of the body's image height.
MIN_NORMAL_AGREEMENT = 0.5  # Mean cosine between the (re-axed) estimate and the body normals.
# The chosen normal convention must lead the next best by MIN_NORMAL_MARGIN (mean cosine) and lie within
# MAX_NORMAL_ROTATION degrees of the best-fitting rotation. Measured on the tests' clip (tests/test_capture.py):
# right conventions (float, [0, 1], 8-bit; any axes) lead by 0.18 at 7 degrees; maps rotated by 45 degrees lead
# by 0.00-0.12 at 38-46 degrees, by 30 degrees 0.10-0.25 at 23-32 degrees; [0, 1] maps read as [-1, 1] 0.01
# at 41-65 degrees (and fail the unit-length check first).
MIN_NORMAL_MARGIN = 0.05
MAX_NORMAL_ROTATION = 15.0
MIN_DEPTH_RANK = 0.3  # |Spearman rho| between the estimate and the body depth.
MIN_CHECK_PIXELS = 20  # Fewer overlapping pixels in a frame: the frame is left out of the statistics.
PHALP_FOCAL = 5000.0  # PHALP / 4DHumans cfg.EXTRA.FOCAL_LENGTH (pixels of the RES image).
PHALP_RES = 256  # PHALP / 4DHumans cfg.render.res.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
# Body templates of geometry.body_template per sequence garment class (as pipeline.py's default).
TEMPLATE_OF_GARMENT = {'upper': 'tshirt', 'outer': 'tshirt', 'lower': 'skirt', 'dress': 'dress'}
TEMPLATE_OFFSET = 0.015  # configs/default.py template.offset (m).
TEMPLATE_EDGE = 0.02  # configs/default.py template.edge_length (m).
NEAR, FAR = 0.05, 100.0  # Clip planes (m) of the body renders (4DHumans puts people far away).

# Label ids of the usual human-parsing models, for --mask_labels / --hand_labels by name.
LABEL_SETS = {
    # SCHP trained on LIP (its README's label list).
    'lip': ('background', 'hat', 'hair', 'glove', 'sunglasses', 'upper-clothes', 'dress', 'coat',
            'socks', 'pants', 'jumpsuits', 'scarf', 'skirt', 'face', 'left-arm', 'right-arm',
            'left-leg', 'right-leg', 'left-shoe', 'right-shoe'),
    # Sapiens body-part segmentation (28 classes, lite/demo/classes_and_palettes.py).
    'sapiens': ('background', 'apparel', 'face_neck', 'hair', 'left_foot', 'left_hand',
                'left_lower_arm', 'left_lower_leg', 'left_shoe', 'left_sock', 'left_upper_arm',
                'left_upper_leg', 'lower_clothing', 'right_foot', 'right_hand', 'right_lower_arm',
                'right_lower_leg', 'right_shoe', 'right_sock', 'right_upper_arm', 'right_upper_leg',
                'torso', 'upper_clothing', 'lower_lip', 'upper_lip', 'lower_teeth', 'upper_teeth',
                'tongue'),
}


class CaptureError(importing.InputError):
  """An input of a capture import that cannot be used; the message names the file and the fix."""

  def __init__(self, path, problem: str, fix: str):
    self.path = pathlib.Path(path)
    super().__init__(f'{path}: {problem}. Fix: {fix}.')


# Frames.


@dataclasses.dataclass(frozen=True)
class Clip:
  """The frames of a video or an image folder: names, full size (H, W), fps (None: unknown)."""

  path: pathlib.Path
  names: tuple[str, ...]
  size: tuple[int, int]
  fps: float | None
  is_video: bool

  def images(self, indices: SequenceT[int]) -> Iterator[np.ndarray]:
    """Host: uint8 [H, W, 3] of the frames at `indices` (increasing), streamed."""
    if not self.is_video:
      for i in indices:
        with Image.open(self.frame_path(i)) as image:
          rgb = np.asarray(image.convert('RGB'))
        if rgb.shape[:2] != self.size:
          raise CaptureError(self.frame_path(i), f'image is {rgb.shape[0]}x{rgb.shape[1]}, the first '
                             f'frame is {self.size[0]}x{self.size[1]}', 'give frames of one size')
        yield rgb
      return
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
    wanted = iter(indices)
    target = next(wanted, None)
    reader = imageio_ffmpeg.read_frames(str(self.path))
    meta = next(reader)
    width, height = meta['size']
    for t, raw in enumerate(reader):
      if target is None:
        break
      if t == target:
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3).copy()
        target = next(wanted, None)
    reader.close()

  def frame_path(self, i: int) -> pathlib.Path:
    return self.path / self.names[i] if not self.is_video else self.path

  def select(self, first: int, last: int, stride: int) -> list[int]:
    """Host: indices first..last (inclusive; -1 = the end) every `stride` frames."""
    n = len(self.names)
    last = n - 1 if last < 0 else last
    if not 0 <= first <= last < n or stride < 1:
      raise CaptureError(self.path, f'frames --first={first} --last={last} --stride={stride} do not fit '
                         f'its {n} frames (indices 0..{n - 1})', 'choose indices inside the clip')
    return list(range(first, last + 1, stride))


def open_video(path: str | pathlib.Path) -> Clip:
  """Host: a video file's frames (named 000000, 000001, ...), size and fps, via imageio-ffmpeg."""
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  if not path.is_file():
    raise CaptureError(path, 'no such video file', 'pass the clip with --video (or a folder with --frames)')
  try:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
  except (RuntimeError, OSError, StopIteration) as e:
    raise CaptureError(path, f'ffmpeg cannot decode it ({e})',
                       're-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4') from e
  width, height = meta['size']
  return Clip(path, tuple(f'{t:06d}' for t in range(count)), (height, width), float(meta.get('fps') or 0) or None,
              True)


def open_frames(path: str | pathlib.Path) -> Clip:
  """Host: a folder of images (sorted by name), named by their stems."""
  path = pathlib.Path(path)
  files = sorted(p.name for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else []
  if not files:
    raise CaptureError(path, 'no .png/.jpg frames found', 'pass a folder of the clip\'s images with --frames')
  with Image.open(path / files[0]) as image:
    size = (image.height, image.width)
  return Clip(path, tuple(files), size, None, False)


def stem(name: str) -> str:
  return pathlib.Path(name).stem


# Body tracks.


class BodyTrack(NamedTuple):
  """SMPL per frame of the clip (None where absent): poses f32 [72] axis-angle, betas f32 [S],
  transl f32 [3], camera (K in pixels of the full frame, world_to_camera), and what it came from."""

  poses: list
  betas: list
  transl: list
  cameras: list
  source: str
  file_of: Callable[[int], pathlib.Path]


def _rotations_to_axis_angle(value, path: pathlib.Path, key: str, joints: int) -> np.ndarray:
  """Host: (J,3,3) rotation matrices or (J,3) / (3J,) axis-angles -> float64 [3J]."""
  a = np.asarray(value, np.float64)
  if a.size == 9 * joints:
    m = a.reshape(joints, 3, 3)
    if not np.allclose(m @ np.swapaxes(m, 1, 2), np.eye(3), atol=1e-3):
      raise CaptureError(path, f'{key!r} holds 3x3 matrices that are not rotations',
                         'store rotation matrices (or axis-angles) as the fitter outputs them')
    return Rotation.from_matrix(m).as_rotvec().reshape(-1)
  if a.size == 3 * joints:
    return a.reshape(-1)
  raise CaptureError(path, f'{key!r} has shape {a.shape}, expected {joints} rotations as ({joints},3,3) '
                     f'matrices or ({joints},3) axis-angles', 'write the SMPL parameters of 24 joints')


def _finite(a: np.ndarray, path: pathlib.Path, key: str) -> np.ndarray:
  if not np.all(np.isfinite(a)):
    raise CaptureError(path, f'{key!r} holds non-finite values', 'rerun the fitter on this frame or leave it out')
  return a


def phalp_camera(size: tuple[int, int], focal: float = PHALP_FOCAL, res: int = PHALP_RES) -> Camera:
  """Host: the full-image OpenCV camera of a PHALP / 4DHumans prediction (module docstring)."""
  height, width = size
  side = max(height, width)
  f = focal * side / res
  k = np.array([[f, 0.0, side / 2 - (side - width) // 2 - 0.5],
                [0.0, f, side / 2 - (side - height) // 2 - 0.5], [0.0, 0.0, 1.0]])
  return Camera(k.astype(np.float32), np.eye(4, dtype=np.float32))


def read_phalp(path: str | pathlib.Path, clip: Clip, person_id: int | None = None,
               focal: float = PHALP_FOCAL, res: int = PHALP_RES) -> BodyTrack:
  """Host: the SMPL track of one person from a 4DHumans / PHALP results pickle (module docstring).

  Entries are matched to the clip's frames by their 'time' (the tracker's frame index).
  """
  num_frames = len(clip.names)
  import joblib  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  if not path.is_file():
    raise CaptureError(path, 'no such tracking file', "pass 4DHumans/PHALP's outputs/results/<name>.pkl with --smpl")
  try:
    data = joblib.load(path)
  except Exception as e:  # joblib/pickle raise many types on foreign or truncated files.
    raise CaptureError(path, f'not a readable joblib pickle ({type(e).__name__}: {e})',
                       'pass the .pkl that 4DHumans/PHALP wrote (results/), unmodified') from e
  fix = 'pass the .pkl that 4DHumans/PHALP wrote under outputs/results/'
  if not isinstance(data, dict) or not data or not all(
      isinstance(v, dict) and {'time', 'tid', 'smpl', 'camera'} <= set(v) for v in data.values()):
    raise CaptureError(path, "not a PHALP tracking result (expected {frame: {'time', 'tid', 'smpl', "
                       "'camera', ...}})", fix)
  frames = {int(v['time']): v for v in data.values()}
  counts: dict[int, int] = {}
  for v in frames.values():
    for i, tid in enumerate(v['tid']):
      if _detected(v, i):
        counts[int(tid)] = counts.get(int(tid), 0) + 1
  ids = ', '.join(f'{tid} ({n} frames)' for tid, n in sorted(counts.items()))
  if person_id is None:
    if len(counts) != 1:
      raise CaptureError(path, f'{len(counts)} people are tracked: ids {ids or "none"}',
                         'choose the person with --person_id=ID' if counts else 'track a clip with a person in it')
    person_id = next(iter(counts))
  elif person_id not in counts:
    raise CaptureError(path, f'no person with track id {person_id}; tracked ids: {ids or "none"}',
                       'pass one of these ids with --person_id')
  track = BodyTrack([None] * num_frames, [None] * num_frames, [None] * num_frames, [None] * num_frames,
                    f'4DHumans/PHALP tracking {path.name}, person {person_id}, focal {focal} at res {res}',
                    lambda t: path)
  for t, v in frames.items():
    if not 0 <= t < num_frames:
      continue
    hits = [i for i, tid in enumerate(v['tid']) if int(tid) == person_id and _detected(v, i)]
    if not hits:
      continue
    i = hits[0]
    smpl = v['smpl'][i]
    where = f'{path} (frame time {t})'
    track.poses[t] = np.concatenate([
        _rotations_to_axis_angle(_finite(np.asarray(smpl['global_orient']), where, 'global_orient'), where,
                                 'global_orient', 1),
        _rotations_to_axis_angle(_finite(np.asarray(smpl['body_pose']), where, 'body_pose'), where, 'body_pose', 23)])
    track.betas[t] = _finite(np.reshape(np.asarray(smpl['betas'], np.float64), -1), where, 'betas')
    track.transl[t] = _finite(np.reshape(np.asarray(v['camera'][i], np.float64), -1)[:3], where, 'camera')
    size = tuple(int(x) for x in v['size'][i]) if 'size' in v else clip.size
    if size != clip.size:
      raise CaptureError(path, f'the tracker saw frames of {size[0]}x{size[1]} (frame time {t}), the clip '
                         f'{clip.path} has {clip.size[0]}x{clip.size[1]}',
                         'pass the video or frames the tracker ran on, at their original size')
    track.cameras[t] = phalp_camera(size, focal, res)
  return track


def _detected(entry: dict, i: int) -> bool:
  """PHALP keeps confirmed tracks in every frame; tracked_time > 0 marks a repeated old state."""
  times = entry.get('tracked_time')
  return times is None or i >= len(times) or int(times[i]) == 0


def read_param_folder(path: str | pathlib.Path, names: SequenceT[str]) -> BodyTrack:
  """Host: per-frame <name>.npz|.json SMPL parameters + K + world_to_camera (module docstring)."""
  path = pathlib.Path(path)
  n = len(names)
  track = BodyTrack([None] * n, [None] * n, [None] * n, [None] * n, f'per-frame SMPL parameters in {path}',
                    lambda t: next((path / f'{stem(names[t])}{s}' for s in ('.json',)
                                    if (path / f'{stem(names[t])}{s}').is_file()), path / f'{stem(names[t])}.npz'))
  for t, name in enumerate(names):
    file = next((path / f'{stem(name)}{s}' for s in ('.npz', '.json') if (path / f'{stem(name)}{s}').is_file()), None)
    if file is None:
      continue
    try:
      if file.suffix == '.npz':
        with np.load(file, allow_pickle=False) as z:
          d = {k: z[k] for k in z.files}
      else:
        d = json.loads(file.read_text())
    except (OSError, ValueError) as e:
      raise CaptureError(file, f'not readable ({e})', 'write it again with np.savez or json.dump') from e
    missing = [k for k in ('global_orient', 'body_pose', 'betas', 'K', 'world_to_camera') if k not in d]
    if missing:
      raise CaptureError(file, f'missing keys {missing} (has {sorted(d)})',
                         'write global_orient, body_pose, betas, transl, K and world_to_camera (README "Data")')
    track.poses[t] = np.concatenate([
        _rotations_to_axis_angle(_finite(np.asarray(d['global_orient'], np.float64), file, 'global_orient'), file,
                                 'global_orient', 1),
        _rotations_to_axis_angle(_finite(np.asarray(d['body_pose'], np.float64), file, 'body_pose'), file,
                                 'body_pose', 23)])
    track.betas[t] = _finite(np.reshape(np.asarray(d['betas'], np.float64), -1), file, 'betas')
    track.transl[t] = _finite(np.reshape(np.asarray(d.get('transl', np.zeros(3)), np.float64), -1), file, 'transl')
    k = _finite(np.asarray(d['K'], np.float64), file, 'K')
    w2c = _finite(np.asarray(d['world_to_camera'], np.float64), file, 'world_to_camera')
    if k.shape != (3, 3) or w2c.shape != (4, 4) or track.transl[t].shape != (3,):
      raise CaptureError(file, f'K {k.shape}, world_to_camera {w2c.shape}, transl {track.transl[t].shape}',
                         'K is 3x3 in pixels of the frame, world_to_camera 4x4 (OpenCV), transl 3 values')
    track.cameras[t] = Camera(np.float32(k), np.float32(w2c))
  return track


# Masks.


class Masks(NamedTuple):
  """bool [H, W] at the frame's size: garment, person (None: unknown), hands (None: not given)."""

  garment: np.ndarray
  person: np.ndarray | None
  hands: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class MaskSource:
  """A folder of per-frame masks: binary (labels == ()) or label maps whose `labels` are kept."""

  folder: pathlib.Path
  labels: tuple[int, ...] = ()
  flag: str = '--masks'

  def file(self, name: str) -> pathlib.Path | None:
    for candidate in (f'{name}.png', f'{name}.npy', f'{name}_seg.npy'):
      if (self.folder / candidate).is_file():
        return self.folder / candidate
    return None

  def read(self, name: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Host: (selected bool [H, W], person bool [H, W] for label maps else None)."""
    path = self.file(name)
    if path is None:
      raise CaptureError(self.folder / f'{name}.png', f'missing ({self.flag})',
                         f'write {name}.png (or {name}.npy, {name}_seg.npy) for every imported frame')
    try:
      a = np.load(path, allow_pickle=False) if path.suffix == '.npy' else np.asarray(Image.open(path))
    except (OSError, ValueError) as e:
      raise CaptureError(path, f'not a readable mask ({e})', 'write it again as a PNG or .npy') from e
    if a.shape[:2] != tuple(size):
      raise CaptureError(path, f'mask is {a.shape[0]}x{a.shape[1]} but the frame is {size[0]}x{size[1]}',
                         'compute the masks on the imported frames themselves (same video or folder, not '
                         'resized)')
    if self.labels:
      if a.ndim != 2 or a.dtype.kind not in 'iu':
        raise CaptureError(path, f'not a label map (shape {a.shape}, dtype {a.dtype})',
                           'give the index map (SCHP palette PNG, Sapiens _seg.npy), not its colour picture')
      return np.isin(a, self.labels), a > 0
    if a.ndim == 3:
      a = a[..., :3].max(axis=-1)
    values = np.unique(a)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
      if a.dtype.kind in 'iu' and values.max() < 64 and len(values) > 2:
        labels_flag = '--mask_labels' if self.flag == '--masks' else '--hand_labels'
        raise CaptureError(path, f'looks like a label map (values {values[:8].tolist()}...), not a binary mask',
                           f'name the garment classes with {labels_flag}')
      return a > (127 if values.max() > 1 else 0), None
    return a > 0, None


def parse_labels(text: str, label_set: str, flag: str) -> tuple[int, ...]:
  """Host: '5,6' or 'dress,skirt' (names of LABEL_SETS[label_set]) -> label ids."""
  ids = []
  for item in (s.strip() for s in text.split(',') if s.strip()):
    if item.isdigit():
      ids.append(int(item))
    elif label_set in LABEL_SETS and item.lower() in LABEL_SETS[label_set]:
      ids.append(LABEL_SETS[label_set].index(item.lower()))
    else:
      names = ', '.join(LABEL_SETS.get(label_set, ()))
      raise CaptureError(flag, f'unknown label {item!r} for --label_set={label_set}',
                         f'give label numbers, or names of {names or "a --label_set (lip, sapiens)"}')
  return tuple(ids)


# Estimates and the body renders they are checked against.


def signed_permutations() -> np.ndarray:
  """float32 [48, 3, 3]: every matrix with one +-1 per row and column (identity first)."""
  mats = []
  for perm in itertools.permutations(range(3)):
    for signs in itertools.product((1.0, -1.0), repeat=3):
      m = np.zeros((3, 3), np.float32)
      m[np.arange(3), perm] = signs
      mats.append(m)
  return np.stack(mats)


def describe_axes(m: np.ndarray) -> str:
  """'x,-y,-z' style: which (signed) estimate axis becomes each OpenCV axis."""
  return ','.join(('-' if m[i].sum() < 0 else '') + 'xyz'[int(np.argmax(np.abs(m[i])))] for i in range(3))


@dataclasses.dataclass
class Agreement:
  """Running statistics of the checks over the frames (see module docstring)."""

  normal_moments: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((3, 3)))
  normal_pixels: int = 0
  depth_rho: list = dataclasses.field(default_factory=list)
  depth_pixels: list = dataclasses.field(default_factory=list)

  def add_normals(self, estimate: np.ndarray, body: np.ndarray, where: np.ndarray) -> None:
    # sum over pixels of body_i * estimate_j: the score of M is <M, moments> / pixels.
    if where.sum() >= MIN_CHECK_PIXELS:
      self.normal_moments += np.einsum('pi,pj->ij', body[where].astype(np.float64), estimate[where])
      self.normal_pixels += int(where.sum())

  def add_depth(self, estimate: np.ndarray, body: np.ndarray, where: np.ndarray) -> None:
    where = where & np.isfinite(estimate) & np.isfinite(body)
    if where.sum() >= MIN_CHECK_PIXELS and np.ptp(estimate[where]) > 0 and np.ptp(body[where]) > 0:
      self.depth_rho.append(float(stats.spearmanr(estimate[where], body[where]).statistic))
      self.depth_pixels.append(int(where.sum()))

  def normal_scores(self) -> np.ndarray:
    return np.einsum('kij,ij->k', signed_permutations(), self.normal_moments) / max(self.normal_pixels, 1)

  def residual_rotation(self, matrix: np.ndarray) -> float:
    """Degrees between `matrix` (a signed permutation) and the orthogonal matrix of its handedness that
    best maps the estimates onto the body normals (Kabsch): large when the maps are rotated, not re-axed."""
    u, _, vt = np.linalg.svd(self.normal_moments)
    best = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt) * np.linalg.det(matrix)]) @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(best @ matrix.T) - 1.0) / 2.0, -1.0, 1.0))))

  def depth_score(self) -> float:
    return float(np.average(self.depth_rho, weights=self.depth_pixels)) if self.depth_rho else 0.0


def render_body(camera: Camera, vertices: np.ndarray, faces: np.ndarray,
                size: tuple[int, int]) -> importing.ScanRender:
  """Host: the posed body f32 [V, 3] (world) seen by `camera` at `size`: rast, camera-frame unit
  normals (0 off the body) and camera depth (nan off the body), by the project's rasterizer."""
  normals = meshes.vertex_normals(np.asarray(vertices, np.float64), np.int32(faces))
  scan = importing.Scan(np.float64(vertices), np.int32(faces), np.zeros(len(vertices), np.int32), normals)
  return importing.render_scan(camera, scan, size, NEAR, FAR)


def body_overlap(camera: Camera, vertices: np.ndarray, seen: importing.ScanRender,
                 masks: Masks) -> tuple[str, float]:
  """Host: (what was measured, value) of the body-vs-mask check of one frame (module docstring)."""
  if masks.person is not None:
    # Frames often crop the person: only the vertices that project into the image are evidence.
    uv, z = importing.project(camera, np.float64(vertices))
    in_view = (z > 0) & sequence.pixels_in_mask(uv, np.ones_like(masks.person))
    if in_view.mean() < 0.1:
      return 'SMPL vertices inside the person mask (the body is out of view)', 0.0
    return 'SMPL vertices inside the person mask', importing.mask_overlap(camera, vertices[in_view], masks.person)
  body = seen.rast[..., 3] > 0
  if not body.any():
    return 'garment pixels near the body (the body is not in view)', 0.0
  rows = np.nonzero(body.any(axis=1))[0]
  margin = BODY_MARGIN * (rows[-1] - rows[0] + 1)
  near = ndimage.distance_transform_edt(~body) <= margin
  return 'garment pixels near the rendered body', float(near[masks.garment].mean())


# The import.


@dataclasses.dataclass(frozen=True)
class Inputs:
  """Per-frame inputs besides the frames and the body (see define_flags)."""

  masks: MaskSource
  person_masks: MaskSource | None = None
  hands: MaskSource | None = None
  hands_from_masks: tuple[int, ...] = ()
  normals: str = ''
  normals_encoding: str = 'auto'
  depth: str = ''
  resolution: int = 0

  def estimate(self, folder: str, name: str) -> pathlib.Path:
    """Host: the estimate file of frame `name` in the folder of --normals or --depth."""
    return importing.estimate_file(pathlib.Path(folder), (name,), 'run the estimator on every imported frame '
                                   '(files named <frame>.npy|png), or leave the frame out with --first/--last/--stride')


class Report(NamedTuple):
  """What the checks measured: normal encoding (and why), axes chosen and their agreement, the
  runner-up, depth kind and rank correlation, and the smallest body-vs-mask overlap over the frames."""

  normal_encoding: str
  normal_axes: str
  normal_agreement: float
  normal_runner_up: float
  depth_kind: str
  depth_rank: float
  min_overlap: float


def _frame_masks(inputs: Inputs, name: str, size: tuple[int, int],
                 person: Callable[[int], np.ndarray] | None, t: int) -> Masks:
  garment, labelled_person = inputs.masks.read(name, size)
  hands = None
  if inputs.hands is not None:
    hands, _ = inputs.hands.read(name, size)
  elif inputs.hands_from_masks:
    hands, _ = dataclasses.replace(inputs.masks, labels=inputs.hands_from_masks).read(name, size)
  if person is not None:
    labelled_person = person(t)
  elif inputs.person_masks is not None:
    labelled_person, _ = inputs.person_masks.read(name, size)
  return Masks(garment, labelled_person, hands)


def _check_present(clip: Clip, indices: SequenceT[int], track: BodyTrack, inputs: Inputs) -> None:
  """Host: every selected frame has a body fit and every per-frame file (one message listing them)."""
  missing = [clip.names[i] for i in indices if track.poses[i] is None]
  if missing:
    raise CaptureError(track.file_of(indices[0]) if len(set(map(track.file_of, indices))) == 1 else
                       track.file_of([i for i in indices if track.poses[i] is None][0]),
                       f'no body fit for {len(missing)} of {len(indices)} frames (frames missing: '
                       f'{", ".join(stem(m) for m in missing[:20])}{" ..." if len(missing) > 20 else ""})',
                       'rerun the fitter/tracker on these frames, choose another --person_id, or leave them out '
                       'with --first/--last/--stride')
  sources = [s for s in (inputs.masks, inputs.person_masks, inputs.hands) if s is not None]
  for source in sources:
    absent = [stem(clip.names[i]) for i in indices if source.file(stem(clip.names[i])) is None]
    if absent:
      raise CaptureError(source.folder, f'{source.flag}: no file for {len(absent)} of {len(indices)} frames '
                         f'(frames missing: {", ".join(absent[:20])}{" ..." if len(absent) > 20 else ""})',
                         'run the tool on every imported frame (files named <frame>.png|.npy), or leave '
                         'these frames out with --first/--last/--stride')


def convert(clip: Clip, track: BodyTrack, inputs: Inputs, smpl_model: str, out: str | pathlib.Path,
            garment: str, first: int = 0, last: int = -1, stride: int = 1, template: str = '',
            template_garment: str = '', fps: float = 30.0,
            person: Callable[[int], np.ndarray] | None = None, overwrite: bool = False) -> Report:
  """Host: writes the sequence folder `out` (docs/design.md section 3); returns what the checks measured.

  person: optional person mask bool [H, W] of a clip frame index (People-Snapshot's masks.hdf5).
  Everything is checked before anything is written; overwrite: replace a sequence folder at `out`,
  which stays as it was if the import fails.
  """
  if garment not in sequence.GARMENTS:
    raise ValueError(f'garment={garment!r}; expected one of {sequence.GARMENTS}.')
  if template and not pathlib.Path(template).is_file():
    raise CaptureError(template, 'no such template file', 'pass a mesh in the body rest space with --template')
  template_garment = template_garment or TEMPLATE_OF_GARMENT[garment]
  indices = clip.select(first, last, stride)
  _check_present(clip, indices, track, inputs)
  size = sequence.resized_size(clip.size, inputs.resolution or None)
  model = smplx_jax.SMPL.load(smpl_model)
  betas = np.stack([track.betas[i] for i in indices])
  if betas.shape[1] > model.num_betas:
    betas = betas[:, :model.num_betas]
  body = body_lib.bake_smpl(model, np.stack([track.poses[i] for i in indices]), betas.mean(axis=0),
                            np.stack([track.transl[i] for i in indices]))
  cameras = [sequence.scale_camera(track.cameras[i], clip.size, size) for i in indices]

  with sequence.SequenceWriter(out, overwrite=overwrite) as writer:
    # Pass 1: checks on every frame, before anything is written.
    agreement, failing, overlaps, encoding = Agreement(), [], [], importing.NormalEncoding('', '')
    for t, i in enumerate(indices):
      name = stem(clip.names[i])
      masks = _frame_masks(inputs, name, clip.size, person, i)
      masks = Masks(*(None if m is None else sequence.resize_mask(m, size) for m in masks))
      if not masks.garment.any():
        raise CaptureError(inputs.masks.file(name), f'the garment mask of frame {name} is empty',
                           'check --mask_labels, or leave the frame out with --first/--last/--stride')
      seen = render_body(cameras[t], body.posed_vertices[t], body.faces, size)
      what, value = body_overlap(cameras[t], body.posed_vertices[t], seen, masks)
      limit = MIN_BODY_IN_PERSON if masks.person is not None else MIN_GARMENT_NEAR_BODY
      overlaps.append(value)
      if value < limit:
        failing.append(f'{name} ({value:.2f})')
      region = seen.rast[..., 3] > 0  # Where the body is seen; the estimates' own validity is added below.
      if inputs.normals:
        path = inputs.estimate(inputs.normals, name)
        if t == 0:
          encoding = importing.resolve_normal_encoding(path, masks.garment, inputs.normals_encoding)
          logging.info('Normal maps %s decoded as %s (%s).', inputs.normals, encoding.name, encoding.reason)
        raw = importing.load_normal_estimate(path, masks.garment, encoding.name, 'opencv')
        agreement.add_normals(raw, seen.normal, region & (np.linalg.norm(raw, axis=-1) > 0.5))
      if inputs.depth:
        agreement.add_depth(importing.load_depth_estimate(inputs.estimate(inputs.depth, name), masks.garment,
                                                          'depth'), seen.depth, region)
    if failing:
      raise CaptureError(track.file_of(indices[0]),
                         f'the fitted SMPL body does not match the masks in {len(failing)} of {len(indices)} '
                         f'frames ({what} < {limit}): {", ".join(failing[:20])}{" ..." if len(failing) > 20 else ""}',
                         'check that the body fits, the camera convention (--phalp_focal) and the masks belong '
                         'to this clip and person (--person_id), or leave these frames out')
    report = _decide(agreement, inputs, min(overlaps), encoding)
    matrix = signed_permutations()[np.argmax(agreement.normal_scores())] if inputs.normals else None
    template_mesh = template or build_template(body, template_garment)

    # Pass 2: write.
    for t, (i, rgb) in enumerate(zip(indices, clip.images(indices))):
      name = stem(clip.names[i])
      masks = _frame_masks(inputs, name, clip.size, person, i)
      garment_mask = sequence.resize_mask(masks.garment, size)
      normal = depth = None
      if matrix is not None:
        normal = importing.load_normal_estimate(inputs.estimate(inputs.normals, name), garment_mask, encoding.name,
                                                'opencv') @ matrix.T
      if inputs.depth:
        depth = importing.load_depth_estimate(inputs.estimate(inputs.depth, name), garment_mask, report.depth_kind)
      hands = None if masks.hands is None else sequence.resize_mask(masks.hands, size)
      writer.add_frame(sequence.resize(rgb, size) / 255.0, garment_mask, hands=hands, normal=normal, depth=depth)
    static = all(np.array_equal(c.K, cameras[0].K) and np.array_equal(c.world_to_camera, cameras[0].world_to_camera)
                 for c in cameras)
    source = (f'{track.source}; frames {clip.path.name} {clip.names[indices[0]]}..{clip.names[indices[-1]]} '
              f'stride {stride}; SMPL shape = mean of {len(indices)} per-frame betas; body-mask overlap >= '
              f'{report.min_overlap:.2f}; normals: {_normals_source(inputs, report, encoding.reason)}; depth: '
              f'{_depth_source(inputs, report)}; template: {template or "built from the body, " + template_garment}')
    writer.finish(camera=cameras[0] if static else None, cameras=None if static else cameras, body=body,
                  fps=(clip.fps or fps) / stride, garment=garment, source=source, template=template_mesh)
  logging.info('Wrote %s: %s', out, source)
  return report


def build_template(body: body_lib.BodyData, garment: str) -> tuple[np.ndarray, np.ndarray]:
  """Host: (vertices f32 [V, 3], faces i32 [F, 3]) of the body template of `garment` (one of
  geometry.GARMENTS) around the body's rest mesh, as config.template.source='body' builds it."""
  try:
    built = geometry.body_template(body.rest_vertices, body.faces, body.skinning_weights, body.joint_names,
                                   garment, offset=TEMPLATE_OFFSET, edge_length=TEMPLATE_EDGE)
  except geometry.TemplateError as e:
    raise CaptureError('--template_garment', f'no {garment} template can be built around the body ({e})',
                       'pass a garment mesh in the body\'s rest space with --template=PATH') from e
  return built.vertices, built.faces


def _decide(agreement: Agreement, inputs: Inputs, min_overlap: float, encoding: importing.NormalEncoding) -> Report:
  """Host: the normal axes and depth kind from the statistics; CaptureError when they match nothing, or
  when a second normal convention agrees nearly as well (then neither is certain)."""
  axes, best, runner_up = '', 0.0, 0.0
  if inputs.normals:
    scores = agreement.normal_scores()
    order = np.argsort(scores)[::-1]
    best, runner_up = float(scores[order[0]]), float(scores[order[1]])
    axes = describe_axes(signed_permutations()[order[0]])
    decoded = f'decoded as {encoding.name} ({encoding.reason})'
    if agreement.normal_pixels == 0 or best < MIN_NORMAL_AGREEMENT:
      raise CaptureError(inputs.normals, f'the normal maps ({decoded}) agree with the fitted body\'s normals under '
                         f'no axis convention: best mean cosine {best:.2f} (axes {axes}) over '
                         f'{agreement.normal_pixels} body pixels, need >= {MIN_NORMAL_AGREEMENT}',
                         'give normal maps of these frames (camera-space unit normals) from an estimator, check '
                         '--normals_encoding and that --smpl fits the same frames')
    rotation = agreement.residual_rotation(signed_permutations()[order[0]])
    if rotation > MAX_NORMAL_ROTATION:
      raise CaptureError(inputs.normals, f'the normal maps ({decoded}) are rotated by {rotation:.0f} degrees from the '
                         f'best axis convention ({axes}, mean cosine {best:.2f}), need <= {MAX_NORMAL_ROTATION:.0f}',
                         'give camera-space normals (not world or object space), and check --normals_encoding and '
                         'that --smpl fits the same frames')
    if best - runner_up < MIN_NORMAL_MARGIN:
      second = describe_axes(signed_permutations()[order[1]])
      raise CaptureError(inputs.normals, f'the normal maps ({decoded}) match two axis conventions almost equally: '
                         f'mean cosine {best:.2f} (axes {axes}) and {runner_up:.2f} (axes {second}), need a lead of '
                         f'>= {MIN_NORMAL_MARGIN}', 'give camera-space normals (not rotated or in world axes), check '
                         '--normals_encoding, and that --smpl fits the same frames')
  kind, rho = 'depth', 0.0
  if inputs.depth:
    rho = agreement.depth_score()
    if abs(rho) < MIN_DEPTH_RANK:
      raise CaptureError(inputs.depth, f'the depth maps do not follow the fitted body\'s depth: Spearman rank '
                         f'correlation {rho:.2f} over {len(agreement.depth_rho)} frames, need |rho| >= '
                         f'{MIN_DEPTH_RANK}', 'give depth (or disparity) maps of these frames from an estimator')
    kind = 'depth' if rho > 0 else 'disparity'
  return Report(encoding.name, axes, best, runner_up, kind, rho, min_overlap)


def _normals_source(inputs: Inputs, report: Report, why: str) -> str:
  if not inputs.normals:
    return 'none'
  return (f'estimates from {inputs.normals} decoded as {report.normal_encoding} ({why}), axes '
          f'({report.normal_axes}) -> OpenCV chosen by agreement with the rendered body (mean cosine '
          f'{report.normal_agreement:.2f}; next best {report.normal_runner_up:.2f})')


def _depth_source(inputs: Inputs, report: Report) -> str:
  if not inputs.depth:
    return 'none'
  return f'estimates from {inputs.depth} read as {report.depth_kind} (rank correlation {report.depth_rank:+.2f})'


# Command line.


def define_input_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Host: the flags shared with people_snapshot (masks, estimates, output, selection)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_string('masks', None, 'Folder of per-frame garment masks: binary PNGs or label maps.', **fv)
  flags.DEFINE_string('mask_labels', '', 'Garment classes of label-map masks: numbers or names of --label_set.', **fv)
  flags.DEFINE_enum('label_set', 'lip', sorted(LABEL_SETS), 'Label names for --mask_labels/--hand_labels.', **fv)
  flags.DEFINE_string('person_masks', '', 'Optional folder of binary person masks (for the body check).', **fv)
  flags.DEFINE_string('hands', '', 'Optional folder of hand masks (binary, or label maps with --hand_labels).', **fv)
  flags.DEFINE_string('hand_labels', '', 'Hand classes of label maps (of --hands, else of --masks).', **fv)
  flags.DEFINE_string('normals', '', 'Folder of per-frame normal estimates (.npy / RGB PNG); axes checked.', **fv)
  flags.DEFINE_enum('normals_encoding', 'auto', importing.NORMAL_ENCODINGS,
                    'Values of the normal maps: [-1, 1], [0, 1], 8- or 16-bit; auto = from the first file.', **fv)
  flags.DEFINE_string('depth', '', 'Folder of per-frame depth or disparity estimates; kind checked.', **fv)
  flags.DEFINE_string('smpl_model', None, 'SMPL model file (.pkl or .npz), licensed: your own copy.', **fv)
  flags.DEFINE_enum('garment', None, list(sequence.GARMENTS), 'Garment class of the sequence.', **fv)
  flags.DEFINE_string('template', '', "Template mesh in the body's rest space; '' = built from the body.", **fv)
  flags.DEFINE_enum('template_garment', '', ['', *geometry.GARMENTS], "Body template shape; '' = from --garment.",
                    **fv)
  flags.DEFINE_string('out', None, 'Output sequence folder (new or empty).', **fv)
  flags.DEFINE_bool('overwrite', False, 'Replace the sequence folder at --out (kept if the import fails).', **fv)
  flags.DEFINE_integer('first', 0, 'First frame index.', **fv)
  flags.DEFINE_integer('last', -1, 'Last frame index, inclusive (-1 = the last).', **fv)
  flags.DEFINE_integer('stride', 1, 'Keep every n-th frame.', **fv)
  flags.DEFINE_integer('resolution', 0, 'Longer output image side (pixels); 0 = the frames\' size.', **fv)


def inputs_from_flags(f: flags.FlagValues) -> Inputs:
  labels = parse_labels(f.mask_labels, f.label_set, '--mask_labels')
  hand_labels = parse_labels(f.hand_labels, f.label_set, '--hand_labels')
  for flag, value in (('--masks', f.masks), ('--person_masks', f.person_masks), ('--hands', f.hands),
                      ('--normals', f.normals), ('--depth', f.depth)):
    if value and not pathlib.Path(value).is_dir():
      raise CaptureError(value, f'not a folder ({flag})', f'pass a folder of per-frame files to {flag}')
  return Inputs(
      masks=MaskSource(pathlib.Path(f.masks), labels),
      person_masks=MaskSource(pathlib.Path(f.person_masks), (), '--person_masks') if f.person_masks else None,
      hands=MaskSource(pathlib.Path(f.hands), hand_labels, '--hands') if f.hands else None,
      hands_from_masks=hand_labels if not f.hands else (),
      normals=f.normals, normals_encoding=f.normals_encoding, depth=f.depth, resolution=f.resolution)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Host: the command line (defined when run as a program, so importing the module adds no flags)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_string('video', '', 'The clip as a video file (frames named 000000, 000001, ...).', **fv)
  flags.DEFINE_string('frames', '', 'The clip as a folder of images (named by their stems).', **fv)
  flags.DEFINE_float('fps', 30.0, 'Frame rate of --frames (a video gives its own).', **fv)
  flags.DEFINE_string('smpl', None, '4DHumans/PHALP results .pkl, or a folder of per-frame .npz/.json.', **fv)
  flags.DEFINE_integer('person_id', None, 'PHALP track id of the person (needed when several are tracked).', **fv)
  flags.DEFINE_float('phalp_focal', PHALP_FOCAL, 'PHALP/4DHumans cfg.EXTRA.FOCAL_LENGTH.', **fv)
  flags.DEFINE_integer('phalp_res', PHALP_RES, 'PHALP/4DHumans cfg.render.res.', **fv)
  define_input_flags(flag_values)
  flags.mark_flags_as_required(['smpl', 'masks', 'smpl_model', 'garment', 'out'], flag_values=flag_values)


def convert_from_flags(f: flags.FlagValues) -> Report:
  """Host: convert() with the values of parsed flags (see define_flags)."""
  if bool(f.video) == bool(f.frames):
    raise CaptureError('--video/--frames', 'give exactly one of them', 'pass the clip as --video=FILE or --frames=DIR')
  clip = open_video(f.video) if f.video else open_frames(f.frames)
  smpl = pathlib.Path(f.smpl)
  if smpl.is_dir():
    track = read_param_folder(smpl, clip.names)
  else:
    track = read_phalp(smpl, clip, f.person_id, f.phalp_focal, f.phalp_res)
  return convert(clip, track, inputs_from_flags(f), f.smpl_model, f.out, f.garment, first=f.first, last=f.last,
                 stride=f.stride, template=f.template, template_garment=f.template_garment, fps=f.fps,
                 overwrite=f.overwrite)


if __name__ == '__main__':
  define_flags()
  importing.run_importer(convert_from_flags, 'capture')
