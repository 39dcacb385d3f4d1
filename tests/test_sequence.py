"""Sequence format: write/read round trip of every field, resizing, and one test per bad input."""

import dataclasses
import json
import shutil

import numpy as np
from PIL import Image
import pytest
import trimesh

from configs import default
from ngd_jax import body as body_lib
from ngd_jax import data
from ngd_jax import frames

H, W, T = 24, 32, 3


def _camera(t):
  k = np.array([[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]])
  w2c = np.eye(4)
  w2c[:3, 3] = [0.1 * t, 0.0, 2.0]
  return data.Camera(k.astype(np.float32), w2c.astype(np.float32))


def _body(rng, num_frames=T):
  num_vertices, num_joints = 12, 3
  weights = rng.random((num_vertices, num_joints))
  transforms = np.broadcast_to(np.eye(4), (num_frames, num_joints, 4, 4)).copy()
  transforms[..., :3, 3] = rng.normal(size=(num_frames, num_joints, 3)) * 0.1
  return body_lib.BodyData(
      rest_vertices=rng.normal(size=(num_vertices, 3)).astype(np.float32),
      faces=np.array([[0, 1, 2], [2, 3, 4]], np.int32),
      skinning_weights=(weights / weights.sum(1, keepdims=True)).astype(np.float32),
      transforms=transforms.astype(np.float32),
      pose=rng.normal(size=(num_frames, 9)).astype(np.float32),
  )


def _contents(seed=0):
  rng = np.random.default_rng(seed)
  masks = np.zeros((T, H, W), bool)
  masks[:, 4:20, 6:26] = True
  normals = rng.normal(size=(T, H, W, 3))
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  depths = rng.random((T, H, W)).astype(np.float32) + 1.0
  depths[:, 0, 0] = np.nan
  hands = np.zeros((T, H, W), bool)
  hands[:, 10:12, 2:5] = True
  tetra = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32) * 0.3,
           np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32))
  return dict(
      rgb=rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8),
      masks=masks,
      hands=hands,
      normals=normals.astype(np.float32),
      depths=depths,
      cameras=[_camera(t) for t in range(T)],
      body=_body(rng),
      template=tetra,
      gt_meshes=[(tetra[0] + 0.1 * t, tetra[1]) for t in range(T)],
      eval_views={'side': ([rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)] * T, [masks[0, :20, :16]] * T)},
      eval_cameras={'side': _camera(7)},
      fps=25.0,
      garment='dress',
      source='unit test',
  )


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
  path = tmp_path_factory.mktemp('pristine') / 'seq'
  contents = _contents()
  data.write_sequence(path, **contents)
  return path, contents


@pytest.fixture
def seq_dir(pristine, tmp_path):
  path = tmp_path / 'seq'
  shutil.copytree(pristine[0], path)
  return path


def test_round_trip_of_every_field(pristine):
  path, c = pristine
  seq = data.read_sequence(path)
  assert seq.frames == ('000000', '000001', '000002') and seq.fps == 25.0 and seq.image_size == (H, W)
  assert seq.garment == 'dress' and seq.source == 'unit test'
  assert seq.channels == {'hands', 'normal', 'depth'} and seq.gt_frames == set(seq.frames)
  np.testing.assert_array_equal(seq.K, np.stack([cam.K for cam in c['cameras']]))
  np.testing.assert_array_equal(seq.world_to_camera, np.stack([cam.world_to_camera for cam in c['cameras']]))
  np.testing.assert_array_equal(seq.eval_cameras['side'].K, c['eval_cameras']['side'].K)
  for field in dataclasses.fields(body_lib.BodyData):
    want = getattr(c['body'], field.name)
    if want is not None:
      np.testing.assert_array_equal(getattr(seq.body, field.name), want, err_msg=field.name)
  template = trimesh.load(seq.template_path, force='mesh', process=False)
  np.testing.assert_allclose(template.vertices, c['template'][0], atol=1e-6)
  np.testing.assert_array_equal(template.faces, c['template'][1])
  for i in range(T):
    frame = seq.load_frame(i)
    np.testing.assert_array_equal(frame.rgb, c['rgb'][i] / np.float32(255))
    np.testing.assert_array_equal(frame.mask, c['masks'][i])
    np.testing.assert_array_equal(frame.hands, c['hands'][i])
    np.testing.assert_array_equal(frame.normal, c['normals'][i])
    np.testing.assert_array_equal(frame.depth, c['depths'][i])
    assert frame.rgb.dtype == frame.mask.dtype == np.float32
    np.testing.assert_allclose(seq.gt_mesh(i).vertices, c['gt_meshes'][i][0], atol=1e-6)
    np.testing.assert_array_equal(seq.gt_mesh(i).faces, c['gt_meshes'][i][1])
    view = seq.eval_view('side', i)
    np.testing.assert_array_equal(view.rgb, c['eval_views']['side'][0][i] / np.float32(255))
    np.testing.assert_array_equal(view.mask, c['eval_views']['side'][1][i])
  assert json.loads((path / 'sequence.json').read_text())['format'] == 'ngd-sequence/1'
  assert data.validate_sequence(path) == []


