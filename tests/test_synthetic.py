"""Synthetic sequences: format, ground truth, cloth dynamics, determinism, demo cache."""

import dataclasses
import filecmp
import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from ngd_jax import body as body_lib
from ngd_jax.body import anny
from ngd_jax.data import cloth_sim
from ngd_jax.data import motion
from ngd_jax.data import read_sequence
from ngd_jax.data import synthetic

# The loose skirt must move beyond what skinning explains by at least this much (mean over
# vertices and frames, metres): sag, swing and flare of the cloth.
MIN_DYNAMIC_DISPLACEMENT = 0.01
# Garment vertices may sit inside the proxy capsules by at most this much (m) ...
PENETRATION_TOLERANCE = 0.01
# ... in at least this share of the frames.
PENETRATION_FRAME_SHARE = 0.75


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
  root = tmp_path_factory.mktemp('synthetic')
  for name, seed in (('a', 0), ('b', 0), ('c', 1)):
    synthetic.generate(root / name, 'tiny', seed=seed)
  return root


def _gt(seq):
  meshes = [seq.gt_mesh(i) for i in range(seq.num_frames)]
  return np.stack([m.vertices for m in meshes]), [np.asarray(m.faces) for m in meshes]


def test_sequence_is_valid_and_complete(generated):
  seq = read_sequence(generated / 'a')
  preset = synthetic.PRESETS['tiny']
  assert seq.num_frames == preset.num_frames
  meta = json.loads((generated / 'a' / 'sequence.json').read_text())
  assert meta['garment'] == 'lower' and meta['image_size'] == [64, 64]
  assert len(meta['eval_cameras']) >= 3
  for i in range(seq.num_frames):
    frame = seq.load_frame(i)
    assert frame.rgb.shape == (64, 64, 3)
    mask = frame.mask > 0.5
    assert 0.05 < mask.mean() < 0.9
    assert not np.any(mask & (frame.hands > 0.5))  # Hands occlude the garment, never both.
    np.testing.assert_allclose(np.linalg.norm(frame.normal[mask], axis=-1), 1.0, atol=1e-3)
    assert np.all(frame.normal[~mask] == 0)
    assert np.all(np.isfinite(frame.depth[mask])) and np.all(np.isnan(frame.depth[~mask]))
    assert 1.5 < np.nanmedian(frame.depth) < 4.0  # Metres from the camera (2.6 m away).
    # The garment pixels are not the background colour: the rgb shows the garment.
    background = synthetic._background(64)
    assert np.abs(frame.rgb[mask] - background[mask]).max(-1).mean() > 0.1
    for name in meta['eval_cameras']:
      view = seq.eval_view(name, i)
      assert view.rgb.shape == (64, 64, 3) and view.mask.sum() > 0


def test_ground_truth_meshes(generated):
  seq = read_sequence(generated / 'a')
  vertices, faces = _gt(seq)
  assert np.all(np.isfinite(vertices))
  assert all(np.array_equal(f, faces[0]) for f in faces)
  rest = trimesh.load(generated / 'a' / 'gt' / synthetic.REST_GARMENT, process=False)
  assert np.array_equal(rest.faces, faces[0]) and len(rest.vertices) == vertices.shape[1]
  # The template is not the true rest shape.
  template = trimesh.load(generated / 'a' / 'template.obj', process=False)
  assert len(template.vertices) != len(rest.vertices)
  closest = np.linalg.norm(rest.vertices[:, None] - template.vertices[None], axis=-1).min(1)
  assert closest.mean() > 0.005


def test_cloth_moves_beyond_skinning(generated):
  """GT vs the LBS-skinned GT rest shape (docs/method.md section 2 weights)."""
  seq = read_sequence(generated / 'a')
  vertices, _ = _gt(seq)
  rest = np.asarray(trimesh.load(generated / 'a' / 'gt' / synthetic.REST_GARMENT,
                                 process=False).vertices, np.float32)
  body = body_lib.read_body_npz(generated / 'a' / 'body.npz')
  weights = body_lib.garment_skinning_weights(rest, body.rest_vertices, body.skinning_weights)
  skinned = np.asarray(body_lib.lbs_frames(jnp.asarray(rest), jnp.asarray(weights),
                                           jnp.asarray(body.transforms)))
  displacement = np.linalg.norm(vertices - skinned, axis=-1).mean()
  assert MIN_DYNAMIC_DISPLACEMENT < displacement < 0.3
  # The waist ring follows the body: pinned vertices stay close to their skinned place.
  ring = synthetic.PRESETS['tiny'].segments
  assert np.linalg.norm(vertices[:, :ring] - skinned[:, :ring], axis=-1).mean() < 0.02


def test_no_penetration_of_proxy_capsules(generated):
  seq = read_sequence(generated / 'a')
  vertices, _ = _gt(seq)
  rest = trimesh.load(generated / 'a' / 'gt' / synthetic.REST_GARMENT, process=False).vertices
  body = body_lib.read_body_npz(generated / 'a' / 'body.npz')
  preset = synthetic.PRESETS['tiny']
  capsules = cloth_sim.proxy_capsules(anny.load_anny(), rest, preset.clearance)
  start, end = cloth_sim.pose_capsules(capsules, body.transforms)
  depth = np.array([cloth_sim.capsule_penetration(v, s, e, capsules.radius).max()
                    for v, s, e in zip(vertices, start, end)])
  assert np.mean(depth <= PENETRATION_TOLERANCE) >= PENETRATION_FRAME_SHARE


