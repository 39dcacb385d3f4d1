"""Host: the sequence format of docs/design.md section 3 (reader with validation, writer).

Validation policy: read_sequence checks everything that is cheap to check for every frame before
any work starts: sequence.json, every file's presence, every image's size from its PNG header,
every .npy's shape and dtype from its header, body.npz, template.obj, and every garment mask
decoded once (binary and non-empty: the likeliest bad input). Pixel contents of rgb, hands,
normal and depth are checked when a frame is loaded (load_frame); validate_sequence decodes
everything and reports every problem found.

read_sequence also refuses a template with an edge shared by more than two faces (and warns about
vertices in no face), camera rotation blocks that are not rotations (R R^T = I, det +1), unreadable
gt/garment meshes and true meshes of unlisted frames; check_in_view (called before training, with
the template skinned to every training frame) refuses a camera that sees the garment behind it or
nowhere near its mask.

Every problem raises SequenceError with one message: '<file>: <what is wrong>. Fix: <how>.'
Cameras follow OpenCV (pixel centres at integer coordinates): resizing by s maps u to
s (u + 0.5) - 0.5, hence K' = diag(sx, sy, 1) K with the principal point shifted accordingly.
"""

import dataclasses
import json
import logging
import math
import os
import pathlib
import shutil
from typing import Any, Iterable, NamedTuple

import numpy as np
from PIL import Image
import trimesh

from ngd_jax import body as body_lib
from ngd_jax import errors
from ngd_jax import files

FORMAT = 'ngd-sequence/1'
GARMENTS = ('upper', 'lower', 'dress', 'outer')
OPTIONAL_CHANNELS = ('hands', 'normal', 'depth')
NORMAL_LENGTH_TOLERANCE = 1e-2  # Normals must have length 1 (or 0 = unknown) within this.
ROTATION_TOLERANCE = 1e-3  # Camera rotation blocks must satisfy R R^T = I within this (float32 JSON round trips).


class SequenceError(errors.UserError, ValueError):
  """A sequence folder that cannot be used; the message names the file and the fix."""

  def __init__(self, path: str | os.PathLike, problem: str, fix: str):
    self.path = pathlib.Path(path)
    super().__init__(f'{path}: {problem}. Fix: {fix}.')


class Camera(NamedTuple):
  """OpenCV pinhole camera: K f32[3,3] in pixels of its image, world_to_camera f32[4,4]."""

  K: np.ndarray
  world_to_camera: np.ndarray

  def to_json(self) -> dict[str, list]:
    return {'K': np.asarray(self.K).tolist(), 'world_to_camera': np.asarray(self.world_to_camera).tolist()}


class Frame(NamedTuple):
  """One training frame: rgb f32[H,W,3] in [0,1]; mask f32[H,W] in {0,1} (garment); hands f32[H,W]
  {0,1} or None; normal f32[H,W,3] unit (camera frame, OpenCV) or None; depth f32[H,W]
  (larger = farther, nan = unknown) or None."""

  rgb: np.ndarray
  mask: np.ndarray
  hands: np.ndarray | None
  normal: np.ndarray | None
  depth: np.ndarray | None


class EvalView(NamedTuple):
  """A held-out camera's frame: rgb f32[H,W,3], mask f32[H,W], camera scaled to that size."""

  rgb: np.ndarray
  mask: np.ndarray
  camera: Camera


def resized_size(size: tuple[int, int], resolution: int | None) -> tuple[int, int]:
  """(H, W) after resizing so that the longer side has `resolution` pixels (None: unchanged)."""
  height, width = size
  if resolution is None:
    return height, width
  if resolution < 1:
    raise ValueError(f'resolution must be a positive number of pixels, got {resolution}.')
  scale = resolution / max(height, width)
  return max(1, round(height * scale)), max(1, round(width * scale))


def scale_camera(camera: Camera, size: tuple[int, int], new_size: tuple[int, int]) -> Camera:
  """The camera of an image resized from size (H, W) to new_size: u' + 0.5 = s (u + 0.5) per axis."""
  sy, sx = new_size[0] / size[0], new_size[1] / size[1]
  k = np.array(camera.K, np.float64)
  k[0] *= sx
  k[1] *= sy
  k[0, 2] += 0.5 * sx - 0.5
  k[1, 2] += 0.5 * sy - 0.5
  return Camera(k.astype(np.float32), np.asarray(camera.world_to_camera, np.float32))


def resize(image: np.ndarray, size: tuple[int, int], resample=Image.Resampling.BOX) -> np.ndarray:
  """Host: [H, W] or [H, W, C] of any real dtype -> float32 at size (H', W'), per channel by PIL in float
  ('F' mode, no rounding); BOX averages areas (anti-aliased). The one image resize of the package."""
  image = np.asarray(image)
  if image.ndim == 2:
    return resize(image[..., None], size, resample)[..., 0]
  if image.shape[:2] == tuple(size):
    return image.astype(np.float32, copy=False)
  channels = [
      np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32)).resize(size[::-1], resample))
      for c in range(image.shape[-1])
  ]
  return np.stack(channels, axis=-1).astype(np.float32)


