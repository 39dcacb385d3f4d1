"""Tests of the 4D-Dress importer on a take written in the dataset's exact layout.

The fixture person is a capped cylinder (head skin, upper garment label 3, lower label 4, shoes)
with a small skin "hand" sphere in front of the torso placed at SMPL joint 22 of a random
SMPL-shaped model, seen by two real pinhole cameras. The person masks are drawn by a numpy
point-in-triangle test at pixel centres, independent of the project's rasterizer; the same numpy
z-buffer is the reference for the garment and hands masks.
"""

import functools
import importlib
import json
import pathlib
import pickle
import shutil

from absl import flags
import numpy as np
from PIL import Image
import pytest
from scipy.spatial.transform import Rotation
import smplx_jax
import trimesh

from ngd_jax.body import read_body_npz
from ngd_jax.data import dress4d
from ngd_jax.data import importing
from ngd_jax.data import sequence

FRAMES = ('00011', '00012', '00013')
HEIGHT, WIDTH = 80, 60
K = np.array([[90.0, 0, 29.5], [0, 90.0, 39.5], [0, 0, 1]])
# Camera 0004 looks along +z from (0, 0, -3); camera 0028 along -x from (3, 0, 0). World y points down.
ROTATIONS = {'0004': np.eye(3), '0028': np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])}
TRANSLATIONS = {'0004': np.array([0.0, 0, 3]), '0028': np.array([0.0, 0, 3])}
HAND_CENTRE = np.array([0.1, -0.2, -0.42])
HAND_RADIUS = 0.08


@functools.lru_cache(maxsize=1)
def _cylinder():
  """Closed capped cylinder along y (radius 0.3 m, y in [-0.9, 0.9]), faces counter-clockwise outside."""
  mesh = trimesh.creation.cylinder(radius=0.3, height=1.8, sections=24)
  vertices = mesh.vertices @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # Rotation: z axis -> y axis.
  return trimesh.remesh.subdivide_to_size(vertices, mesh.faces, max_edge=0.12)


def _person(frame_index):
  """Scan vertices float64 [N, 3], faces [F, 3], labels [N] of one frame (shifted in x over time)."""
  body_v, body_f = _cylinder()
  y = body_v[:, 1]
  labels = np.select([y < -0.6, y < 0.05, y < 0.75], [0, 3, 4], default=2)
  hand = trimesh.creation.icosphere(subdivisions=1, radius=HAND_RADIUS)
  vertices = np.concatenate([body_v, hand.vertices + HAND_CENTRE])
  faces = np.concatenate([body_f, hand.faces + len(body_v)])
  labels = np.concatenate([labels, np.zeros(len(hand.vertices), int)])
  return vertices + [0.03 * frame_index, 0, 0], faces, labels


def reference_face_ids(rotation, translation, vertices, faces, k=K, size=(HEIGHT, WIDTH)):
  """Slow reference z-buffer at pixel centres (point in triangle, 1/z interpolated).

  Returns the nearest face id per pixel int [H, W] (-1 = none) and its camera depth [H, W] (inf).
  """
  x = vertices @ rotation.T + translation
  z = x[:, 2]
  uv = (x @ k.T)[:, :2] / z[:, None]
  cols, rows = np.meshgrid(np.arange(size[1]), np.arange(size[0]))
  p = np.stack([cols.ravel(), rows.ravel()], -1).astype(np.float64)
  best = np.full(len(p), np.inf)
  ids = np.full(len(p), -1)
  for f, (a, b, c) in enumerate(faces):
    pa, pb, pc = uv[a], uv[b], uv[c]
    det = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pc[0] - pa[0]) * (pb[1] - pa[1])
    if abs(det) < 1e-12:
      continue
    l1 = ((p[:, 0] - pa[0]) * (pc[1] - pa[1]) - (pc[0] - pa[0]) * (p[:, 1] - pa[1])) / det
    l2 = ((pb[0] - pa[0]) * (p[:, 1] - pa[1]) - (p[:, 0] - pa[0]) * (pb[1] - pa[1])) / det
    l0 = 1 - l1 - l2
    inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
    depth = 1.0 / (l0 / z[a] + l1 / z[b] + l2 / z[c])
    closer = inside & (depth < best)
    best[closer] = depth[closer]
    ids[closer] = f
  return ids.reshape(size), best.reshape(size)


