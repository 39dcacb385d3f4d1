"""ngd_jax.body: body.npz round trip and validation, SMPL baking, LBS, garment skinning weights."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import smplx_jax
from test_pipeline import _hanging_tube

from ngd_jax import body
from ngd_jax.body import skinning


def _random_transforms(rng, num_frames, num_joints):
  """Rigid transforms (rotation from QR, translation) f32[T,K,4,4]."""
  a = np.zeros((num_frames, num_joints, 4, 4))
  for t in range(num_frames):
    for k in range(num_joints):
      q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
      a[t, k, :3, :3] = q * np.sign(np.linalg.det(q))
      a[t, k, :3, 3] = rng.normal(size=3)
      a[t, k, 3, 3] = 1.0
  return a.astype(np.float32)


def _small_body(rng, num_frames=3, num_vertices=20, num_joints=4):
  weights = rng.random((num_vertices, num_joints))
  return body.BodyData(
      rest_vertices=rng.normal(size=(num_vertices, 3)).astype(np.float32),
      faces=rng.integers(0, num_vertices, size=(10, 3)).astype(np.int32),
      skinning_weights=(weights / weights.sum(1, keepdims=True)).astype(np.float32),
      transforms=_random_transforms(rng, num_frames, num_joints),
      pose=rng.normal(size=(num_frames, 3 * num_joints)).astype(np.float32),
      parents=np.array([-1, 0, 1, 1], np.int32),
      joint_names=np.array(['root', 'a', 'b', 'c']),
      posed_vertices=rng.normal(size=(num_frames, num_vertices, 3)).astype(np.float32),
  )


def test_body_npz_round_trip_with_and_without_optional_arrays(tmp_path):
  full = _small_body(np.random.default_rng(0))
  minimal = dataclasses.replace(full, parents=None, joint_names=None, posed_vertices=None)
  for name, b in (('full.npz', full), ('minimal.npz', minimal)):
    body.write_body_npz(tmp_path / name, b)
    back = body.read_body_npz(tmp_path / name)
    for field in dataclasses.fields(body.BodyData):
      want, got = getattr(b, field.name), getattr(back, field.name)
      if want is None:
        assert got is None, field.name
      else:
        np.testing.assert_array_equal(got, want, err_msg=field.name)
  assert back.rest_vertices.dtype == np.float32 and back.faces.dtype == np.int32
  assert sorted(p.name for p in tmp_path.iterdir()) == ['full.npz', 'minimal.npz']  # No temp files left.


@pytest.mark.parametrize(
    'change, message',
    [
        (lambda b: dict(skinning_weights=b.skinning_weights * 1.01), r'skinning_weights row \d+ sums to'),
        (lambda b: dict(transforms=b.transforms.copy() * np.nan), r'transforms holds non-finite'),
        (lambda b: dict(pose=b.pose[:2]), r'pose has 2 frames but transforms has 3'),
        (lambda b: dict(rest_vertices=b.rest_vertices[:, :2]), r'rest_vertices has shape \(20, 2\)'),
        (lambda b: dict(faces=b.faces.astype(np.float32)), r'faces has dtype float32'),
        (lambda b: dict(faces=b.faces + 100), r'faces index outside'),
        (lambda b: dict(posed_vertices=b.posed_vertices[:1]), r'posed_vertices has shape'),
        (lambda b: dict(joint_names=np.array(['x'])), r'joint_names has dtype'),
    ],
)
def test_bad_body_npz_names_file_and_problem(tmp_path, change, message):
  good = _small_body(np.random.default_rng(1))
  bad = dataclasses.replace(good, **change(good))
  path = tmp_path / 'body.npz'
  np.savez(path, **{k: v for k, v in dataclasses.asdict(bad).items() if v is not None})
  with pytest.raises(ValueError, match=r'body\.npz: ' + message):
    body.read_body_npz(path)
  with pytest.raises(ValueError, match=message):
    body.write_body_npz(tmp_path / 'other.npz', bad)
  assert not (tmp_path / 'other.npz').exists()


def test_missing_body_npz_and_missing_arrays(tmp_path):
  with pytest.raises(ValueError, match=r'nothing\.npz: file not found'):
    body.read_body_npz(tmp_path / 'nothing.npz')
  np.savez(tmp_path / 'body.npz', rest_vertices=np.zeros((3, 3), np.float32))
  with pytest.raises(ValueError, match=r'body\.npz: missing arrays'):
    body.read_body_npz(tmp_path / 'body.npz')


def test_lbs_matches_per_vertex_loop_jit_and_frames():
  rng = np.random.default_rng(2)
  b = _small_body(rng)
  expected = np.zeros((3, 20, 3))
  for t in range(3):
    for v in range(20):
      point = np.append(b.rest_vertices[v], 1.0)
      blended = sum(b.skinning_weights[v, k] * b.transforms[t, k].astype(np.float64) for k in range(4))
      expected[t, v] = (blended @ point)[:3]
  one = jax.jit(body.lbs)(b.rest_vertices, b.skinning_weights, b.transforms[1])
  many = jax.jit(body.lbs_frames)(b.rest_vertices, b.skinning_weights, b.transforms)
  np.testing.assert_allclose(one, expected[1], atol=1e-5, rtol=0)
  np.testing.assert_allclose(many, expected, atol=1e-5, rtol=0)


def _slow_exp_weights(garment, body_rest, body_weights, sigma):
  out = []
  for g in garment:
    d = np.array([np.sqrt(np.sum((g - b) ** 2)) for b in body_rest])
    d_min = d.min()
    if d_min == 0.0:
      w = (d == 0.0).astype(float)
    else:
      w = np.exp(-((d - d_min) ** 2) / (sigma * d_min**2))
    out.append((w / w.sum()) @ body_weights)
  return np.array(out)


def _slow_knn_weights(garment, body_rest, body_weights, k):
  out = []
  for g in garment:
    d = np.linalg.norm(body_rest - g, axis=1)
    nearest = np.argsort(d)[:k]
    w = 1.0 / d[nearest]
    out.append((w / w.sum()) @ body_weights[nearest])
  return np.array(out)


def test_garment_weights_exp_rule_matches_loop_across_chunks(monkeypatch):
  rng = np.random.default_rng(3)
  body_rest = rng.normal(size=(300, 3))
  body_weights = rng.dirichlet(np.ones(6), size=300)
  garment = body_rest[rng.choice(300, 40)] + rng.normal(size=(40, 3)) * 0.05
  garment[:3] = body_rest[:3]  # On the body: d_min = 0.
  garment[3] = body_rest[3] + 3e-7  # Closer than the cancellation error of |g|^2 + |b|^2 - 2 g.b.
  monkeypatch.setattr(skinning, '_PAIRS_PER_CHUNK', 300 * 7)  # 7 garment vertices per chunk.
  got = body.garment_skinning_weights(garment, body_rest, body_weights, method='exp', sigma=0.25)
  want = _slow_exp_weights(garment, body_rest, body_weights, 0.25)
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
  np.testing.assert_allclose(got[:3], body_weights[:3], atol=1e-6, rtol=0)
  np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)


def test_garment_weights_knn_matches_loop():
  rng = np.random.default_rng(4)
  body_rest = rng.normal(size=(200, 3))
  body_weights = rng.dirichlet(np.ones(5), size=200)
  garment = rng.normal(size=(30, 3))
  got = body.garment_skinning_weights(garment, body_rest, body_weights, method='knn', knn=8)
  np.testing.assert_allclose(got, _slow_knn_weights(garment, body_rest, body_weights, 8), atol=1e-6, rtol=0)
  on_body = body.garment_skinning_weights(body_rest[:2], body_rest, body_weights, method='knn', knn=8)
  np.testing.assert_allclose(on_body, body_weights[:2], atol=1e-6, rtol=0)
  with pytest.raises(ValueError, match=r"'nearest' is unknown; use one of \('exp', 'knn'\)"):
    body.garment_skinning_weights(garment, body_rest, body_weights, method='nearest')


@pytest.fixture(scope='module')
def smpl_model(tmp_path_factory):
  path = tmp_path_factory.mktemp('smpl') / 'random_smpl.npz'
  smplx_jax.testing.write_random_smpl(path, seed=5)
  return smplx_jax.SMPL.load(path)


def test_bake_smpl_skins_rest_body_along_the_skeleton(smpl_model, tmp_path):
  rng = np.random.default_rng(6)
  poses = rng.normal(size=(4, 72)).astype(np.float32) * 0.5
  betas = rng.normal(size=10).astype(np.float32)
  transl = rng.normal(size=(4, 3)).astype(np.float32)
  baked = body.bake_smpl(smpl_model, poses, betas, transl)
  assert baked.transforms.shape == (4, 24, 4, 4) and baked.pose.shape == (4, 72)
  np.testing.assert_array_equal(baked.pose, poses)
  # Rest = shaped zero-pose body.
  shaped = smpl_model.v_template + smpl_model.shapedirs @ betas
  np.testing.assert_allclose(baked.rest_vertices, shaped, atol=1e-6, rtol=0)
  # Garment-style LBS of the rest body = SMPL without pose blend shapes; posed_vertices = full SMPL.
  no_blend = dataclasses.replace(smpl_model, posedirs=jnp.zeros_like(smpl_model.posedirs))
  skinned = body.lbs_frames(baked.rest_vertices, baked.skinning_weights, baked.transforms)
  forward = jax.jit(jax.vmap(smplx_jax.forward, in_axes=(None, None, 0, 0)))
  np.testing.assert_allclose(skinned, forward(no_blend, betas, poses, transl).vertices, atol=1e-5, rtol=0)
  full = forward(smpl_model, betas, poses, transl)
  np.testing.assert_allclose(baked.posed_vertices, full.vertices, atol=1e-5, rtol=0)
  # A_k maps rest joint k to posed joint k (translation included).
  rest_joints = np.asarray(smpl_model.J_regressor @ shaped)
  posed_joints = full.joints[2]
  mapped = np.einsum('kij,kj->ki', baked.transforms[2, :, :3, :3], rest_joints) + baked.transforms[2, :, :3, 3]
  np.testing.assert_allclose(mapped, posed_joints, atol=1e-5, rtol=0)
  body.write_body_npz(tmp_path / 'body.npz', baked)
  back = body.read_body_npz(tmp_path / 'body.npz')
  assert list(back.joint_names[:2]) == ['pelvis', 'left_hip']
  with pytest.raises(ValueError, match=r'poses has shape \(4, 69\)'):
    body.bake_smpl(smpl_model, poses[:, :69], betas, transl)


def _hips_and_legs():
  """A body of three parts: a waist ring on joint 0 (pelvis) at y = 0, two leg columns on joints 1, 2 below."""
  angle = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
  waist = np.stack([0.15 * np.cos(angle), np.zeros_like(angle), 0.15 * np.sin(angle)], -1)
  heights = np.linspace(-0.1, -0.8, 15)
  around = np.stack([0.06 * np.cos(angle[::3]), 0.06 * np.sin(angle[::3])], -1)
  legs = [np.array([[side * 0.08 + dx, y, dz] for y in heights for dx, dz in around]) for side in (-1, 1)]
  vertices = np.concatenate([waist] + legs)
  joints = np.concatenate([np.zeros(len(waist), int), np.ones(len(legs[0]), int), np.full(len(legs[1]), 2)])
  return vertices, np.eye(3)[joints]


def _a_line_skirt(rows=10, around=24):
  """An A-line skirt resting on the waist ring (1 cm out) and flaring to 0.32 m at its hem, 0.7 m down."""
  vertices, faces = _hanging_tube(rows=rows, around=around, length=0.7, radius=0.16)
  vertices[:, 1] -= 1.0  # Top ring at the waist, y = 0.
  flare = 1.0 - vertices[:, 1:2] / 0.7  # 1 at the waist, 2 at the hem.
  return vertices * np.concatenate([flare, np.ones_like(flare), flare], axis=1), faces


def test_diffuse_from_contact_hangs_the_hem_from_the_waist():
  body_rest, body_weights = _hips_and_legs()
  skirt, faces = _a_line_skirt()
  nearest = body.garment_skinning_weights(skirt, body_rest, body_weights)
  hanging = body.diffuse_from_contact(nearest, skirt, faces, body_rest, contact_distance=0.02)
  hem = slice(len(skirt) - 24, len(skirt))
  assert nearest[hem, 0].max() < 0.1  # The nearest-body rule ties the hem to the legs.
  assert hanging[hem, 0].min() > 0.9  # Diffused from the waist band, it hangs from the pelvis.
  np.testing.assert_allclose(hanging[:24], nearest[:24], atol=1e-6)  # The band on the body keeps its weights.
  np.testing.assert_allclose(hanging.sum(axis=1), 1.0, atol=1e-5)
  assert hanging.min() >= 0.0
  # Harmonic: every free vertex, the hem included, is the mean of its neighbours.
  neighbours = [set() for _ in skirt]
  for a, b, c in faces:
    neighbours[a] |= {b, c}
    neighbours[b] |= {a, c}
    neighbours[c] |= {a, b}
  for v in range(24, len(skirt)):
    np.testing.assert_allclose(hanging[v], hanging[sorted(neighbours[v])].mean(axis=0), atol=1e-5)


def test_diffuse_from_contact_keeps_a_part_that_touches_nothing():
  body_rest, body_weights = _hips_and_legs()
  skirt, faces = _a_line_skirt()
  floating = skirt + np.array([0.0, -2.0, 0.0])  # A second, separate piece far below the body.
  vertices = np.concatenate([skirt, floating])
  both = np.concatenate([faces, faces + len(skirt)])
  nearest = body.garment_skinning_weights(vertices, body_rest, body_weights)
  hanging = body.diffuse_from_contact(nearest, vertices, both, body_rest, contact_distance=0.02)
  np.testing.assert_allclose(hanging[len(skirt):], nearest[len(skirt):], atol=1e-6)
