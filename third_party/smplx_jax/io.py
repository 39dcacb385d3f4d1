"""Host: reading SMPL-family model files (.pkl without chumpy, or .npz) into plain numpy arrays.

The official SMPL .pkl is a latin1 Python 2 pickle whose arrays are chumpy objects and whose
joint regressor is a scipy sparse matrix. A restricted unpickler maps those classes to small
stand-ins that keep only their arrays, so chumpy is never imported and no other class (hence no
arbitrary code) can be loaded from the file.
"""

import pathlib
import pickle
from typing import Any

import numpy as np
import scipy.sparse

REQUIRED_KEYS = ('v_template', 'f', 'shapedirs', 'posedirs', 'J_regressor', 'weights', 'kintree_table')

_LICENSE_HINT = (
    'SMPL model files are licensed and are never shipped or downloaded by ngd_jax: register at '
    'https://smpl.is.tue.mpg.de/, download the model (.pkl, or an .npz with the keys '
    f'{", ".join(REQUIRED_KEYS)}) and pass its path.'
)


class ModelFileError(ValueError):
  """A body model file that is missing, unreadable or of the wrong layout."""


class _ChumpyArray:
  """Stand-in for any chumpy class: keeps the array that chumpy stores under the key 'x'."""

  def __init__(self, *args, **kwargs):
    del args, kwargs
    self.state = None

  def __setstate__(self, state):
    self.state = state

  def to_numpy(self, key: str, path: pathlib.Path) -> np.ndarray:
    if isinstance(self.state, dict) and 'x' in self.state:
      return np.asarray(self.state['x'])
    raise ModelFileError(
        f'{path}: entry {key!r} is a chumpy expression without a stored array ("x"); '
        'convert the model to .npz with chumpy installed (np.array(model[key])) and load that.'
    )


class _SparseMatrix:
  """Stand-in for a pickled scipy.sparse compressed matrix (any scipy version's module path)."""

  format = 'csc'

  def __init__(self, *args, **kwargs):
    del args, kwargs
    self.state = {}

  def __setstate__(self, state):
    self.state = state

  def to_numpy(self, key: str, path: pathlib.Path) -> np.ndarray:
    state = self.state
    shape = state.get('_shape', state.get('shape'))
    if shape is None or not all(k in state for k in ('data', 'indices', 'indptr')):
      raise ModelFileError(f'{path}: sparse entry {key!r} lacks data/indices/indptr/shape.')
    cls = scipy.sparse.csr_matrix if self.format == 'csr' else scipy.sparse.csc_matrix
    return cls((state['data'], state['indices'], state['indptr']), shape=tuple(shape)).toarray()


class _CsrMatrix(_SparseMatrix):
  format = 'csr'


_NUMPY_ALLOWED = {
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'),
    ('numpy._core.numeric', '_frombuffer'),
    ('_codecs', 'encode'),  # Python 3 pickles bytes (array buffers) at protocol 2 through it.
}

# chumpy objects are rebuilt through object.__new__ and keep sets of dirty variables.
_BUILTINS_ALLOWED = {'object': object, 'set': set, 'frozenset': frozenset}


class _RestrictedUnpickler(pickle.Unpickler):
  """Loads numpy arrays, chumpy stand-ins and sparse stand-ins; refuses every other class."""

  def find_class(self, module, name):
    if module == 'chumpy' or module.startswith('chumpy.'):
      return _ChumpyArray
    if module.startswith('scipy.sparse'):
      if name == 'csc_matrix':
        return _SparseMatrix
      if name == 'csr_matrix':
        return _CsrMatrix
    if module.startswith('numpy.core'):
      module = 'numpy._core' + module[len('numpy.core'):]
    if (module, name) in _NUMPY_ALLOWED:
      return super().find_class(module, name)
    if (module, name) in (('copy_reg', '_reconstructor'), ('copyreg', '_reconstructor')):
      return super().find_class('copyreg', '_reconstructor')
    if module in ('__builtin__', 'builtins') and name in _BUILTINS_ALLOWED:
      return _BUILTINS_ALLOWED[name]
    raise pickle.UnpicklingError(f'class {module}.{name} is not allowed in a body model file')