def test_resized_frame_and_camera(pristine):
  path, c = pristine
  seq = data.read_sequence(path)
  frame = seq.load_frame(1, resolution=16)  # Longer side 32 -> 16: every channel halves.
  assert frame.rgb.shape == (12, 16, 3) and frame.mask.shape == (12, 16)
  blocks = lambda a: a.reshape(12, 2, 16, 2, *a.shape[2:]).mean(axis=(1, 3))
  np.testing.assert_allclose(frame.rgb, blocks(c['rgb'][1] / 255.0), atol=1e-5)
  np.testing.assert_array_equal(frame.mask, blocks(c['masks'][1].astype(float)) >= 0.5)
  np.testing.assert_array_equal(frame.depth, c['depths'][1][1::2, 1::2])  # Nearest pixel centre.
  np.testing.assert_allclose(np.linalg.norm(frame.normal, axis=-1), 1.0, atol=1e-5)
  assert set(np.unique(frame.hands)) <= {0.0, 1.0}
  # A world point projects to u' + 0.5 = (u + 0.5) / 2 in the resized image.
  point = np.array([0.2, -0.1, 1.0, 1.0])
  def project(camera):
    x = camera.K @ (camera.world_to_camera @ point)[:3]
    return x[:2] / x[2]
  np.testing.assert_allclose(project(seq.camera(1, 16)) + 0.5, (project(seq.camera(1)) + 0.5) / 2, atol=1e-5)
  assert data.resized_size((24, 32), 16) == (12, 16) and data.resized_size((1280, 940), 512) == (512, 376)
  view = seq.eval_view('side', 0, resolution=8)
  assert view.rgb.shape == (8, 6, 3) and view.camera.K[0, 0] == pytest.approx(40.0 * 6 / 16)


def _write_png(path, array):
  Image.fromarray(array).save(path)


def _rewrite_json(path, **changes):
  meta = json.loads((path / 'sequence.json').read_text())
  meta.update(changes)
  meta = {k: v for k, v in meta.items() if v is not None}  # None removes a key.
  (path / 'sequence.json').write_text(json.dumps(meta))


def _rewrite_body(path, **changes):
  with np.load(path / 'body.npz') as f:
    arrays = dict(f)
  arrays.update(changes)
  np.savez(path / 'body.npz', **arrays)


def _raises_at_read(path, file_pattern):
  with pytest.raises(data.SequenceError, match=file_pattern) as info:
    data.read_sequence(path)
  assert 'Fix: ' in str(info.value)
  return str(info.value)


