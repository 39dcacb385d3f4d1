"""smplx_jax against an independent float64 numpy SMPL written here, on a random SMPL-shaped file."""

import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

import smplx_jax


def _rotation_reference(r):
  """Rodrigues in its textbook axis/angle form (float64)."""
  angle = np.linalg.norm(r)
  if angle == 0.0:
    return np.eye(3)
  k = r / angle
  kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  return np.cos(angle) * np.eye(3) + (1 - np.cos(angle)) * np.outer(k, k) + np.sin(angle) * kx


def _smpl_reference(a, betas, pose, transl):
  """SMPL (Loper et al. 2015) with explicit loops, float64: vertices, joints, LBS transforms."""
  parents = a['kintree_table'][0].astype(np.int64)
  num_joints = len(parents)
  shaped = a['v_template'] + np.einsum('vcs,s->vc', a['shapedirs'][..., : len(betas)], betas)
  joints = a['J_regressor'] @ shaped
  rots = [_rotation_reference(pose[3 * k : 3 * k + 3]) for k in range(num_joints)]
  feature = np.concatenate([(rots[k] - np.eye(3)).ravel() for k in range(1, num_joints)])
  posed_rest = shaped + np.einsum('vcp,p->vc', a['posedirs'], feature)
  world = []
  for k in range(num_joints):
    local = np.eye(4)
    local[:3, :3] = rots[k]
    local[:3, 3] = joints[k] - (joints[parents[k]] if k > 0 else 0.0)
    world.append(local if k == 0 else world[parents[k]] @ local)
  transforms = []
  for k in range(num_joints):
    undo_rest = np.eye(4)
    undo_rest[:3, 3] = -joints[k]
    move = np.eye(4)
    move[:3, 3] = transl
    transforms.append(move @ world[k] @ undo_rest)
  homogeneous = np.concatenate([posed_rest, np.ones((len(shaped), 1))], axis=1)
  vertices = np.zeros_like(homogeneous)
  for k in range(num_joints):
    vertices += a['weights'][:, k : k + 1] * (homogeneous @ transforms[k].T)
  posed_joints = np.stack([w[:3, 3] for w in world]) + transl
  return vertices[:, :3], posed_joints, np.stack(transforms)


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('smpl') / 'random_smpl.npz'
  arrays = smplx_jax.testing.write_random_smpl(path, seed=3)
  return path, arrays


def test_loaded_arrays_have_smpl_shapes(model_file):
  path, _ = model_file
  model = smplx_jax.SMPL.load(path)
  assert model.v_template.shape == (6890, 3)
  assert model.faces.shape == (13776, 3)
  assert model.posedirs.shape == (6890, 3, 207)
  assert model.J_regressor.shape == (24, 6890)
  assert model.parents[0] == -1 and model.num_joints == 24
  assert model.joint_names[0] == 'pelvis'


def test_forward_matches_numpy_reference_jit_and_vmap(model_file):
  path, arrays = model_file
  model = smplx_jax.SMPL.load(path)
  rng = np.random.default_rng(0)
  betas = rng.normal(size=(3, 10)) * 1.5
  poses = rng.normal(size=(3, 72)) * 0.6
  transl = rng.normal(size=(3, 3))
  batched = jax.jit(jax.vmap(model.__call__))(betas, poses, transl)
  for i in range(3):
    ref_v, ref_j, ref_a = _smpl_reference(arrays, betas[i], poses[i], transl[i])
    np.testing.assert_allclose(batched.vertices[i], ref_v, atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched.joints[i], ref_j, atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched.transforms[i], ref_a, atol=1e-5, rtol=0)
  single = jax.jit(smplx_jax.forward)(model, betas[1], poses[1], transl[1])  # Unbatched, model as a pytree.
  np.testing.assert_allclose(single.vertices, batched.vertices[1], atol=1e-6, rtol=0)


def test_rest_pose_zero_betas_is_template(model_file):
  path, arrays = model_file
  out = jax.jit(smplx_jax.SMPL.load(path).__call__)(jnp.zeros(10), jnp.zeros(72))
  np.testing.assert_allclose(out.vertices, arrays['v_template'], atol=1e-6, rtol=0)
  np.testing.assert_allclose(out.transforms, np.broadcast_to(np.eye(4), (24, 4, 4)), atol=1e-6, rtol=0)