@functools.lru_cache(maxsize=None)
def _reference(t, cam):
  """reference_face_ids of fixture frame t seen by camera cam (cached: the fixture is deterministic)."""
  vertices, faces, _ = _person(t)
  return reference_face_ids(ROTATIONS[cam], TRANSLATIONS[cam], vertices, faces)


def numpy_smpl_joints(arrays, betas, pose, transl):
  """Slow reference: SMPL's posed joints [24, 3] by forward kinematics in numpy (scipy rotations)."""
  shaped = arrays['v_template'] + arrays['shapedirs'][..., :len(betas)] @ betas
  rest = arrays['J_regressor'] @ shaped
  rotations = Rotation.from_rotvec(np.reshape(pose, (-1, 3))).as_matrix()
  frames = []
  for k, parent in enumerate(arrays['parents']):
    local = np.eye(4)
    local[:3, :3] = rotations[k]
    local[:3, 3] = rest[k] - (rest[parent] if parent >= 0 else 0.0)
    frames.append(local if parent < 0 else frames[parent] @ local)
  return np.stack([f[:3, 3] for f in frames]) + transl


def _smpl_params(arrays, rng):
  """Per-frame SMPL parameters with joint 22 (left hand) at the fixture's hand sphere centre."""
  params = []
  betas = np.full(10, 0.5)
  for t in range(len(FRAMES)):
    pose = rng.normal(scale=0.1, size=72)
    joint = numpy_smpl_joints(arrays, betas, pose, np.zeros(3))[22]
    transl = HAND_CENTRE + [0.03 * t, 0, 0] - joint
    params.append({'global_orient': pose[:3], 'body_pose': pose[3:], 'transl': transl, 'betas': betas})
  return params


def _dump(path, data):
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open('wb') as f:
    pickle.dump(data, f)


def _cameras(camera_to_world=False):
  """cameras.pkl contents; camera_to_world=True stores the inverse extrinsics (the wrong convention)."""
  cameras = {}
  for cam, r in ROTATIONS.items():
    t = TRANSLATIONS[cam][:, None]
    extr = np.concatenate([r.T, -r.T @ t], 1) if camera_to_world else np.concatenate([r, t], 1)
    cameras[cam] = {'intrinsics': K.copy(), 'extrinsics': extr}
  return cameras


def write_take(root: pathlib.Path, smpl_path: pathlib.Path) -> pathlib.Path:
  """Host: a 3-frame take in 4D-Dress's layout under root/00123/Inner/Take1."""
  take = root / '00123' / 'Inner' / 'Take1'
  rng = np.random.default_rng(0)
  arrays = smplx_jax.load_model_arrays(smpl_path)
  _dump(take / 'basic_info.pkl', {'scan_frames': list(FRAMES), 'rotation': np.eye(3), 'offset': np.zeros(3),
                                  'gender': 'female'})
  _dump(take / 'Capture' / 'cameras.pkl', _cameras())
  for t, (frame, smpl) in enumerate(zip(FRAMES, _smpl_params(arrays, rng))):
    vertices, faces, labels = _person(t)
    _dump(take / 'Meshes_pkl' / f'mesh-f{frame}.pkl', {
        'vertices': np.float32(vertices), 'faces': faces.astype(np.int64),
        'colors': rng.integers(0, 256, (len(vertices), 3), dtype=np.uint8),
        'normals': np.float32(trimesh.Trimesh(vertices, faces, process=False).vertex_normals),
        'uvs': np.float32(rng.random((len(vertices), 2)))})
    _dump(take / 'Semantic' / 'labels' / f'label-f{frame}.pkl', {'scan_labels': labels})
    _dump(take / 'SMPL' / f'mesh-f{frame}_smpl.pkl', {k: np.float32(v) for k, v in smpl.items()})
    for cam in ROTATIONS:
      ids, _ = _reference(t, cam)
      person = ids >= 0
      image = np.where(person[..., None], 60 + 40 * labels[faces[ids]].max(-1)[..., None], 255)
      image = np.uint8(np.clip(image + rng.integers(0, 20, (HEIGHT, WIDTH, 3)), 0, 255))
      (take / 'Capture' / cam / 'images').mkdir(parents=True, exist_ok=True)
      (take / 'Capture' / cam / 'masks').mkdir(parents=True, exist_ok=True)
      Image.fromarray(image).save(take / 'Capture' / cam / 'images' / f'capture-f{frame}.png')
      Image.fromarray(np.uint8(person) * 255).save(take / 'Capture' / cam / 'masks' / f'mask-f{frame}.png')
  return take


