"""Tests of the Jacobian fields, their input normalisation and the pose PCA (docs/method.md section 2)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import trimesh

from configs import default
from ngd_jax import geometry


def _small_geometry_config():
  config = ml_collections.ConfigDict(default.get_config().geometry.to_dict())
  config.hash_log2_table_size = 10  # CPU-sized tables; sizes otherwise the defaults.
  return config


def test_static_init_is_template_projector():
  mesh = trimesh.creation.icosphere(1)
  vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
  operators = geometry.build_operators(vertices, faces, face_capacity=len(faces) + 5)
  static = geometry.init_static_jacobians(operators)
  normal = np.asarray(mesh.face_normals)
  expected = np.eye(3) - normal[:, :, None] * normal[:, None, :]
  np.testing.assert_allclose(static[:len(faces)], expected, atol=1e-5)
  assert np.all(np.asarray(static[len(faces):]) == 0)


def test_dynamic_field_shapes_sizes_and_small_init():
  config = _small_geometry_config()
  field = geometry.dynamic_field_from_config(config)
  rng = np.random.default_rng(0)
  centres = jnp.asarray(rng.uniform(size=(31, 3)), jnp.float32)
  normals = jnp.asarray(rng.uniform(size=(31, 3)), jnp.float32)
  code = jnp.asarray(rng.uniform(size=(config.pose_components,)), jnp.float32)
  params = field.init(jax.random.PRNGKey(0), centres, normals, code)
  out = jax.jit(field.apply)(params, centres, normals, code)
  assert out.shape == (31, 3, 3) and out.dtype == jnp.float32
  assert float(jnp.abs(out).max()) < 1e-3  # J^D starts near 0.
  layers = params['params']
  assert set(layers) == {'centre_grid', 'normal_grid', 'pose_grid', 'hidden_0', 'hidden_1', 'out'}
  assert layers['hidden_0']['kernel'].shape == (3 * 16 * 2, 64)  # 96 hash features.
  assert layers['hidden_1']['kernel'].shape == (64, 64)
  assert layers['out']['kernel'].shape == (64, 9)
  assert all('bias' not in layers[name] for name in ('hidden_0', 'hidden_1', 'out'))
  # Gradients reach every table and layer at initialisation.
  grads = jax.grad(lambda p: jnp.sum(jnp.sin(1e4 * field.apply(p, centres, normals, code))))(params)
  for name, leaf in jax.tree_util.tree_leaves_with_path(grads):
    assert float(jnp.abs(leaf).sum()) > 0, name
  # Per-face evaluation: the output of a face depends only on that face's inputs.
  single = field.apply(params, centres[3:4], normals[3:4], code)
  np.testing.assert_allclose(single[0], out[3], atol=1e-7)


def test_field_bounds_normalise_into_unit_interval():
  rng = np.random.default_rng(1)
  posed = rng.normal(size=(4, 50, 3)) + np.array([0.0, 1.0, 3.0])
  codes = rng.normal(size=(4, 2))
  bounds = geometry.fit_field_bounds(posed, codes, margin=0.1)
  normals = rng.normal(size=(50, 3))
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  inputs = geometry.normalize_field_inputs(bounds, jnp.asarray(posed[2], jnp.float32),
                                           jnp.asarray(normals, jnp.float32),
                                           jnp.asarray(codes[1], jnp.float32))
  for values in inputs:
    assert float(values.min()) >= 0.0 and float(values.max()) <= 1.0
  # The training data stays inside the margin: never clipped to exactly 0 or 1.
  assert 0.0 < float(inputs.centres.min()) and float(inputs.centres.max()) < 1.0
  np.testing.assert_allclose(inputs.normals, 0.5 * (normals + 1), atol=1e-6)
  low, high = codes.min(0), codes.max(0)
  pad = 0.1 * (high - low)
  np.testing.assert_allclose(inputs.pose_code, (codes[1] - low + pad) / (high - low + 2 * pad),
                             atol=1e-5)
  far = geometry.normalize_field_inputs(bounds, jnp.full((1, 3), 100.0), jnp.zeros((1, 3)),
                                        jnp.full((2,), -100.0))
  assert float(far.centres.max()) == 1.0 and float(far.pose_code.min()) == 0.0
  with pytest.raises(ValueError, match='pose codes'):
    geometry.fit_field_bounds(posed, codes[0], margin=0.1)


def test_pose_pca_recovers_a_low_rank_subspace():
  rng = np.random.default_rng(2)
  basis = np.linalg.qr(rng.normal(size=(72, 3)))[0].T  # 3 orthonormal directions in R^72.
  weights = rng.normal(size=(40, 3)) * np.array([3.0, 2.0, 1.0])
  mean = rng.normal(size=72)
  poses = mean + weights @ basis
  pca = geometry.fit_pose_pca(poses, 4)
  assert pca.mean.shape == (72,) and pca.components.shape == (4, 72)
  np.testing.assert_allclose(pca.mean, poses.mean(axis=0), atol=1e-5)
  gram = np.asarray(pca.components @ pca.components.T)
  np.testing.assert_allclose(gram, np.diag([1.0, 1.0, 1.0, 0.0]), atol=1e-5)  # Rank 3 < 4.
  # The three components span the basis: reconstruction from codes is exact.
  codes = jax.jit(geometry.pose_code)(pca, jnp.asarray(poses, jnp.float32))
  assert codes.shape == (40, 4)
  np.testing.assert_allclose(np.asarray(codes) @ np.asarray(pca.components) + poses.mean(0), poses,
                             atol=1e-4)
  # Components are ordered by variance (no whitening: codes keep the pose units).
  variances = np.var(np.asarray(codes), axis=0)
  assert variances[0] > variances[1] > variances[2] > 10 * variances[3]
  # Refits give identical codes (sign convention).
  again = geometry.fit_pose_pca(poses[::-1].copy(), 4)
  np.testing.assert_allclose(again.components, pca.components, atol=1e-5)
  assert geometry.pose_code(pca, jnp.asarray(poses[0], jnp.float32)).shape == (4,)


def test_pose_pca_errors():
  with pytest.raises(ValueError, match='num_components'):
    geometry.fit_pose_pca(np.zeros((5, 3)), 4)
  with pytest.raises(ValueError, match='finite'):
    geometry.fit_pose_pca(np.full((5, 3), np.nan), 2)


def test_displacement_field_has_three_outputs_per_point():
  """geometry.parameterization = 'displacement': the same network, 3 outputs (vertex offsets)."""
  config = _small_geometry_config()
  assert geometry.dynamic_field_from_config(config).num_outputs == 9  # Default: J^D.
  config.parameterization = 'displacement'
  field = geometry.dynamic_field_from_config(config)
  assert field.num_outputs == 3
  rng = np.random.default_rng(0)
  points = jnp.asarray(rng.uniform(size=(17, 3)), jnp.float32)
  code = jnp.asarray(rng.uniform(size=(config.pose_components,)), jnp.float32)
  params = field.init(jax.random.PRNGKey(0), points, points, code)
  out = field.apply(params, points, points, code)
  assert out.shape == (17, 3) and float(jnp.abs(out).max()) < 1e-3
  layers = params['params']
  assert set(layers) == {'centre_grid', 'normal_grid', 'pose_grid', 'hidden_0', 'hidden_1', 'out'}
  assert layers['out']['kernel'].shape == (64, 3)
  with pytest.raises(ValueError, match='num_outputs'):
    field.clone(num_outputs=4).init(jax.random.PRNGKey(0), points, points, code)