def _resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Host: nearest sample of pixel centres (keeps nan and exact values)."""
  rows = np.minimum(((np.arange(size[0]) + 0.5) * image.shape[0] / size[0]).astype(int), image.shape[0] - 1)
  cols = np.minimum(((np.arange(size[1]) + 0.5) * image.shape[1] / size[1]).astype(int), image.shape[1] - 1)
  return image[rows][:, cols]


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Host: bool [H', W']: area average of a binary mask [H, W], then threshold at 1/2 (stays binary)."""
  return resize(np.asarray(mask, np.float32), size) >= 0.5


def unit_normals(normal: np.ndarray) -> np.ndarray:
  """Host: float32 [..., 3] scaled to unit length; (near) zero stays zero (= unknown, as stored)."""
  length = np.linalg.norm(normal, axis=-1, keepdims=True)
  return np.where(length > 1e-6, normal / np.maximum(length, 1e-6), 0.0).astype(np.float32)


def pixels_in_mask(uv: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Host: bool [N]: pixel coordinates uv float [N, 2] (OpenCV: pixel centres at integers) fall on a
  True pixel of mask bool [H, W]; False outside the image."""
  h, w = mask.shape
  col, row = np.floor(uv[:, 0] + 0.5).astype(np.int64), np.floor(uv[:, 1] + 0.5).astype(np.int64)
  inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
  hit = np.zeros(len(uv), bool)
  hit[inside] = mask[row[inside], col[inside]] > 0
  return hit


def _read_png(path: pathlib.Path, mode: str, fix: str) -> np.ndarray:
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert(mode))
  except (OSError, ValueError) as e:
    raise SequenceError(path, f'not a readable image ({e})', fix) from e


def _read_mask(path: pathlib.Path, allow_empty: bool) -> np.ndarray:
  """Host: a 0/255 PNG as f32 {0,1}; SequenceError if other values appear or (unless allowed) it is empty."""
  values = _read_png(path, 'L', 'write the mask again as an 8-bit PNG of 0 and 255')
  binary = (values == 0) | (values == 255)
  if not np.all(binary):
    bad = int(np.count_nonzero(~binary))
    raise SequenceError(path, f'mask is not binary ({bad} pixels neither 0 nor 255)',
                        'threshold it and save 0/255, e.g. Image.fromarray(np.uint8(m > 127) * 255)')
  if not allow_empty and not np.any(values):
    raise SequenceError(path, 'garment mask is empty (all 0)',
                        'leave this frame out of sequence.json "frames" (and its files) or fix the mask')
  return (values == 255).astype(np.float32)


def _npy_header(path: pathlib.Path) -> tuple[tuple[int, ...], np.dtype]:
  try:
    array = np.load(path, mmap_mode='r', allow_pickle=False)
  except (OSError, ValueError) as e:
    raise SequenceError(path, f'not a readable .npy ({e})', 'write it again with np.save') from e
  return array.shape, array.dtype


def _check_npy(path: pathlib.Path, shape: tuple[int, ...], what: str) -> None:
  got_shape, dtype = _npy_header(path)
  if got_shape != shape or dtype != np.float32:
    raise SequenceError(path, f'{what} has shape {got_shape} and dtype {dtype}, expected {shape} float32',
                        f'save a float32 array of shape {shape} (the image size of sequence.json)')


def _camera_from_json(value: Any, where: pathlib.Path, key: str) -> Camera:
  fix = f'give "{key}" as {{"K": 3x3 pixels, "world_to_camera": 4x4 OpenCV}} with finite numbers'
  if not isinstance(value, dict) or 'K' not in value or 'world_to_camera' not in value:
    raise SequenceError(where, f'"{key}" lacks "K" or "world_to_camera"', fix)
  try:
    k = np.array(value['K'], np.float64)
    w2c = np.array(value['world_to_camera'], np.float64)
  except (TypeError, ValueError) as e:
    raise SequenceError(where, f'"{key}" holds non-numbers ({e})', fix) from e
  if k.shape != (3, 3) or w2c.shape != (4, 4):
    raise SequenceError(where, f'"{key}" has K {k.shape} and world_to_camera {w2c.shape}, expected (3, 3), (4, 4)', fix)
  if not (np.all(np.isfinite(k)) and np.all(np.isfinite(w2c))):
    raise SequenceError(where, f'"{key}" holds non-finite numbers', fix)
  if not np.allclose(k[2], [0, 0, 1]) or k[0, 0] <= 0 or k[1, 1] <= 0:
    raise SequenceError(where, f'"{key}" K is not a pinhole matrix (last row [0, 0, 1], fx, fy > 0)', fix)
  if not np.allclose(w2c[3], [0, 0, 0, 1]):
    raise SequenceError(where, f'"{key}" world_to_camera last row is {w2c[3].tolist()}, not [0, 0, 0, 1]', fix)
  rotation = w2c[:3, :3]
  if not np.allclose(rotation @ rotation.T, np.eye(3), atol=ROTATION_TOLERANCE) or np.linalg.det(rotation) <= 0:
    raise SequenceError(where, f'"{key}" world_to_camera rotation block is not a rotation (R R^T = I and det R = +1 '
                        f'within {ROTATION_TOLERANCE}; det R = {np.linalg.det(rotation):.3g})',
                        'store a rigid world-to-camera transform [R t; 0 0 0 1] in OpenCV axes (no scale, no mirror)')
  return Camera(k.astype(np.float32), w2c.astype(np.float32))


def _check_template(path: pathlib.Path) -> None:
  """Host: SequenceError unless `path` is a non-empty, finite triangle mesh without degenerate faces."""
  fix = 'export the garment as a triangulated OBJ in the body rest space (metres), e.g. trimesh.Trimesh(v, f).export'
  try:  # maintain_order: the OBJ reader would silently drop vertices of no face.
    mesh = trimesh.load(path, force='mesh', process=False, maintain_order=True)
  except Exception as e:  # trimesh raises many types on malformed files.
    raise SequenceError(path, f'not a readable mesh ({e})', fix) from e
  faces = np.asarray(getattr(mesh, 'faces', np.zeros((0, 3))))
  vertices = np.asarray(getattr(mesh, 'vertices', np.zeros((0, 3))))
  if len(faces) == 0 or faces.ndim != 2 or faces.shape[1] != 3:
    raise SequenceError(path, f'not a valid triangle mesh (faces of shape {faces.shape})', fix)
  if not np.all(np.isfinite(vertices)):
    raise SequenceError(path, 'not a valid triangle mesh (non-finite vertices)', fix)
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise SequenceError(path, 'not a valid triangle mesh (face indices out of range)', fix)
  tri = vertices[faces]
  areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
  degenerate = int(np.count_nonzero(areas <= 1e-12))
  if degenerate:
    raise SequenceError(path, f'not a valid triangle mesh ({degenerate} faces of zero area)',
                        'remove degenerate faces (trimesh: mesh.update_faces(mesh.nondegenerate_faces()))')
  edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
  unique, counts = np.unique(edges, axis=0, return_counts=True)
  if np.any(counts > 2):
    a, b = unique[np.argmax(counts)]
    raise SequenceError(path, f'non-manifold mesh ({int(np.count_nonzero(counts > 2))} edges shared by more than two '
                        f'faces, e.g. vertices {a}-{b} shared by {counts.max()} faces)',
                        'remove the extra faces at those edges (each edge may border at most two faces)')
  isolated = len(vertices) - len(np.unique(faces))
  if isolated:
    logging.warning('%s: %d vertices belong to no face; they are dropped (remove them to silence this).',
                    path, isolated)


@dataclasses.dataclass(frozen=True)
class Sequence:
  """A validated sequence folder; frames are read from disk on request (load_frame).

  K f32[T,3,3] and world_to_camera f32[T,4,4] are per frame at the stored image size;
  channels: the optional channels present (subset of OPTIONAL_CHANNELS); gt_frames: frames with
  a true garment mesh; eval_cameras: held-out cameras by name.
  """

  path: pathlib.Path
  frames: tuple[str, ...]
  fps: float
  image_size: tuple[int, int]
  K: np.ndarray  # pylint: disable=invalid-name
  world_to_camera: np.ndarray
  eval_cameras: dict[str, Camera]
  garment: str
  source: str
  body: body_lib.BodyData
  template_path: pathlib.Path | None
  channels: frozenset[str]
  gt_frames: frozenset[str]

  @property
  def num_frames(self) -> int:
    return len(self.frames)

  def _file(self, folder: str, i: int, suffix: str) -> pathlib.Path:
    return self.path / folder / f'{self.frames[i]}{suffix}'

  def camera(self, i: int, resolution: int | None = None) -> Camera:
    """Camera of frame i, K scaled to the image of `resolution` (longer side in pixels)."""
    camera = Camera(self.K[i], self.world_to_camera[i])
    return scale_camera(camera, self.image_size, resized_size(self.image_size, resolution))

  def load_frame(self, i: int, resolution: int | None = None) -> Frame:
    """Host: frame i, resized so that its longer side has `resolution` pixels (None: as stored).

    rgb: area (box) filter; masks: area average thresholded at 1/2; normal: bilinear then
    renormalized; depth: nearest. SequenceError naming the file on bad contents.
    """
    size = resized_size(self.image_size, resolution)
    rgb_path = self._file('rgb', i, '.png')
    rgb = _read_png(rgb_path, 'RGB', 'write the frame again as an RGB PNG').astype(np.float32) / 255.0
    frame = Frame(
        rgb=resize(rgb, size),
        mask=np.float32(resize_mask(_read_mask(self._file('mask', i, '.png'), allow_empty=False), size)),
        hands=None, normal=None, depth=None,
    )
    if 'hands' in self.channels:
      frame = frame._replace(
          hands=np.float32(resize_mask(_read_mask(self._file('hands', i, '.png'), allow_empty=True), size)))
    if 'normal' in self.channels:
      normal = self._load_normal(i)
      frame = frame._replace(normal=normal if normal.shape[:2] == size else
                             unit_normals(resize(normal, size, Image.Resampling.BILINEAR)))
    if 'depth' in self.channels:
      depth_path = self._file('depth', i, '.npy')
      depth = np.load(depth_path)
      if np.any(np.isinf(depth)):
        raise SequenceError(depth_path, 'depth holds inf', 'mark unknown depth with nan, not inf')
      frame = frame._replace(depth=_resize_nearest(depth, size))
    return frame

  def _load_normal(self, i: int) -> np.ndarray:
    path = self._file('normal', i, '.npy')
    normal = np.load(path)
    length = np.linalg.norm(normal, axis=-1)
    unit = (np.abs(length - 1.0) <= NORMAL_LENGTH_TOLERANCE) | (length == 0.0)
    if not np.all(np.isfinite(normal)) or not np.all(unit):
      raise SequenceError(path, f'{int(np.count_nonzero(~unit))} normals are not finite unit vectors '
                          f'(or 0 for unknown) within {NORMAL_LENGTH_TOLERANCE}',
                          'normalize the normal map: n / np.linalg.norm(n, axis=-1, keepdims=True)')
    return normal

  def gt_mesh(self, i: int) -> trimesh.Trimesh:
    """Host: the true garment mesh of frame i (world frame, evaluation only), vertex order kept."""
    path = self._file('gt/garment', i, '.ply')
    if self.frames[i] not in self.gt_frames:
      raise SequenceError(path, 'no ground-truth garment mesh for this frame',
                          'evaluate geometry only on frames with gt/garment/<frame>.ply')
    fix = 'write the true garment mesh again as a triangle PLY (or remove it: gt meshes are optional)'
    try:
      mesh = trimesh.load(path, force='mesh', process=False)
    except Exception as e:  # trimesh raises many types on malformed files.
      raise SequenceError(path, f'not a readable mesh ({e})', fix) from e
    if len(getattr(mesh, 'faces', ())) == 0 or not np.all(np.isfinite(mesh.vertices)):
      raise SequenceError(path, 'not a valid triangle mesh (no faces or non-finite vertices)', fix)
    return mesh

  def eval_view(self, name: str, i: int, resolution: int | None = None) -> EvalView:
    """Host: held-out camera `name` at frame i, resized like load_frame, camera scaled to match."""
    folder = self.path / 'gt' / 'views' / name
    if name not in self.eval_cameras:
      raise SequenceError(folder, f'no eval camera {name!r} (have {sorted(self.eval_cameras)})',
                          'use a name listed in sequence.json "eval_cameras"')
    rgb_path = folder / 'rgb' / f'{self.frames[i]}.png'
    rgb = _read_png(rgb_path, 'RGB', 'write the view again as an RGB PNG').astype(np.float32) / 255.0
    mask_path = folder / 'mask' / f'{self.frames[i]}.png'
    mask = _read_mask(mask_path, allow_empty=True)
    if mask.shape != rgb.shape[:2]:
      raise SequenceError(mask_path, f'mask is {mask.shape}, its image is {rgb.shape[:2]}', 'write both at one size')
    size = resized_size(rgb.shape[:2], resolution)
    return EvalView(resize(rgb, size), np.float32(resize_mask(mask, size)),
                    scale_camera(self.eval_cameras[name], rgb.shape[:2], size))


def _load_json(path: pathlib.Path) -> dict:
  if not path.parent.is_dir():
    raise SequenceError(path.parent, 'sequence folder not found', 'pass the folder that holds sequence.json')
  if not path.is_file():
    raise SequenceError(path, 'file not found', 'write the sequence with ngd_jax.data.write_sequence (or an importer)')
  try:
    meta = json.loads(path.read_text())
  except (ValueError, OSError) as e:
    raise SequenceError(path, f'not valid JSON ({e})', 'write sequence.json again') from e
  if not isinstance(meta, dict) or meta.get('format') != FORMAT:
    found = meta.get('format') if isinstance(meta, dict) else type(meta).__name__
    raise SequenceError(path, f'"format" is {found!r}, expected {FORMAT!r}', f'set "format": "{FORMAT}"')
  return meta


def _parse_meta(path: pathlib.Path, meta: dict) -> tuple:
  """Host: (frames, fps, image_size, garment, source) from sequence.json, each checked."""
  frames = meta.get('frames')
  if (not isinstance(frames, list) or not frames or not all(isinstance(f, str) and f and '/' not in f for f in frames)
      or len(set(frames)) != len(frames)):
    raise SequenceError(path, '"frames" must be a non-empty list of unique file stems (e.g. "000000")',
                        'list the frame names, one per rgb/<name>.png')
  fps = meta.get('fps')
  if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
    raise SequenceError(path, f'"fps" is {fps!r}', 'give the frame rate as a positive number')
  size = meta.get('image_size')
  if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
    raise SequenceError(path, f'"image_size" is {size!r}', 'give [H, W] of the rgb images in pixels')
  if meta.get('units', 'm') != 'm':
    raise SequenceError(path, f'"units" is {meta["units"]!r}', 'store positions in metres ("units": "m")')
  garment = meta.get('garment')
  if garment not in GARMENTS:
    raise SequenceError(path, f'"garment" is {garment!r}', f'use one of {GARMENTS}')
  source = meta.get('source', '')
  if not isinstance(source, str):
    raise SequenceError(path, '"source" is not text', 'describe where the data came from as a string')
  return tuple(frames), float(fps), (size[0], size[1]), garment, source


def _parse_cameras(path: pathlib.Path, meta: dict, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
  if 'cameras' in meta:
    cams = meta['cameras']
    if not isinstance(cams, list) or len(cams) != num_frames:
      count = len(cams) if isinstance(cams, list) else type(cams).__name__
      raise SequenceError(path, f'"cameras" has {count} entries for {num_frames} frames',
                          'give one camera per frame in "cameras" (or one static "camera")')
    parsed = [_camera_from_json(c, path, f'cameras[{t}]') for t, c in enumerate(cams)]
  elif 'camera' in meta:
    parsed = [_camera_from_json(meta['camera'], path, 'camera')] * num_frames
  else:
    raise SequenceError(path, 'neither "camera" nor "cameras" is given', 'add the camera of the video')
  return np.stack([c.K for c in parsed]), np.stack([c.world_to_camera for c in parsed])


def _png_size(path: pathlib.Path) -> tuple[int, int]:
  """Host: (H, W) from the PNG header, without decoding the pixels."""
  try:
    with Image.open(path) as image:
      return image.height, image.width
  except (OSError, ValueError) as e:
    raise SequenceError(path, f'not a readable image ({e})', 'write it again as a PNG') from e


def _check_image_folder(root: pathlib.Path, folder: str, frames, size=None, suffix: str = '.png') -> None:
  """Host: every frame's file exists, the folder holds no other frames, PNG headers give `size`
  (None: the first frame's size)."""
  directory = root / folder
  if not directory.is_dir():
    raise SequenceError(directory, 'folder not found', f'write one {folder}/<frame>{suffix} per frame')
  present = {p.stem for p in directory.glob(f'*{suffix}')}
  missing = [f for f in frames if f not in present]
  if missing:
    raise SequenceError(directory / f'{missing[0]}{suffix}',
                        f'file not found ({len(missing)} of {len(frames)} frames missing in {folder}/)',
                        f'write {folder}/<frame>{suffix} for every frame listed in sequence.json')
  if len(present) != len(frames):
    raise SequenceError(directory, f'{folder}/ holds {len(present)} frames but sequence.json lists {len(frames)} '
                        '(frame counts disagree)', f'remove extra files or list every frame in "frames"')
  if suffix != '.png':
    return
  for frame in frames:
    file = directory / f'{frame}.png'
    found = _png_size(file)
    size = size or found
    if found != size:
      raise SequenceError(file, f'image is {found[0]}x{found[1]} (HxW), sequence.json image_size is '
                          f'{size[0]}x{size[1]} (images of different sizes)',
                          'write every frame at the same size and put it in image_size')


def read_sequence(path: str | os.PathLike) -> Sequence:
  """Host: opens and validates the sequence folder `path` (see the module docstring for what)."""
  root = pathlib.Path(path)
  json_path = root / 'sequence.json'
  meta = _load_json(json_path)
  frames, fps, size, garment, source = _parse_meta(json_path, meta)
  k, w2c = _parse_cameras(json_path, meta, len(frames))
  eval_json = meta.get('eval_cameras', {})
  if not isinstance(eval_json, dict):
    raise SequenceError(json_path, '"eval_cameras" is not an object',
                        'give {"<name>": {"K": ..., "world_to_camera": ...}}')
  eval_cameras = {n: _camera_from_json(c, json_path, f'eval_cameras.{n}') for n, c in eval_json.items()}

  _check_image_folder(root, 'rgb', frames, size)
  _check_image_folder(root, 'mask', frames, size)
  for frame in frames:
    _read_mask(root / 'mask' / f'{frame}.png', allow_empty=False)
  channels = {c for c in OPTIONAL_CHANNELS if (root / c).is_dir()}
  if 'hands' in channels:
    _check_image_folder(root, 'hands', frames, size)
  for channel, shape in (('normal', size + (3,)), ('depth', size)):
    if channel in channels:
      _check_image_folder(root, channel, frames, size, suffix='.npy')
      for frame in frames:
        _check_npy(root / channel / f'{frame}.npy', shape, channel)

  body_path = root / 'body.npz'
  try:
    body = body_lib.read_body_npz(body_path)
  except body_lib.BodyDataError as e:
    raise SequenceError(body_path, e.problem, e.fix) from e
  if body.num_frames != len(frames):
    raise SequenceError(body_path, f'transforms has {body.num_frames} frames but sequence.json lists {len(frames)} '
                        '(frame counts disagree)', 'bake the body for exactly the frames in sequence.json')

  template = root / 'template.obj'
  if template.exists():
    _check_template(template)
  views = root / 'gt' / 'views'
  on_disk = {p.name for p in views.iterdir() if p.is_dir()} if views.is_dir() else set()
  if on_disk != set(eval_cameras):
    raise SequenceError(views, f'held-out views on disk {sorted(on_disk)} differ from "eval_cameras" '
                        f'{sorted(eval_cameras)} in sequence.json', 'give one eval camera per gt/views/<name>')
  for name in eval_cameras:
    for sub in ('rgb', 'mask'):
      _check_image_folder(views / name, sub, frames)
  gt_dir = root / 'gt' / 'garment'
  gt_frames = {p.stem for p in gt_dir.glob('*.ply')} if gt_dir.is_dir() else set()
  if gt_frames - set(frames):
    raise SequenceError(gt_dir, f'gt/garment/ holds {len(gt_frames - set(frames))} meshes of frames not listed in '
                        f'sequence.json, e.g. {sorted(gt_frames - set(frames))[0]}.ply (frame counts disagree)',
                        'name each true mesh after a frame of "frames" (gt/garment/<frame>.ply) or remove the extras')
  seq = Sequence(
      path=root, frames=frames, fps=fps, image_size=size, K=k, world_to_camera=w2c, eval_cameras=eval_cameras,
      garment=garment, source=source, body=body, template_path=template if template.exists() else None,
      channels=frozenset(channels), gt_frames=frozenset(gt_frames),
  )
  for i, frame in enumerate(frames):  # Readable before training, not found bad after it.
    if frame in gt_frames:
      seq.gt_mesh(i)
  return seq


def validate_sequence(path: str | os.PathLike) -> list[str]:
  """Host: every problem of the sequence at `path`, one message each ([] = valid).

  Beyond read_sequence, decodes every frame's channels and every held-out view.
  """
  try:
    seq = read_sequence(path)
  except SequenceError as e:
    return [str(e)]
  checks = [lambda i=i: seq.load_frame(i) for i in range(seq.num_frames)]
  checks += [lambda i=i, n=n: seq.eval_view(n, i) for n in seq.eval_cameras for i in range(seq.num_frames)]
  problems = []
  for check in checks:
    try:
      check()
    except SequenceError as e:
      problems.append(str(e))
  return problems



def check_in_view(seq: Sequence, indices: np.ndarray, posed: np.ndarray, masks: np.ndarray,
                  world_to_clip: np.ndarray) -> None:
  """Host: SequenceError unless the skinned garment template lies in front of the camera in every
  training frame and overlaps that frame's garment mask (a camera turned around or inverted).

  indices int [T]: the sequence frame of each row; posed float [T, V, 3]: the template skinned to
  each frame (world); masks {0, 1} [T, H, W] and world_to_clip float [T, 4, 4] at one size (clip
  space as in WORKSPACE.md: w is the camera depth).
  """
  homogeneous = np.concatenate([posed, np.ones_like(posed[..., :1])], axis=-1).astype(np.float64)
  clip = np.einsum('tij,tvj->tvi', np.asarray(world_to_clip, np.float64), homogeneous)
  height, width = masks.shape[1:3]
  num_vertices = posed.shape[1]
  for t, index in enumerate(indices):
    frame = seq.frames[int(index)]
    behind = int(np.count_nonzero(clip[t, :, 3] <= 0))
    if behind:
      raise SequenceError(seq.path / 'sequence.json', f'{behind} of the {num_vertices} vertices of the garment '
                          f'template, skinned to frame {frame}, lie behind that frame\'s camera',
                          'world_to_camera must map world to camera coordinates, z forward (OpenCV): check that it '
                          'is not camera-to-world or turned around, and that body.npz holds these frames')
    ndc = clip[t, :, :2] / clip[t, :, 3:]
    # Pixel centres at x_ndc = 2 (c + 0.5) / W - 1; row 0 is the top row.
    uv = np.stack([(ndc[:, 0] + 1.0) * width / 2.0 - 0.5, (1.0 - ndc[:, 1]) * height / 2.0 - 0.5], axis=-1)
    if not pixels_in_mask(uv, masks[t]).any():
      raise SequenceError(seq.path / 'mask' / f'{frame}.png', f'none of the {num_vertices} vertices of the garment '
                          'template, skinned to this frame, projects into this garment mask',
                          'check that the camera of this frame (sequence.json), the mask and body.npz belong '
                          'together, and that the template lies in the body rest space')


# Writing.


def _rgb_png(rgb: np.ndarray) -> Image.Image:
  rgb = np.asarray(rgb)
  if rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f'rgb has shape {rgb.shape}, expected (H, W, 3).')
  if rgb.dtype != np.uint8:
    rgb = np.uint8(np.round(np.clip(rgb, 0.0, 1.0) * 255.0))
  return Image.fromarray(rgb, 'RGB')


def _mask_png(mask: np.ndarray) -> Image.Image:
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f'mask has shape {mask.shape}, expected (H, W).')
  if mask.dtype != bool:
    if np.all((mask == 0) | (mask == 1)):
      mask = mask == 1
    elif np.all((mask == 0) | (mask == 255)):
      mask = mask == 255
    else:
      raise ValueError('mask values must be binary: bool, {0, 1} or {0, 255}.')
  return Image.fromarray(np.uint8(mask) * 255, 'L')