# Each case breaks the valid sequence one way; the message must name the file (regex) and the problem.
READ_CASES = {
    'missing rgb image': (lambda p: (p / 'rgb' / '000001.png').unlink(), r'rgb/000001\.png: file not found'),
    'missing mask folder': (lambda p: shutil.rmtree(p / 'mask'), r'mask: folder not found'),
    'missing body': (lambda p: (p / 'body.npz').unlink(), r'body\.npz: file not found'),
    'missing json': (lambda p: (p / 'sequence.json').unlink(), r'sequence\.json: file not found'),
    'extra rgb frame': (lambda p: shutil.copy(p / 'rgb' / '000000.png', p / 'rgb' / '000009.png'),
                        r'rgb: rgb/ holds 4 frames but sequence\.json lists 3'),
    'extra mask frame': (lambda p: shutil.copy(p / 'mask' / '000000.png', p / 'mask' / '000009.png'),
                         r'mask: mask/ holds 4 frames'),
    'body frame count': (lambda p: _rewrite_body(p, transforms=np.zeros((2, 3, 4, 4), np.float32) + np.eye(4),
                                                  pose=np.zeros((2, 9), np.float32)),
                         r'body\.npz: transforms has 2 frames but sequence\.json lists 3'),
    'camera count': (lambda p: _rewrite_json(p, cameras=[_camera(0).to_json()] * 2),
                     r'sequence\.json: "cameras" has 2 entries for 3 frames'),
    'rgb of another size': (lambda p: _write_png(p / 'rgb' / '000002.png', np.zeros((20, W, 3), np.uint8)),
                            r'rgb/000002\.png: image is 20x32 .*different sizes'),
    'mask of another size': (lambda p: _write_png(p / 'mask' / '000001.png', np.zeros((H, 30), np.uint8)),
                             r'mask/000001\.png: image is 24x30'),
    'mask not binary': (lambda p: _write_png(p / 'mask' / '000001.png', np.full((H, W), 128, np.uint8)),
                        r'mask/000001\.png: mask is not binary'),
    'mask empty': (lambda p: _write_png(p / 'mask' / '000002.png', np.zeros((H, W), np.uint8)),
                   r'mask/000002\.png: garment mask is empty'),
    'camera not finite': (lambda p: _rewrite_json(p, camera={'K': [[float('nan'), 0, 1], [0, 1, 1], [0, 0, 1]],
                                                             'world_to_camera': np.eye(4).tolist()}, cameras=None),
                          r'sequence\.json: "camera" holds non-finite'),
    'per-frame camera not finite': (
        lambda p: _rewrite_json(p, cameras=[_camera(0).to_json(), {'K': np.eye(3).tolist(),
                                'world_to_camera': np.full((4, 4), np.inf).tolist()}, _camera(2).to_json()]),
        r'sequence\.json: "cameras\[1\]" holds non-finite'),
    'eval camera wrong shape': (
        lambda p: _rewrite_json(p, eval_cameras={'side': {'K': np.eye(4).tolist(),
                                                          'world_to_camera': np.eye(4).tolist()}}),
                                r'sequence\.json: "eval_cameras\.side" has K \(4, 4\)'),
    'body transforms not finite': (lambda p: _rewrite_body(p, transforms=np.full((T, 3, 4, 4), np.nan, np.float32)),
                                   r'body\.npz: transforms holds non-finite'),
    'skinning weights do not sum to 1': (lambda p: _rewrite_body(p, skinning_weights=np.full((12, 3), 0.5, np.float32)),
                                         r'body\.npz: skinning_weights row 0 sums to 1\.5'),
    'body array wrong shape': (lambda p: _rewrite_body(p, rest_vertices=np.zeros((12, 2), np.float32)),
                               r'body\.npz: rest_vertices has shape \(12, 2\)'),
    'body array wrong dtype': (lambda p: _rewrite_body(p, faces=np.array([['a', 'b', 'c']])),
                               r'body\.npz: faces has dtype <U1'),
    'normal wrong shape': (lambda p: np.save(p / 'normal' / '000000.npy', np.zeros((H, W), np.float32)),
                           r'normal/000000\.npy: normal has shape \(24, 32\) and dtype float32, '
                           r'expected \(24, 32, 3\)'),
    'depth wrong dtype': (lambda p: np.save(p / 'depth' / '000001.npy', np.zeros((H, W), np.float64)),
                          r'depth/000001\.npy: depth has shape \(24, 32\) and dtype float64'),
    'missing depth frame': (lambda p: (p / 'depth' / '000002.npy').unlink(), r'depth/000002\.npy: file not found'),
    'template without faces': (lambda p: (p / 'template.obj').write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\n'),
                               r'template\.obj: not a valid triangle mesh'),
    'template degenerate face': (lambda p: (p / 'template.obj').write_text('v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n'),
                                 r'template\.obj: not a valid triangle mesh \(1 faces of zero area\)'),
    'wrong format': (lambda p: _rewrite_json(p, format='ngd-sequence/0'), r'sequence\.json: "format" is'),
    'unknown garment': (lambda p: _rewrite_json(p, garment='hat'), r'sequence\.json: "garment" is \'hat\''),
    'eval view without camera': (lambda p: _rewrite_json(p, eval_cameras={}), r'views: held-out views on disk'),
    'template with a fin edge': (  # Edge 1-2 borders three faces.
        lambda p: (p / 'template.obj').write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 -1 0\nv 0 0 1\n'
                                                  'f 1 2 3\nf 2 1 4\nf 1 2 5\n'),
        r'template\.obj: non-manifold mesh \(1 edges shared by more than two faces, e\.g\. vertices 0-1 shared by 3'),
    'camera rotation all zeros': (
        lambda p: _rewrite_json(p, cameras=[_camera(0).to_json(), {'K': _camera(1).to_json()['K'], 'world_to_camera': [
            [0, 0, 0, 0.1], [0, 0, 0, 0], [0, 0, 0, 2], [0, 0, 0, 1]]}, _camera(2).to_json()]),
        r'sequence\.json: "cameras\[1\]" world_to_camera rotation block is not a rotation'),
    'camera mirrored': (
        lambda p: _rewrite_json(p, eval_cameras={'side': {'K': _camera(7).to_json()['K'], 'world_to_camera': np.diag(
            [1.0, 1.0, -1.0, 1.0]).tolist()}}),
        r'sequence\.json: "eval_cameras\.side" world_to_camera rotation block is not a rotation .*det R = -1'),
    'garbage gt mesh': (lambda p: (p / 'gt' / 'garment' / '000001.ply').write_bytes(b'not a mesh at all'),
                        r'gt/garment/000001\.ply: not a readable mesh'),
    'gt mesh of an unlisted frame': (
        lambda p: shutil.copy(p / 'gt' / 'garment' / '000000.ply', p / 'gt' / 'garment' / '000009.ply'),
        r'garment: gt/garment/ holds 1 meshes of frames not listed in sequence\.json, e\.g\. 000009\.ply'),
}