@pytest.fixture(scope='module')
def smpl_path(tmp_path_factory):
  path = tmp_path_factory.mktemp('smpl') / 'SMPL_RANDOM.npz'
  smplx_jax.testing.write_random_smpl(path, seed=3)
  return path


@pytest.fixture(scope='module')
def take(tmp_path_factory, smpl_path):
  return write_take(tmp_path_factory.mktemp('dress'), smpl_path)


def _copy(take, tmp_path):
  dst = tmp_path / 'take'
  shutil.copytree(take, dst)
  return dst


def test_read_take_matches_the_written_layout(take):
  t = dress4d.read_take(take)
  assert t.frames == FRAMES and t.gender == 'female'
  assert sorted(t.cameras) == ['0004', '0028']
  np.testing.assert_allclose(t.cameras['0028'].world_to_camera[:3, :3], ROTATIONS['0028'])
  scan = dress4d.read_scan(t, FRAMES[1])
  vertices, faces, labels = _person(1)
  np.testing.assert_allclose(scan.vertices, vertices, atol=1e-6)
  np.testing.assert_array_equal(scan.labels, labels)
  params = dress4d.read_smpl_params(t, FRAMES)
  assert params.poses.shape == (3, 72) and params.betas.shape == (3, 10) and params.transl.shape == (3, 3)


def test_garment_submesh_holds_only_labelled_faces():
  vertices, faces, labels = _person(0)
  keep = dress4d.garment_faces(faces, labels, 'upper')
  expected = {tuple(sorted(map(tuple, np.round(vertices[f], 6)))) for f, k in zip(faces, keep)
              if all(labels[i] == 3 for i in f)}
  v, f = dress4d.submesh(vertices, faces, keep)
  got = {tuple(sorted(map(tuple, np.round(v[face], 6)))) for face in f}
  assert got == expected and len(f) == len(expected)
  assert len(v) == len(np.unique(f)) == f.max() + 1  # No unused vertex.
  dress = dress4d.garment_faces(faces, labels, 'dress')
  assert dress.sum() > keep.sum() + dress4d.garment_faces(faces, labels, 'lower').sum() - 1


def test_camera_check_catches_camera_to_world_extrinsics(take, tmp_path, smpl_path):
  swapped = _copy(take, tmp_path)
  _dump(swapped / 'Capture' / 'cameras.pkl', _cameras(camera_to_world=True))
  t = dress4d.read_take(swapped)
  scan = dress4d.read_scan(t, FRAMES[0])
  points = scan.vertices[np.unique(scan.faces[dress4d.garment_faces(scan.faces, scan.labels, 'upper')])]
  mask = dress4d.read_person_mask(t.mask_path('0004', FRAMES[0]))
  expected = r'(?s)read as world_to_camera.*only 0\.00.*--extrinsics=camera_to_world'
  with pytest.raises(dress4d.DatasetError, match=expected):
    dress4d.check_camera(t.cameras['0004'], points, mask, 'world_to_camera', 'camera 0004')
  check = dress4d.check_camera(t.cameras['0004'], points, mask, 'auto', 'camera 0004')
  assert check.convention == 'camera_to_world' and check.overlaps['camera_to_world'] >= 0.95
  good = dress4d.read_take(take).cameras['0004']
  np.testing.assert_allclose(check.camera.world_to_camera, good.world_to_camera, atol=1e-12)
  with pytest.raises(dress4d.DatasetError, match=r'cameras\.pkl \(camera 0004.*--extrinsics=camera_to_world'):
    dress4d.convert(swapped, tmp_path / 'out', 'upper', str(smpl_path))


def _break(take, tmp_path, action):
  broken = _copy(take, tmp_path)
  action(broken)
  return broken