def _to_array(value: Any, key: str, path: pathlib.Path) -> np.ndarray:
  if isinstance(value, (_ChumpyArray, _SparseMatrix)):
    return value.to_numpy(key, path)
  return np.asarray(value)


def _load_pkl(path: pathlib.Path) -> dict[str, Any]:
  try:
    with open(path, 'rb') as f:
      data = _RestrictedUnpickler(f, encoding='latin1').load()
  except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as e:
    raise ModelFileError(f'{path}: not a readable SMPL model pickle ({e}). {_LICENSE_HINT}') from e
  if not isinstance(data, dict):
    raise ModelFileError(f'{path}: the pickle holds a {type(data).__name__}, not a dict of model arrays.')
  return data


def _load_npz(path: pathlib.Path) -> dict[str, Any]:
  try:
    with np.load(path, allow_pickle=False) as data:
      return {k: data[k] for k in data.files}
  except (ValueError, OSError) as e:
    raise ModelFileError(f'{path}: not a readable .npz model file ({e}). {_LICENSE_HINT}') from e


def load_model_arrays(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """Host: the model arrays of `path` (.pkl or .npz), shapes checked against each other.

  Returns float64 arrays for v_template [V,3], shapedirs [V,3,S], posedirs [V,3,9(K-1)],
  J_regressor [K,V] (dense), weights [V,K]; int64 f [F,3] and parents [K] (-1 for the root).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise ModelFileError(f'Body model file not found: {path}. {_LICENSE_HINT}')
  if path.suffix == '.pkl':
    raw = _load_pkl(path)
  elif path.suffix == '.npz':
    raw = _load_npz(path)
  else:
    raise ModelFileError(f'{path}: unknown model file type {path.suffix!r}; expected .pkl or .npz. {_LICENSE_HINT}')
  missing = [k for k in REQUIRED_KEYS if k not in raw]
  if missing:
    raise ModelFileError(f'{path}: missing model entries {missing}; expected {list(REQUIRED_KEYS)}. {_LICENSE_HINT}')
  arrays = {k: _to_array(raw[k], k, path) for k in REQUIRED_KEYS}
  return _check_layout(arrays, path)


def _check_layout(a: dict[str, np.ndarray], path: pathlib.Path) -> dict[str, np.ndarray]:
  """Host: checks that the arrays agree on V (vertices), K (joints) and the pose blend shape count."""
  v_template = a['v_template']
  if v_template.ndim != 2 or v_template.shape[1] != 3:
    raise ModelFileError(f'{path}: v_template has shape {v_template.shape}, expected (V, 3).')
  num_vertices = v_template.shape[0]
  kintree = a['kintree_table']
  if kintree.ndim != 2 or kintree.shape[0] != 2:
    raise ModelFileError(f'{path}: kintree_table has shape {kintree.shape}, expected (2, K).')
  num_joints = kintree.shape[1]
  expected = {
      'f': (None, 3),
      'shapedirs': (num_vertices, 3, None),
      'posedirs': (num_vertices, 3, 9 * (num_joints - 1)),
      'J_regressor': (num_joints, num_vertices),
      'weights': (num_vertices, num_joints),
  }
  for key, shape in expected.items():
    got = a[key].shape
    if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
      want = tuple('*' if s is None else s for s in shape)
      raise ModelFileError(f'{path}: {key} has shape {got}, expected {want} (V={num_vertices}, K={num_joints}).')
  # The root's parent is stored as -1 or as uint32 max; joints are in topological order.
  parents = kintree[0].astype(np.int64)
  parents[0] = -1
  if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, num_joints)):
    raise ModelFileError(f'{path}: kintree_table is not a tree in topological order (parent index >= child).')
  faces = a['f'].astype(np.int64)
  if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
    raise ModelFileError(f'{path}: face indices outside [0, {num_vertices}).')
  out = {k: a[k].astype(np.float64) for k in ('v_template', 'shapedirs', 'posedirs', 'J_regressor', 'weights')}
  for key, value in out.items():
    if not np.all(np.isfinite(value)):
      raise ModelFileError(f'{path}: {key} holds non-finite numbers.')
  out['f'] = faces
  out['parents'] = parents
  return out