@pytest.mark.parametrize('case', sorted(READ_CASES))
def test_each_bad_input_is_one_clear_message(seq_dir, case):
  breaks, pattern = READ_CASES[case]
  breaks(seq_dir)
  message = _raises_at_read(seq_dir, pattern)
  assert data.validate_sequence(seq_dir) == [message]


def test_missing_folder(tmp_path):
  with pytest.raises(data.SequenceError, match=r'nowhere: sequence folder not found'):
    data.read_sequence(tmp_path / 'nowhere')


def test_bad_contents_found_at_load_time_and_by_validate(seq_dir):
  normal = np.load(seq_dir / 'normal' / '000001.npy') * 2.0
  np.save(seq_dir / 'normal' / '000001.npy', normal)
  _write_png(seq_dir / 'hands' / '000002.png', np.full((H, W), 7, np.uint8))
  depth = np.load(seq_dir / 'depth' / '000000.npy')
  depth[3, 3] = np.inf
  np.save(seq_dir / 'depth' / '000000.npy', depth)
  seq = data.read_sequence(seq_dir)
  with pytest.raises(data.SequenceError, match=r'normal/000001\.npy: \d+ normals are not finite unit'):
    seq.load_frame(1)
  with pytest.raises(data.SequenceError, match=r'hands/000002\.png: mask is not binary'):
    seq.load_frame(2)
  problems = data.validate_sequence(seq_dir)
  assert len(problems) == 3
  assert 'depth/000000.npy: depth holds inf' in problems[0]
  assert 'normal/000001.npy' in problems[1] and 'hands/000002.png' in problems[2]


