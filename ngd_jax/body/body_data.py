"""Host: the baked body (body.npz of docs/design.md section 3) and its validated reader and writer."""

import dataclasses
import pathlib

import numpy as np

from ngd_jax import errors
from ngd_jax import files

WEIGHT_SUM_TOLERANCE = 1e-4  # Rows of skinning_weights must sum to 1 within this.


@dataclasses.dataclass(frozen=True)
class BodyData:
  """Any body model baked to skinning; what the garment needs (docs/design.md section 3).

  rest_vertices f32[Vb,3] shaped rest-pose body (m); faces i32[Fb,3]; skinning_weights f32[Vb,K]
  rows summing to 1; transforms f32[T,K,4,4] per-frame LBS transforms (posed = sum_k w_k A_k [v;1],
  translation included); pose f32[T,P] the pose vector conditioning the networks; optional
  parents i32[K], joint_names str[K], posed_vertices f32[T,Vb,3] (body mesh per frame).
  """

  rest_vertices: np.ndarray
  faces: np.ndarray
  skinning_weights: np.ndarray
  transforms: np.ndarray
  pose: np.ndarray
  parents: np.ndarray | None = None
  joint_names: np.ndarray | None = None
  posed_vertices: np.ndarray | None = None

  @property
  def num_frames(self) -> int:
    return self.transforms.shape[0]

  @property
  def num_joints(self) -> int:
    return self.skinning_weights.shape[1]


class BodyDataError(errors.UserError, ValueError):
  """A body.npz (or BodyData) that cannot be used; names the file, the problem and the fix."""

  def __init__(self, name: str, problem: str, fix: str):
    self.name, self.problem, self.fix = name, problem, fix
    super().__init__(f'{name}: {problem}. Fix: {fix}.')


def _fail(name: str, problem: str, fix: str):
  raise BodyDataError(name, problem, fix)


def _array(name, key, value, kind, shape):
  """Host: `value` as f32 ('f') or i32 ('i') after checking dtype kind, shape (None = any) and finiteness."""
  value = np.asarray(value)
  kinds = 'f' if kind == 'f' else 'iu'
  if value.dtype.kind not in kinds:
    _fail(name, f'{key} has dtype {value.dtype}, expected {"float" if kind == "f" else "integer"}',
          f'write {key} as {"float32" if kind == "f" else "int32"}')
  if value.ndim != len(shape) or any(s is not None and s != g for s, g in zip(shape, value.shape)):
    want = tuple('*' if s is None else s for s in shape)
    _fail(name, f'{key} has shape {value.shape}, expected {want}', f'write {key} with shape {want}')
  if kind == 'f' and not np.all(np.isfinite(value)):
    _fail(name, f'{key} holds non-finite numbers (nan or inf)', f'recompute {key} from finite body parameters')
  return value.astype(np.float32 if kind == 'f' else np.int32)


def validate_body(body: BodyData, name: str = 'body.npz') -> BodyData:
  """Host: checks shapes, dtypes, finiteness, weight sums and frame counts; returns f32/i32 arrays.

  Raises BodyDataError (a ValueError) naming `name` (the file) and the fix.
  """
  rest = _array(name, 'rest_vertices', body.rest_vertices, 'f', (None, 3))
  num_vertices = rest.shape[0]
  faces = _array(name, 'faces', body.faces, 'i', (None, 3))
  if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
    _fail(name, f'faces index outside [0, {num_vertices})', 'write faces that index rest_vertices')
  weights = _array(name, 'skinning_weights', body.skinning_weights, 'f', (num_vertices, None))
  num_joints = weights.shape[1]
  sums = weights.sum(axis=1)
  worst = int(np.argmax(np.abs(sums - 1.0)))
  if abs(sums[worst] - 1.0) > WEIGHT_SUM_TOLERANCE or np.any(weights < -WEIGHT_SUM_TOLERANCE):
    _fail(name, f'skinning_weights row {worst} sums to {sums[worst]:.6f} (rows must be >= 0 and sum to 1 '
          f'within {WEIGHT_SUM_TOLERANCE})', 'normalize the weights: w / w.sum(axis=1, keepdims=True)')
  transforms = _array(name, 'transforms', body.transforms, 'f', (None, num_joints, 4, 4))
  num_frames = transforms.shape[0]
  pose = _array(name, 'pose', body.pose, 'f', (None, None))
  if pose.shape[0] != num_frames:
    _fail(name, f'pose has {pose.shape[0]} frames but transforms has {num_frames}',
          'bake pose and transforms from the same frames')
  parents = None if body.parents is None else _array(name, 'parents', body.parents, 'i', (num_joints,))
  joint_names = None
  if body.joint_names is not None:
    joint_names = np.asarray(body.joint_names)
    if joint_names.dtype.kind != 'U' or joint_names.shape != (num_joints,):
      _fail(name, f'joint_names has dtype {joint_names.dtype} and shape {joint_names.shape}, '
            f'expected str ({num_joints},)',
            'write one name per joint as a unicode string array')
  posed = None
  if body.posed_vertices is not None:
    posed = _array(name, 'posed_vertices', body.posed_vertices, 'f', (num_frames, num_vertices, 3))
  return BodyData(rest, faces, weights, transforms, pose, parents, joint_names, posed)


def read_body_npz(path: str | pathlib.Path) -> BodyData:
  """Host: reads and validates body.npz; BodyDataError naming the file and the fix on any problem."""
  path = pathlib.Path(path)
  if not path.is_file():
    _fail(str(path), 'file not found', 'bake the body (ngd_jax.body.bake_smpl or an importer) and write it here')
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except (ValueError, OSError) as e:
    _fail(str(path), f'not a readable .npz ({e})', 'write it again with ngd_jax.body.write_body_npz')
  required = ('rest_vertices', 'faces', 'skinning_weights', 'transforms', 'pose')
  missing = [k for k in required if k not in arrays]
  if missing:
    _fail(str(path), f'missing arrays {missing}', f'write all of {list(required)}')
  fields = {f.name: arrays.get(f.name) for f in dataclasses.fields(BodyData)}
  return validate_body(BodyData(**fields), str(path))


def write_body_npz(path: str | pathlib.Path, body: BodyData) -> None:
  """Host: validates `body` and writes it to `path` atomically (temporary file, then rename)."""
  path = pathlib.Path(path)
  body = validate_body(body, str(path))
  arrays = {k: v for k, v in dataclasses.asdict(body).items() if v is not None}
  files.atomic_write(path, lambda f: np.savez(f, **arrays))