@pytest.mark.parametrize('action, garment, camera, message', [
    (lambda p: (p / 'Capture' / 'cameras.pkl').unlink(), 'upper', '0004', r'cameras\.pkl: missing'),
    (lambda p: (p / 'Semantic' / 'labels' / f'label-f{FRAMES[2]}.pkl').unlink(), 'upper', '0004',
     rf'label-f{FRAMES[2]}\.pkl: missing, so frame {FRAMES[2]} has no vertex labels'),
    (lambda p: None, 'upper', '0099',
     r"cameras\.pkl: no camera '0099'; this take has \['0004', '0028'\]. Pass one of them with --camera"),
    (lambda p: (p / 'SMPL' / f'mesh-f{FRAMES[1]}_smpl.pkl').unlink(), 'upper', '0004',
     rf'no SMPL fit for 1 of 3 frames \(first: mesh-f{FRAMES[1]}_smpl\.pkl\)'),
    (lambda p: None, 'outer', '0004',
     r'label-f00011\.pkl: no face has all three vertices labelled outer.*Choose --garment'),
    (lambda p: (p / 'basic_info.pkl').unlink(), 'upper', '0004', r'basic_info\.pkl: missing'),
])
def test_bad_takes_give_one_clear_message(take, tmp_path, smpl_path, action, garment, camera, message):
  broken = _break(take, tmp_path, action)
  with pytest.raises(dress4d.DatasetError, match=message):
    dress4d.convert(broken, tmp_path / 'out', garment, str(smpl_path), camera=camera)
  assert not (tmp_path / 'out' / 'sequence.json').exists()


def test_frame_selection():
  t = dress4d.Take(pathlib.Path('x'), tuple(f'{i:05d}' for i in range(10)), 'male', {})
  assert dress4d.select_frames(t, 2, 7, 2) == ('00002', '00004', '00006')
  assert dress4d.select_frames(t, 8, -1, 1) == ('00008', '00009')
  with pytest.raises(dress4d.DatasetError, match='do not fit'):
    dress4d.select_frames(t, 3, 10, 1)


@pytest.fixture(scope='module')
def imported(take, smpl_path, tmp_path_factory):
  out = tmp_path_factory.mktemp('seq') / 'seq'
  dress4d.convert(take, out, 'upper', str(smpl_path),
                  options=dress4d.ImportOptions(normals='oracle', depth='oracle'))
  return out


def _hand_joints(take, smpl_path):
  """SMPL joints 20-23 per frame [T, 4, 3] of the take's parameters (numpy reference)."""
  arrays = smplx_jax.load_model_arrays(smpl_path)
  params = [pickle.loads((take / 'SMPL' / f'mesh-f{f}_smpl.pkl').read_bytes()) for f in FRAMES]
  betas = np.mean([p['betas'] for p in params], axis=0)
  return np.stack([numpy_smpl_joints(arrays, betas, np.concatenate([p['global_orient'], p['body_pose']]),
                                     p['transl'])[20:24] for p in params])


def _reference_masks(t, cam, joints, hand_radius=0.1):
  vertices, faces, labels = _person(t)
  ids, depth = _reference(t, cam)
  face_labels = labels[faces]
  garment = (face_labels == 3).all(-1)
  centroids = vertices[faces].mean(1)
  near = (np.linalg.norm(centroids[:, None] - joints[None], axis=-1) < hand_radius).any(-1)
  hands = (face_labels == 0).all(-1) & near
  seen = ids >= 0
  return seen & garment[ids], seen & hands[ids], ids, depth


def _read_mask(path):
  return np.asarray(Image.open(path)) > 127


def test_import_gives_a_valid_sequence(imported, take):
  seq = sequence.read_sequence(imported)
  assert seq.num_frames == len(FRAMES)
  assert sequence.validate_sequence(imported) == []
  meta = json.loads((imported / 'sequence.json').read_text())
  assert meta['garment'] == 'upper' and meta['fps'] == 30 and meta['image_size'] == [HEIGHT, WIDTH]
  assert 'ORACLE' in meta['source'] and 'read as world_to_camera' in meta['source']
  assert list(meta['eval_cameras']) == ['0028']
  np.testing.assert_allclose(meta['camera']['K'], K, atol=1e-5)
  eval_rotation = np.array(meta['eval_cameras']['0028']['world_to_camera'])[:3, :3]
  np.testing.assert_allclose(eval_rotation, ROTATIONS['0028'])
  body = read_body_npz(imported / 'body.npz')
  params = [pickle.loads((take / 'SMPL' / f'mesh-f{f}_smpl.pkl').read_bytes()) for f in FRAMES]
  poses = [np.concatenate([p['global_orient'], p['body_pose']]) for p in params]
  np.testing.assert_allclose(body.pose, poses, atol=1e-6)
  assert body.transforms.shape == (len(FRAMES), 24, 4, 4)
  assert not (imported / 'template.obj').exists()