def _save_png(path: pathlib.Path, image: Image.Image) -> None:
  files.atomic_write(path, lambda f: image.save(f, format='PNG'))


def _save_npy(path: pathlib.Path, array: np.ndarray) -> None:
  files.atomic_write(path, lambda f: np.save(f, np.asarray(array, np.float32)))


def _camera_json(camera: Any) -> dict[str, list]:
  """Camera, any object with K and world_to_camera, or a {"K", "world_to_camera"} dict -> JSON dict."""
  if isinstance(camera, dict):
    return Camera(camera['K'], camera['world_to_camera']).to_json()
  return Camera(camera.K, camera.world_to_camera).to_json()


def _mesh(mesh: Any) -> trimesh.Trimesh:
  if isinstance(mesh, trimesh.Trimesh):
    return mesh
  vertices, faces = mesh
  return trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=False)


class SequenceWriter:
  """Host: writes a sequence folder frame by frame (importers, the synthetic generator).

  Everything is written into `folder`, a hidden folder next to `path` (a caller's extra files go
  there too) that finish() renames to `path` once the sequence reads back valid, so a write that
  stops early leaves `path` as it was: absent, or (overwrite=True) the sequence it held. Used as a
  context manager, an exception removes the hidden folder.
  """

  def __init__(self, path: str | os.PathLike, overwrite: bool = False):
    self.path = pathlib.Path(path)
    if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
      if not (self.path / 'sequence.json').is_file():
        raise SequenceError(self.path, 'exists, is not empty and holds no sequence.json',
                            'choose a new output folder (overwriting replaces only a sequence folder)')
      if not overwrite:
        raise SequenceError(self.path, 'folder exists and is not empty (a sequence)',
                            'choose a new output folder, or replace it with --overwrite (overwrite=True)')
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self.folder = files.temporary_folder(self.path.parent, f'.{self.path.name}.')
    self.frames: list[str] = []
    self._channels: dict[str, int] = {c: 0 for c in OPTIONAL_CHANNELS}
    self._size: tuple[int, int] | None = None

  def __enter__(self) -> 'SequenceWriter':
    return self

  def __exit__(self, *exc_info) -> None:
    shutil.rmtree(self.folder, ignore_errors=True)

  def _swap_in(self) -> None:
    """Host: renames the written folder to `path`; a sequence already there goes only once it is replaced."""
    if self.path.exists() and any(self.path.iterdir()):
      old = files.temporary_folder(self.path.parent, f'.{self.path.name}.old.')
      os.replace(self.path, old)
      os.replace(self.folder, self.path)
      shutil.rmtree(old)
    else:
      os.replace(self.folder, self.path)

  def add_frame(self, rgb, mask, hands=None, normal=None, depth=None, name: str | None = None) -> str:
    """Host: writes frame files; rgb uint8|f[H,W,3] in [0,1], mask bool|{0,1}|{0,255} [H,W], hands like mask,
    normal f[H,W,3] unit (OpenCV camera frame), depth f[H,W] (nan = unknown). Returns the frame name."""
    name = f'{len(self.frames):06d}' if name is None else name
    image = _rgb_png(rgb)
    size = (image.height, image.width)
    self._size = self._size or size
    if size != self._size:
      raise ValueError(f'frame {name}: rgb is {size}, earlier frames are {self._size}; all frames need one size.')
    _save_png(self.folder / 'rgb' / f'{name}.png', image)
    _save_png(self.folder / 'mask' / f'{name}.png', _mask_png(mask))
    for channel, value, save in (('hands', hands, lambda p, v: _save_png(p, _mask_png(v))),
                                 ('normal', normal, _save_npy), ('depth', depth, _save_npy)):
      if value is not None:
        save(self.folder / channel / f'{name}{".png" if channel == "hands" else ".npy"}', value)
        self._channels[channel] += 1
    self.frames.append(name)
    return name

  def add_eval_view(self, view: str, rgb, mask, frame: str | None = None) -> None:
    """Host: held-out camera `view`'s image and garment mask of `frame` (default: the last added)."""
    frame = self.frames[-1] if frame is None else frame
    _save_png(self.folder / 'gt' / 'views' / view / 'rgb' / f'{frame}.png', _rgb_png(rgb))
    _save_png(self.folder / 'gt' / 'views' / view / 'mask' / f'{frame}.png', _mask_png(mask))

  def add_gt_garment(self, vertices, faces, frame: str | None = None) -> None:
    """Host: the true garment mesh (world frame) of `frame` (default: the last added) as PLY."""
    frame = self.frames[-1] if frame is None else frame
    mesh = _mesh((vertices, faces))
    files.atomic_write(self.folder / 'gt' / 'garment' / f'{frame}.ply', lambda f: mesh.export(f, file_type='ply'))

  def finish(self, *, camera=None, cameras=None, body: body_lib.BodyData, fps: float = 30.0, garment: str,
             source: str = '', eval_cameras: dict | None = None, template=None) -> Sequence:
    """Host: writes body.npz, template.obj (a path to a mesh file, a trimesh, or (V, F)) and, last,
    sequence.json; returns the sequence read back (validated).

    camera: one static camera; cameras: one per frame (then "camera" holds the first too).
    """
    num = len(self.frames)
    if not num:
      raise ValueError(f'{self.path}: no frames were added; call add_frame before finish.')
    for channel, count in self._channels.items():
      if count not in (0, num):
        raise ValueError(f'{channel} was given for {count} of {num} frames; give it for all frames or none.')
    if body.num_frames != num:
      raise ValueError(f'body has {body.num_frames} frames, {num} frames were added.')
    if (camera is None) == (cameras is None):
      raise ValueError('give exactly one of camera (static) or cameras (one per frame).')
    if garment not in GARMENTS:
      raise ValueError(f'garment {garment!r} is not one of {GARMENTS}.')
    meta = {'format': FORMAT, 'fps': fps, 'image_size': list(self._size or (0, 0)), 'units': 'm',
            'frames': self.frames, 'garment': garment, 'source': source}
    if cameras is not None:
      if len(cameras) != num:
        raise ValueError(f'{len(cameras)} cameras for {num} frames.')
      meta['cameras'] = [_camera_json(c) for c in cameras]
      meta['camera'] = meta['cameras'][0]
    else:
      meta['camera'] = _camera_json(camera)
    if eval_cameras:
      meta['eval_cameras'] = {n: _camera_json(c) for n, c in eval_cameras.items()}
    body_lib.write_body_npz(self.folder / 'body.npz', body)
    if template is not None:
      if isinstance(template, (str, os.PathLike)):
        template = trimesh.load(template, force='mesh', process=False)
      mesh = _mesh(template)
      files.atomic_write(self.folder / 'template.obj', lambda f: f.write(mesh.export(file_type='obj').encode()))
    text = json.dumps(meta, indent=1)
    files.atomic_write(self.folder / 'sequence.json', lambda f: f.write(text.encode()))
    written = read_sequence(self.folder)
    self._swap_in()
    return dataclasses.replace(written, path=self.path,
                               template_path=self.path / 'template.obj' if written.template_path else None)