def test_rodrigues_gradients_at_zero_and_generic_angles():
  # Jacobian against central differences of the float64 reference (step 1e-5, tolerance 1e-4).
  jacobian = jax.jit(jax.jacrev(smplx_jax.rodrigues))
  step = 1e-5
  for r in (np.zeros(3), np.array([0.3, -1.1, 0.7]), np.array([1e-5, 0.0, -2e-5])):
    fd = np.stack([(_rotation_reference(r + step * e) - _rotation_reference(r - step * e)) / (2 * step)
                   for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(jacobian(jnp.asarray(r, jnp.float32)), fd, atol=1e-4, rtol=0)
  r = np.array([0.3, -1.1, 0.7])
  np.testing.assert_allclose(smplx_jax.rodrigues(jnp.asarray(r)), _rotation_reference(r), atol=1e-6)


def _pickle_with_fake_chumpy(monkeypatch, arrays, path):
  """Writes an SMPL-like latin1/protocol-2 pickle whose arrays are objects of a fake chumpy.ch.Ch."""
  chumpy = types.ModuleType('chumpy')
  chumpy_ch = types.ModuleType('chumpy.ch')

  class Ch:
    def __init__(self, x):
      self.x = x
      self._dirty_vars = set()

  Ch.__module__ = 'chumpy.ch'
  Ch.__qualname__ = 'Ch'
  chumpy_ch.Ch = Ch
  chumpy.ch = chumpy_ch
  monkeypatch.setitem(sys.modules, 'chumpy', chumpy)
  monkeypatch.setitem(sys.modules, 'chumpy.ch', chumpy_ch)
  content = {
      'v_template': Ch(arrays['v_template']),
      'shapedirs': Ch(arrays['shapedirs']),
      'posedirs': Ch(arrays['posedirs']),
      'weights': Ch(arrays['weights']),
      'J_regressor': scipy.sparse.csc_matrix(arrays['J_regressor']),
      'f': arrays['f'],
      'kintree_table': arrays['kintree_table'],
      'bs_style': 'lbs',
      'bs_type': 'lrotmin',
  }
  with open(path, 'wb') as f:
    pickle.dump(content, f, protocol=2)


def test_pkl_with_chumpy_objects_loads_like_npz(model_file, tmp_path, monkeypatch):
  npz_path, arrays = model_file
  pkl_path = tmp_path / 'model.pkl'
  _pickle_with_fake_chumpy(monkeypatch, arrays, pkl_path)
  monkeypatch.delitem(sys.modules, 'chumpy')
  monkeypatch.delitem(sys.modules, 'chumpy.ch')
  from_pkl = smplx_jax.load_model_arrays(pkl_path)
  from_npz = smplx_jax.load_model_arrays(npz_path)
  assert set(from_pkl) == set(from_npz)
  for key in from_npz:
    np.testing.assert_array_equal(from_pkl[key], from_npz[key], err_msg=key)
  assert from_npz['parents'][0] == -1


def test_missing_and_wrong_files_name_the_file_and_the_licence(model_file, tmp_path):
  with pytest.raises(smplx_jax.ModelFileError, match=r'not_here\.pkl.*licensed'):
    smplx_jax.SMPL.load(tmp_path / 'not_here.pkl')
  (tmp_path / 'model.obj').write_text('v 0 0 0\n')
  with pytest.raises(smplx_jax.ModelFileError, match=r'model\.obj.*\.pkl or \.npz'):
    smplx_jax.SMPL.load(tmp_path / 'model.obj')
  _, arrays = model_file
  bad = dict(arrays, posedirs=arrays['posedirs'][..., :200])
  np.savez(tmp_path / 'bad.npz', **bad)
  with pytest.raises(smplx_jax.ModelFileError, match=r'bad\.npz: posedirs has shape'):
    smplx_jax.SMPL.load(tmp_path / 'bad.npz')
  np.savez(tmp_path / 'partial.npz', v_template=arrays['v_template'])
  with pytest.raises(smplx_jax.ModelFileError, match=r'partial\.npz: missing model entries'):
    smplx_jax.SMPL.load(tmp_path / 'partial.npz')


def test_pickle_with_foreign_class_is_refused(tmp_path):
  path = tmp_path / 'evil.pkl'
  with open(path, 'wb') as f:
    pickle.dump({'v_template': types.SimpleNamespace(x=1)}, f, protocol=2)
  with pytest.raises(smplx_jax.ModelFileError, match=r'evil\.pkl.*not allowed'):
    smplx_jax.SMPL.load(path)


def test_other_joint_counts_use_the_same_layer(tmp_path):
  """The layer is generic over K (e.g. SMPL-X's 55 joints with full axis-angle pose): a 5-joint model."""
  rng = np.random.default_rng(7)
  num_vertices, parents = 30, np.array([2**32 - 1, 0, 1, 1, 3], np.uint32)
  weights = rng.dirichlet(np.ones(5), size=num_vertices)
  arrays = {
      'v_template': rng.normal(size=(num_vertices, 3)), 'f': np.array([[0, 1, 2]]),
      'shapedirs': rng.normal(size=(num_vertices, 3, 4)) * 0.01,
      'posedirs': rng.normal(size=(num_vertices, 3, 36)) * 0.01,
      'J_regressor': rng.dirichlet(np.ones(num_vertices), size=5), 'weights': weights,
      'kintree_table': np.stack([parents, np.arange(5, dtype=np.uint32)]),
  }
  np.savez(tmp_path / 'small.npz', **arrays)
  model = smplx_jax.SMPL.load(tmp_path / 'small.npz', num_betas=4)
  betas, pose, transl = rng.normal(size=4), rng.normal(size=15), rng.normal(size=3)
  out = jax.jit(model.__call__)(betas, pose, transl)
  ref_v, ref_j, _ = _smpl_reference(arrays, betas, pose, transl)
  np.testing.assert_allclose(out.vertices, ref_v, atol=1e-5, rtol=0)
  np.testing.assert_allclose(out.joints, ref_j, atol=1e-5, rtol=0)
  assert model.joint_names is None
