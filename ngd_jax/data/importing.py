"""Host: what the importers (dress4d, capture, people_snapshot) share: their error base, the per-frame
estimates of other tools (normal and depth maps), the scan/body renders and projections that check
those inputs, and the program wrapper that turns an importer's user errors into one line.

Normal maps are decoded explicitly (--normals_encoding): 'signed' values in [-1, 1] (float .npy, as
Sapiens writes), 'unsigned' in [0, 1] (n = 2 v - 1, as normal maps are stored for display), 'png8'
and 'png16' (n = 2 v / 255 - 1, n = 2 v / 65535 - 1: 8- and 16-bit PNGs or integer .npy), or 'auto',
decided once from the first frame's file (its PNG bit depth, else whether any value on the garment
is negative) with the reason logged and written into sequence.json's source. Whatever the encoding,
the decoded values on the garment must lie in [-1, 1] and be unit vectors, or the import stops.
"""

from collections.abc import Callable, Sequence as SequenceT
import functools
import pathlib
from typing import Any, NamedTuple

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import smplx_jax

from ngd_jax import errors
from ngd_jax import render
from ngd_jax.data import sequence
from ngd_jax.data.sequence import Camera

SCAN_BUCKET = 4096  # Scan arrays are padded to a multiple of this (one rasterizer compile per bucket).
NORMAL_ENCODINGS = ('auto', 'signed', 'unsigned', 'png8', 'png16')
_NORMAL_SCALE = {'signed': (1.0, 0.0), 'unsigned': (2.0, -1.0), 'png8': (2.0 / 255.0, -1.0),
                 'png16': (2.0 / 65535.0, -1.0)}  # n = scale v + shift.
NORMAL_RANGE_TOLERANCE = 0.02  # Decoded components may exceed [-1, 1] by this (8-bit rounding is 0.004).
# Unit length: |n| within NORMAL_UNIT_TOLERANCE of 1 on at least MIN_UNIT_NORMALS of the garment pixels.
# Measured (tests/test_capture.py): true maps 1.00 (float) and 1.00 (8-bit PNG); [0, 1] maps read as
# signed 0.06-0.10; 8-bit values read as [0, 1] fail the range check first.
NORMAL_UNIT_TOLERANCE = 0.05
MIN_UNIT_NORMALS = 0.9


class NormalEncoding(NamedTuple):
  """How a folder's normal maps are decoded: name (one of NORMAL_ENCODINGS but 'auto') and why."""

  name: str
  reason: str


class InputError(errors.UserError, ValueError):
  """An importer's input that cannot be used (base of dress4d.DatasetError and capture.CaptureError);
  the message names the file and the fix."""


# Scans and bodies seen by a camera.


class Scan(NamedTuple):
  """One scan frame: vertices f64 [N, 3] (m), faces i32 [F, 3], labels i32 [N], normals f64 [N, 3]."""

  vertices: np.ndarray
  faces: np.ndarray
  labels: np.ndarray
  normals: np.ndarray


class ScanRender(NamedTuple):
  """The whole scan seen by one camera.

  rast float32 [H, W, 4] = (u, v, z/w, face id + 1); normal float32 [H, W, 3] unit normals of the
  visible surface in OpenCV camera axes (0 = unknown where no scan is seen, as in the sequence
  format); depth float32 [H, W] camera z in metres (nan where no scan is seen).
  """

  rast: np.ndarray
  normal: np.ndarray
  depth: np.ndarray


@functools.partial(jax.jit, static_argnames=('size',))
def _render_scan(clip, faces, normals, depth, size):
  """Rasterize + interpolate camera-frame normals f32[V, 3] and depth f32[V]; jit, once per bucket."""
  rast = render.rasterize(clip, faces, size)
  values = render.interpolate(jnp.concatenate([normals, depth[:, None]], axis=1), rast, faces)
  covered = rast[..., 3:] > 0
  normal = values[..., :3] / jnp.maximum(jnp.linalg.norm(values[..., :3], axis=-1, keepdims=True), 1e-12)
  normal = jnp.where(covered, normal, 0.0)
  return rast, normal, jnp.where(covered[..., 0], values[..., 3], jnp.nan)