def test_capsule_penetration_reference():
  """Depth inside one capsule, checked on points at known distances from its axis."""
  start, end, radius = np.array([[0.0, 0, 0]]), np.array([[1.0, 0, 0]]), np.array([0.2])
  points = np.array([[0.5, 0.05, 0], [0.5, 0.3, 0], [-0.1, 0, 0], [1.0, 0, 0.19]])
  np.testing.assert_allclose(cloth_sim.capsule_penetration(points, start, end, radius),
                             [0.15, 0.0, 0.1, 0.01], atol=1e-12)


def test_determinism(generated):
  a, b, c = (generated / n for n in 'abc')
  files = sorted(p.relative_to(a) for p in a.rglob('*') if p.is_file())
  assert files == sorted(p.relative_to(b) for p in b.rglob('*') if p.is_file())
  assert len(files) > 40
  for rel in files:  # Byte for byte, body.npz and the PNG/PLY/NPY files included.
    assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
  # Another seed changes the motion, the colours and the cloth.
  assert not filecmp.cmp(a / 'rgb' / '000003.png', c / 'rgb' / '000003.png', shallow=False)
  va, _ = _gt(read_sequence(a))
  vc, _ = _gt(read_sequence(c))
  assert np.abs(va - vc).max() > 1e-3


def test_motion_is_smooth_and_starts_at_rest():
  times = np.linspace(-1.0, 2.0, 301)
  for kind in motion.MOTIONS:
    pose, transl = motion.motion_pose(motion.MotionParams(kind), times)
    assert np.all(pose[0] == 0) and np.all(transl[0] == 0)
    step = np.abs(np.diff(pose, axis=0)).max()
    assert 0 < step < 0.1, kind  # 10 ms steps: no jumps.
  with pytest.raises(ValueError, match='Unknown motion'):
    motion.motion_pose(motion.MotionParams('dance'), times)


def test_tshirt_follows_skinning_plus_wrinkles(tmp_path):
  preset = dataclasses.replace(synthetic.PRESETS['tshirt'], num_frames=3, image_size=48,
                               supersample=1)
  seq = synthetic.generate(tmp_path / 'shirt', preset, seed=0)
  vertices, _ = _gt(seq)
  rest = np.asarray(trimesh.load(tmp_path / 'shirt' / 'gt' / synthetic.REST_GARMENT,
                                 process=False).vertices, np.float32)
  body = body_lib.read_body_npz(tmp_path / 'shirt' / 'body.npz')
  weights = body_lib.garment_skinning_weights(rest, body.rest_vertices, body.skinning_weights)
  skinned = np.asarray(body_lib.lbs_frames(jnp.asarray(rest), jnp.asarray(weights),
                                           jnp.asarray(body.transforms)))
  offset = np.linalg.norm(vertices - skinned, axis=-1)
  assert 1e-3 < offset.mean() < 0.03
  assert json.loads((tmp_path / 'shirt' / 'sequence.json').read_text())['garment'] == 'upper'


def test_ensure_sequence_generates_once(tmp_path, monkeypatch):
  monkeypatch.setitem(synthetic.PRESETS, 'demo', synthetic.PRESETS['tiny'])
  stale = tmp_path / 'demo-seed0'
  stale.mkdir()
  (stale / 'rgb').mkdir()  # A killed earlier run: no sequence.json, must not be reused.
  path = synthetic.ensure_sequence('demo', 0, tmp_path)
  assert path == stale and read_sequence(path).num_frames == 4
  assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

  def fail(*args, **kwargs):
    raise AssertionError('the cached demo sequence was generated again')

  monkeypatch.setattr(synthetic, 'generate', fail)
  assert synthetic.ensure_sequence('demo', 0, tmp_path) == path
  monkeypatch.setenv('NGD_JAX_CACHE', str(tmp_path))
  assert synthetic.ensure_sequence() == path


def test_bad_preset():
  with pytest.raises(ValueError, match='Unknown preset'):
    synthetic.generate(pathlib.Path('/tmp/never-written'), 'huge', seed=0)


def test_training_camera_elevation_and_azimuth():
  """The default training camera is where it always was; skater_above's looks down at 3/4."""
  target = np.array([0.0, 0.9, 0.0])
  for name, elevation, azimuth in (('tiny', np.degrees(np.arctan(0.12)), 0.0), ('skater_above', 32.0, 40.0)):
    camera = synthetic._cameras(synthetic.PRESETS[name], target)['train']
    rotation, translation = camera.world_to_camera[:3, :3], camera.world_to_camera[:3, 3]
    eye = -rotation.T @ translation - target
    assert np.degrees(np.arctan2(eye[1], np.hypot(eye[0], eye[2]))) == pytest.approx(elevation, abs=1e-3)
    assert np.degrees(np.arctan2(eye[0], eye[2])) == pytest.approx(azimuth, abs=1e-3)
    np.testing.assert_allclose(rotation[2], -eye / np.linalg.norm(eye), atol=1e-6)  # Looks at the target.