def test_writer_refuses_inconsistent_input(tmp_path):
  c = _contents()
  with pytest.raises(ValueError, match=r'body has 3 frames, 2 frames were added'):
    data.write_sequence(tmp_path / 'a', **dict(c, rgb=c['rgb'][:2], masks=c['masks'][:2], hands=None, normals=None,
                                               depths=None, gt_meshes=None, eval_views=None, eval_cameras=None))
  assert sorted(p.name for p in tmp_path.iterdir()) == []  # Nothing written, no hidden folder left.
  data.write_sequence(tmp_path / 'b', **dict(c, cameras=None, camera=_camera(0)))
  with pytest.raises(ValueError, match=r'folder exists and is not empty .* --overwrite'):
    data.write_sequence(tmp_path / 'b', **c)
  # A failed overwrite keeps the sequence that was there.
  with pytest.raises(ValueError, match=r'body has 3 frames, 2 frames were added'):
    data.write_sequence(tmp_path / 'b', **dict(c, rgb=c['rgb'][:2], masks=c['masks'][:2], cameras=None,
                                               camera=_camera(1), hands=None, normals=None, depths=None,
                                               gt_meshes=None, eval_views=None, eval_cameras=None), overwrite=True)
  np.testing.assert_array_equal(data.read_sequence(tmp_path / 'b').world_to_camera[2], _camera(0).world_to_camera)
  again = data.write_sequence(tmp_path / 'b', **dict(c, cameras=None, camera=_camera(1)), overwrite=True)
  np.testing.assert_array_equal(again.world_to_camera[2], _camera(1).world_to_camera)
  assert again.path == tmp_path / 'b' and sorted(p.name for p in tmp_path.iterdir()) == ['b']
  (tmp_path / 'other').mkdir()
  (tmp_path / 'other' / 'notes.txt').write_text('mine')
  with pytest.raises(ValueError, match=r'holds no sequence\.json'):
    data.write_sequence(tmp_path / 'other', **c, overwrite=True)
  assert (tmp_path / 'other' / 'notes.txt').read_text() == 'mine'
  with pytest.raises(ValueError, match=r'mask values must be binary'):
    data.write_sequence(tmp_path / 'c', **dict(c, masks=c['masks'] * 0.5))


def test_template_with_latin1_comment_loads(seq_dir):
  """trimesh decodes a non-UTF-8 OBJ through charset-normalizer (requirements.txt)."""
  text = (seq_dir / 'template.obj').read_bytes()
  (seq_dir / 'template.obj').write_bytes(b'# mod\xe8le du v\xeatement\n' + text)
  seq = data.read_sequence(seq_dir)
  assert len(trimesh.load(seq.template_path, force='mesh', process=False).faces) == 4


def test_isolated_template_vertices_warn(seq_dir, caplog):
  with open(seq_dir / 'template.obj', 'a') as f:
    f.write('v 5 5 5\n')
  data.read_sequence(seq_dir)
  assert 'template.obj: 1 vertices belong to no face' in caplog.text


def _in_view_inputs(seq):
  """The tetrahedron template at the origin, seen by each frame's camera at z = 2 m."""
  config = default.get_config()
  vertices = trimesh.load(seq.template_path, force='mesh', process=False).vertices
  posed = np.broadcast_to(vertices - vertices.mean(axis=0), (T, len(vertices), 3)).copy()
  masks = np.stack([seq.load_frame(i).mask for i in range(T)])
  world_to_clip = np.stack([frames.clip_matrix(seq.camera(i), (H, W), config.render) for i in range(T)])
  return np.arange(T), posed, masks, world_to_clip


def test_check_in_view(pristine):
  seq = data.read_sequence(pristine[0])
  indices, posed, masks, world_to_clip = _in_view_inputs(seq)
  data.check_in_view(seq, indices, posed, masks, world_to_clip)
  behind = posed.copy()
  behind[1] = behind[1] + [0.0, 0.0, -4.0]  # 2 m behind the camera of frame 1.
  with pytest.raises(data.SequenceError, match=r'sequence\.json: 4 of the 4 vertices .* frame 000001, lie behind'):
    data.check_in_view(seq, indices, behind, masks, world_to_clip)
  aside = posed.copy()
  aside[2] = aside[2] + [0.0, 3.0, 0.0]  # In front of the camera, far below the mask.
  with pytest.raises(data.SequenceError, match=r'mask/000002\.png: none of the 4 vertices'):
    data.check_in_view(seq, indices, aside, masks, world_to_clip)