def render_scan(camera: Camera, scan: Scan, size: tuple[int, int], near: float, far: float) -> ScanRender:
  """Host: the project's rasterizer on a whole scan, so the rest of the scan occludes the garment.

  Scans differ in size per frame: vertices and faces are padded to multiples of SCAN_BUCKET
  (padding faces (0, 0, 0) are never drawn, WORKSPACE.md) so that jit compiles once per bucket.
  """
  rotation = np.asarray(camera.world_to_camera, np.float64)[:3]
  world_to_clip = render.camera_to_clip(
      np.float32(camera.K), np.float32(camera.world_to_camera), size, near, far)
  num_v = -(-len(scan.vertices) // SCAN_BUCKET) * SCAN_BUCKET
  num_f = -(-len(scan.faces) // SCAN_BUCKET) * SCAN_BUCKET
  vertices = np.zeros((num_v, 3), np.float32)
  vertices[:len(scan.vertices)] = scan.vertices
  vertices[len(scan.vertices):] = scan.vertices[0]
  faces = np.zeros((num_f, 3), np.int32)
  faces[:len(scan.faces)] = scan.faces
  normals = np.zeros((num_v, 3), np.float32)
  normals[:len(scan.normals)] = scan.normals @ rotation[:, :3].T
  depth = np.float32(vertices @ rotation[2, :3] + rotation[2, 3])
  rast, normal, depth_map = _render_scan(render.to_clip(vertices, world_to_clip), faces, normals, depth, size)
  return ScanRender(np.asarray(rast), np.asarray(normal), np.asarray(depth_map))


def project(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: OpenCV projection; returns pixel coordinates (u, v) float64 [N, 2] and depth z [N]."""
  x = points @ np.asarray(camera.world_to_camera, np.float64)[:3, :3].T + camera.world_to_camera[:3, 3]
  z = x[:, 2]
  uvw = x @ np.asarray(camera.K, np.float64).T
  return uvw[:, :2] / np.where(np.abs(z) > 1e-12, z, 1e-12)[:, None], z


def mask_overlap(camera: Camera, points: np.ndarray, mask: np.ndarray) -> float:
  """Host: fraction of points in front of the camera whose pixel lies inside the mask."""
  uv, z = project(camera, points)
  return float(np.mean((z > 0) & sequence.pixels_in_mask(uv, mask))) if len(points) else 0.0


# Estimates of other tools.


def estimate_file(folder: pathlib.Path, stems: SequenceT[str], fix: str) -> pathlib.Path:
  """Host: the first of <stem>.npy|.png in `folder`; InputError naming the stems and `fix` when none is."""
  for stem in stems:
    for ext in ('.npy', '.png'):
      if (folder / (stem + ext)).is_file():
        return folder / (stem + ext)
  raise InputError(f'{folder}: no estimate for frame {stems[0]} (looked for '
                   f'{" and ".join(f"{s}.npy|png" for s in stems)}). Fix: {fix}.')


def _read_estimate(path: pathlib.Path) -> np.ndarray:
  try:
    return np.load(path, allow_pickle=False) if path.suffix == '.npy' else np.asarray(Image.open(path))
  except (OSError, ValueError) as e:
    raise InputError(f'{path}: not a readable estimate ({e}). Fix: write it again (np.save or a PNG).') from e


def resolve_normal_encoding(path: pathlib.Path, mask: np.ndarray, encoding: str) -> NormalEncoding:
  """Host: the encoding of the normal maps whose first file is `path` (module docstring).

  mask: bool [H, W], the garment at the output size: 'auto' looks at the values there.
  """
  if encoding not in NORMAL_ENCODINGS:
    raise ValueError(f'normals encoding {encoding!r}; expected one of {NORMAL_ENCODINGS}.')
  if encoding != 'auto':
    return NormalEncoding(encoding, 'as given by --normals_encoding')
  raw = _read_estimate(path)
  if raw.dtype in (np.uint8, np.uint16):
    bits = 8 * raw.dtype.itemsize
    return NormalEncoding(f'png{bits}', f'auto: {path.name} holds {bits}-bit integers')
  garment = raw[..., :3][sequence.resize_mask(mask, raw.shape[:2])] if raw.ndim == 3 else raw
  lowest = float(np.min(garment)) if garment.size else 0.0
  if lowest < 0:
    return NormalEncoding('signed', f'auto: {path.name} has negative values on the garment (min {lowest:.2f})')
  return NormalEncoding('unsigned', f'auto: {path.name} has no negative value on the garment (min {lowest:.2f}), '
                        'so [0, 1]')


def load_normal_estimate(path: pathlib.Path, mask: np.ndarray, encoding: str, axes: str) -> np.ndarray:
  """Host: an estimator's normal map as float32 [H, W, 3] unit normals in OpenCV camera axes.

  path: .npy or RGB(A) PNG [h, w, 3+], decoded by `encoding` (not 'auto': resolve_normal_encoding
  first); mask: bool [H, W] the garment at the output size, where the decoded values must lie in
  [-1, 1] and be unit vectors. axes='opengl' (x right, y up, z towards the viewer, the usual
  normal-map convention) flips y and z. Resized bilinearly to the mask, renormalised, 0 = unknown.
  """
  n = _read_estimate(path)
  if n.ndim != 3 or n.shape[-1] < 3 or not np.all(np.isfinite(n)):
    raise InputError(f'{path}: expected a finite H x W x 3 normal map, got shape {n.shape}. Fix: give the '
                     "estimator's normal maps (--normals).")
  scale, shift = _NORMAL_SCALE[encoding]
  n = np.float64(n[..., :3]) * scale + shift
  garment = n[sequence.resize_mask(mask, n.shape[:2])]
  fix = ('pass the encoding the estimator wrote with --normals_encoding=signed|unsigned|png8|png16 '
         '([-1, 1], [0, 1], 8-bit, 16-bit values)')
  if garment.size and np.abs(garment).max() > 1.0 + NORMAL_RANGE_TOLERANCE:
    raise InputError(f'{path}: decoded as {encoding}, the normals on the garment reach '
                     f'[{garment.min():.2f}, {garment.max():.2f}], outside [-1, 1]. Fix: {fix}.')
  unit = float(np.mean(np.abs(np.linalg.norm(garment, axis=-1) - 1.0) <= NORMAL_UNIT_TOLERANCE)) if len(garment) else 0
  if unit < MIN_UNIT_NORMALS:
    raise InputError(f'{path}: decoded as {encoding}, {unit:.0%} of the normals on the garment have unit length '
                     f'(within {NORMAL_UNIT_TOLERANCE}), need {MIN_UNIT_NORMALS:.0%}. Fix: {fix}, or normalise '
                     'the maps (n / |n|).')
  if axes == 'opengl':
    n = n * np.float64([1, -1, -1])
  return sequence.unit_normals(sequence.resize(n, mask.shape, Image.Resampling.BILINEAR))


def load_depth_estimate(path: pathlib.Path, mask: np.ndarray, kind: str) -> np.ndarray:
  """Host: an estimator's depth as float32 [H, W] (the garment mask's size), larger = farther, nan = unknown.

  .npy float [h, w] or [h, w, 1]; .png 8/16-bit grey. kind='disparity' (larger = nearer, as
  relative inverse-depth estimators output) is negated, which keeps the ordering the loss uses.
  """
  d = _read_estimate(path).astype(np.float32)
  if d.ndim == 3 and d.shape[-1] == 1:
    d = d[..., 0]
  if d.ndim != 2:
    raise InputError(f'{path}: expected an H x W depth map, got shape {d.shape}. Fix: give the estimator\'s '
                     'depth maps (--depth).')
  d = np.where(np.isfinite(d), d, np.nan)
  d = sequence.resize(-d if kind == 'disparity' else d, mask.shape, Image.Resampling.BILINEAR)
  if np.mean(np.isfinite(d[mask])) < 0.5:
    raise InputError(f'{path}: depth is unknown (nan/inf) over most of the garment mask. Fix: give depth '
                     'maps that cover the garment.')
  return d


# Programs.


def run_importer(convert: Callable[[flags.FlagValues], Any], program: str) -> None:
  """Runs an importer's `convert(flags.FLAGS)` as a program: bad inputs or SMPL file are the user's to
  fix, so they print one line and exit 2, not a traceback."""

  def main(argv: SequenceT[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    convert(flags.FLAGS)

  errors.run_program(main, program, user_errors=(smplx_jax.ModelFileError,))