def write_sequence(path: str | os.PathLike, *, rgb: Iterable, masks: Iterable, body: body_lib.BodyData,
                   garment: str, camera=None, cameras=None, fps: float = 30.0, source: str = '',
                   hands: Iterable | None = None, normals: Iterable | None = None, depths: Iterable | None = None,
                   template=None, gt_meshes: Iterable | None = None, eval_views: dict | None = None,
                   eval_cameras: dict | None = None, frame_names: Iterable[str] | None = None,
                   overwrite: bool = False) -> Sequence:
  """Host: writes a whole sequence folder (see SequenceWriter for the value types).

  Per-frame inputs are sequences of equal length T; gt_meshes: T (vertices, faces) or trimesh;
  eval_views: {name: (rgb list, mask list)} with eval_cameras {name: camera}. Returns read_sequence.
  """
  rgb, masks = list(rgb), list(masks)
  if len(rgb) != len(masks):
    raise ValueError(f'{len(rgb)} rgb images but {len(masks)} masks.')
  per_frame = {'hands': hands, 'normals': normals, 'depths': depths, 'gt_meshes': gt_meshes,
               'frame_names': frame_names}
  per_frame = {k: list(v) if v is not None else [None] * len(rgb) for k, v in per_frame.items()}
  for key, values in per_frame.items():
    if len(values) != len(rgb):
      raise ValueError(f'{key} has {len(values)} entries for {len(rgb)} frames.')
  with SequenceWriter(path, overwrite=overwrite) as writer:
    for t, (image, mask) in enumerate(zip(rgb, masks)):
      writer.add_frame(image, mask, hands=per_frame['hands'][t], normal=per_frame['normals'][t],
                       depth=per_frame['depths'][t], name=per_frame['frame_names'][t])
      if per_frame['gt_meshes'][t] is not None:
        mesh = _mesh(per_frame['gt_meshes'][t])
        writer.add_gt_garment(mesh.vertices, mesh.faces)
      for view, (view_rgb, view_masks) in (eval_views or {}).items():
        writer.add_eval_view(view, view_rgb[t], view_masks[t])
    return writer.finish(camera=camera, cameras=cameras, body=body, fps=fps, garment=garment, source=source,
                         eval_cameras=eval_cameras, template=template)