def test_masks_match_a_numpy_zbuffer(imported, take, smpl_path):
  joints = _hand_joints(take, smpl_path)
  for t in range(len(FRAMES)):
    for cam, folder in (('0004', imported), ('0028', imported / 'gt' / 'views' / '0028')):
      ref_garment, ref_hands, ids, _ = _reference_masks(t, cam, joints[t])
      garment = _read_mask(folder / 'mask' / f'{t:06d}.png')
      # Pixel centres exactly on a shared edge may go to either face: allow a 2% disagreement.
      assert np.sum(garment != ref_garment) <= 0.02 * ref_garment.sum(), (t, cam)
      if cam == '0004':
        hands = _read_mask(imported / 'hands' / f'{t:06d}.png')
        assert ref_hands.sum() > 20 and np.sum(hands != ref_hands) <= 0.05 * ref_hands.sum()
        assert not np.any(hands & garment)
  # Point-projection check: every visible garment face's centroid pixel is in the garment mask.
  vertices, faces, labels = _person(0)
  garment = _read_mask(imported / 'mask' / '000000.png')
  _, _, ids, _ = _reference_masks(0, '0004', joints[0])
  x = vertices[faces].mean(1) @ ROTATIONS['0004'].T + TRANSLATIONS['0004']
  uv = (x @ K.T)[:, :2] / x[:, 2:]
  col, row = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
  visible = (labels[faces] == 3).all(-1) & (ids[row, col] == np.arange(len(faces)))
  assert visible.sum() > 30 and garment[row[visible], col[visible]].all()


def test_gt_garment_meshes_hold_only_labelled_faces(imported):
  seq = sequence.read_sequence(imported)
  for t in range(len(FRAMES)):
    vertices, faces, labels = _person(t)
    expected = {tuple(sorted(map(tuple, np.round(vertices[f], 4)))) for f in faces if (labels[f] == 3).all()}
    mesh = seq.gt_mesh(t)
    got = {tuple(sorted(map(tuple, np.round(mesh.vertices[f], 4)))) for f in mesh.faces}
    assert got == expected and len(mesh.faces) == len(expected)
    assert len(mesh.vertices) == len(np.unique(mesh.faces))


def test_oracle_normals_and_depth_follow_the_scan(imported, take, smpl_path):
  seq = sequence.read_sequence(imported)
  joints = _hand_joints(take, smpl_path)
  for t in range(len(FRAMES)):
    frame = seq.load_frame(t)
    _, _, ids, depth = _reference_masks(t, '0004', joints[t])
    vertices, faces, _ = _person(t)
    v = vertices[faces] @ ROTATIONS['0004'].T
    face_n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    face_n /= np.linalg.norm(face_n, axis=-1, keepdims=True)
    inside = frame.mask > 0
    cos = np.sum(frame.normal[inside] * face_n[ids[inside]], -1)
    assert np.all(cos > 0.9) and np.all(frame.normal[inside][:, 2] < 0)  # Seen faces face the camera.
    np.testing.assert_allclose(frame.depth[inside], depth[inside], rtol=2e-3)
    assert np.all(np.isnan(frame.depth[ids < 0]))


def test_user_estimates_are_converted(imported, take, smpl_path, tmp_path):
  seq = sequence.read_sequence(imported)
  normals_dir, depth_dir = tmp_path / 'normals', tmp_path / 'depth'
  normals_dir.mkdir()
  depth_dir.mkdir()
  for t, f in enumerate(FRAMES):
    frame = seq.load_frame(t)
    np.save(normals_dir / f'capture-f{f}.npy', frame.normal * [1, -1, -1])  # OpenGL axes.
    np.save(depth_dir / f'{f}.npy', 1.0 / frame.depth)  # Disparity.
  out = tmp_path / 'seq'
  options = dress4d.ImportOptions(normals=str(normals_dir), depth=str(depth_dir), normals_axes='opengl',
                                  depth_kind='disparity')
  dress4d.convert(take, out, 'upper', str(smpl_path), options=options)
  got = sequence.read_sequence(out)
  source = json.loads((out / 'sequence.json').read_text())['source']
  assert 'estimates from' in source and 'decoded as signed (auto: capture-f' in source
  for t in range(len(FRAMES)):
    a, b = seq.load_frame(t), got.load_frame(t)
    np.testing.assert_allclose(b.normal, a.normal, atol=1e-6)
    np.testing.assert_allclose(b.depth, -1.0 / a.depth, rtol=1e-6)
  (normals_dir / f'capture-f{FRAMES[1]}.npy').unlink()
  with pytest.raises(importing.InputError, match=f'no estimate for frame {FRAMES[1]}'):
    dress4d.convert(take, tmp_path / 'seq2', 'upper', str(smpl_path),
                    options=dress4d.ImportOptions(normals=str(normals_dir)))


def test_stride_resolution_and_command_line(take, smpl_path, tmp_path):
  out = tmp_path / 'seq'
  flag_values = flags.FlagValues()
  dress4d.define_flags(flag_values)
  template = tmp_path / 'template.obj'
  trimesh.creation.icosphere(subdivisions=1, radius=0.3).export(template)
  flag_values(['dress4d', f'--take={take}', '--garment=upper', f'--smpl_model={smpl_path}', f'--out={out}',
               '--first=1', '--stride=2', '--resolution=160', f'--template={template}'])
  dress4d.convert_from_flags(flag_values)
  meta = json.loads((out / 'sequence.json').read_text())
  assert meta['image_size'] == [160, 120] and meta['fps'] == 15 and meta['frames'] == ['000000']
  assert f'scan frames {FRAMES[1]}..{FRAMES[1]}' in meta['source']
  k2 = np.array(meta['camera']['K'])
  np.testing.assert_allclose(k2, [[180, 0, 59.5], [0, 180, 79.5], [0, 0, 1]], atol=1e-4)
  vertices, faces, labels = _person(1)
  ids, _ = reference_face_ids(ROTATIONS['0004'], TRANSLATIONS['0004'], vertices, faces, k2, (160, 120))
  ref = (ids >= 0) & (labels[faces] == 3).all(-1)[ids]
  garment = _read_mask(out / 'mask' / '000000.png')
  # The person mask is upsampled from 80x60, so pixels along its border may differ.
  assert np.sum(garment != ref) <= 0.06 * ref.sum()
  assert not (out / 'normal').exists() and not (out / 'depth').exists()
  template_path = sequence.read_sequence(out).template_path
  assert len(trimesh.load(template_path, process=False).faces) == 80
  with pytest.raises(sequence.SequenceError, match='--overwrite'):
    dress4d.convert_from_flags(flag_values)
  flag_values.overwrite, flag_values.resolution = True, 80
  dress4d.convert_from_flags(flag_values)
  assert json.loads((out / 'sequence.json').read_text())['image_size'] == [80, 60]


@pytest.mark.parametrize('name, garment, epochs', [
    ('seq123', 'tshirt', (400, 600)), ('seq148', 'dress', (400, 600)), ('seq169', 'tshirt', (400, 600)),
    ('seq185', 'dress', (400, 600)), ('seq187', 'dress', (400, 800))])
def test_paper_configs_override_only_the_sequence_settings(name, garment, epochs):
  config = importlib.import_module(f'configs.{name}').get_config()
  default = importlib.import_module('configs.default').get_config()
  assert config.template.source == 'body' and config.template.garment == garment
  assert config.data.resolution == 1080 and config.data.path == '' and tuple(config.remesh.epochs) == epochs
  changed = {k for k in ('data', 'template', 'remesh', 'train', 'loss', 'geometry', 'appearance')
             if config[k].to_dict() != default[k].to_dict()}
  assert changed <= {'data', 'template', 'remesh'}
