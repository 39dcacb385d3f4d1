"""Tests of ngd_jax.export: round trips through independent readers (trimesh, a GLB reader here)."""

import json
import struct

import imageio.v2 as iio_v2
import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

from ngd_jax import export
from ngd_jax import images
from ngd_jax import views


def _grid_mesh(n=4):
  """A bent n x n vertex sheet: vertices float [n*n, 3], faces int32 CCW seen from +z."""
  x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
  vertices = np.stack([x, y, 0.2 * np.sin(3 * x)], -1).reshape(-1, 3)
  i = np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]
  faces = np.concatenate([np.stack([i, i + 1, i + n + 1], -1).reshape(-1, 3),
                          np.stack([i, i + n + 1, i + n], -1).reshape(-1, 3)])
  return vertices, faces.astype(np.int32)


def _read_obj(path):
  """Minimal OBJ reader: v, vt and f (v or v/vt) records."""
  v, vt, f, ft = [], [], [], []
  for line in path.read_text().splitlines():
    parts = line.split()
    if parts and parts[0] == 'v':
      v.append([float(p) for p in parts[1:]])
    elif parts and parts[0] == 'vt':
      vt.append([float(p) for p in parts[1:]])
    elif parts and parts[0] == 'f':
      corners = [p.split('/') for p in parts[1:]]
      f.append([int(c[0]) - 1 for c in corners])
      if len(corners[0]) > 1:
        ft.append([int(c[1]) - 1 for c in corners])
  return np.array(v), np.array(vt), np.array(f), np.array(ft)


def test_write_obj_round_trip(tmp_path):
  vertices, faces = _grid_mesh()
  path = tmp_path / 'sub' / 'mesh.obj'
  export.write_obj(path, vertices, faces)
  v, _, f, _ = _read_obj(path)
  np.testing.assert_allclose(v, vertices, rtol=1e-7, atol=1e-9)
  np.testing.assert_array_equal(f, faces)
  loaded = trimesh.load(path, process=False)
  np.testing.assert_allclose(loaded.vertices, vertices, rtol=1e-7, atol=1e-9)
  np.testing.assert_array_equal(loaded.faces, faces)
  assert sorted(p.name for p in path.parent.iterdir()) == ['mesh.obj']
  with pytest.raises(ValueError, match='face indices'):
    export.write_obj(path, vertices, faces + len(vertices))


def _two_colour_texture():
  """8 x 4 texture stored top row first: top half red, bottom half blue."""
  texture = np.zeros((8, 4, 3), np.float32)
  texture[:4, :, 0] = 1.0
  texture[4:, :, 2] = 1.0
  return texture


def test_write_textured_obj_uv_convention(tmp_path):
  vertices, faces = _grid_mesh(3)
  uvs = vertices[:, :2].copy()  # Vertex (x, y) -> uv (x, y): y = 1 is the top of the image.
  path = tmp_path / 'garment.obj'
  export.write_textured_obj(path, vertices, faces, uvs, faces, _two_colour_texture())
  assert sorted(p.name for p in tmp_path.iterdir()) == ['garment.mtl', 'garment.obj', 'texture.png']
  assert 'map_Kd texture.png' in (tmp_path / 'garment.mtl').read_text()
  np.testing.assert_array_equal(iio.imread(tmp_path / 'texture.png'),
                                (_two_colour_texture() * 255).astype(np.uint8))
  v, vt, f, ft = _read_obj(path)
  np.testing.assert_allclose(vt, uvs, atol=1e-9)
  np.testing.assert_array_equal(ft, faces)
  np.testing.assert_array_equal(f, faces)
  # trimesh reads OBJ uvs with v = 0 at the bottom: a uv near v = 1 samples the red top half.
  loaded = trimesh.load(path, process=False)
  colours = trimesh.visual.color.uv_to_color(np.array([[0.5, 0.9], [0.5, 0.1]]),
                                             loaded.visual.material.image)
  np.testing.assert_array_equal(colours[:, :3], [[255, 0, 0], [0, 0, 255]])
  with pytest.raises(ValueError, match='face_uvs'):
    export.write_textured_obj(path, vertices, faces, uvs, faces[:-1], _two_colour_texture())


def _read_glb(path):
  """GLB reader: header, JSON and BIN chunks, accessors as numpy arrays (spec section 4.4)."""
  data = path.read_bytes()
  magic, version, length = struct.unpack_from('<III', data, 0)
  assert (magic, version, length) == (0x46546C67, 2, len(data))
  json_length, json_type = struct.unpack_from('<II', data, 12)
  assert json_type == 0x4E4F534A and json_length % 4 == 0
  gltf = json.loads(data[20:20 + json_length])
  bin_length, bin_type = struct.unpack_from('<II', data, 20 + json_length)
  assert bin_type == 0x004E4942 and bin_length % 4 == 0
  binary = data[28 + json_length:28 + json_length + bin_length]
  assert gltf['buffers'] == [{'byteLength': len(binary)}]

  def accessor(index):
    acc = gltf['accessors'][index]
    view = gltf['bufferViews'][acc['bufferView']]
    assert view['byteOffset'] % 4 == 0
    dtype = {5126: np.float32, 5125: np.uint32}[acc['componentType']]
    width = {'SCALAR': 1, 'VEC2': 2, 'VEC3': 3}[acc['type']]
    raw = binary[view['byteOffset']:view['byteOffset'] + view['byteLength']]
    array = np.frombuffer(raw, dtype).reshape(acc['count'], width)
    assert view['byteLength'] == array.nbytes
    return array if width > 1 else array[:, 0]

  def image(index):
    view = gltf['bufferViews'][gltf['images'][index]['bufferView']]
    return iio.imread(binary[view['byteOffset']:view['byteOffset'] + view['byteLength']],
                      extension='.png')
  return gltf, accessor, image


def _reference_vertex_normals(vertices, faces):
  """Area-weighted vertex normals, one face at a time."""
  normals = np.zeros_like(vertices)
  for a, b, c in faces:
    n = np.cross(vertices[b] - vertices[a], vertices[c] - vertices[a])
    for i in (a, b, c):
      normals[i] += n
  return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _frames(vertices, num_frames=5):
  t = np.arange(num_frames)[:, None, None]
  return (vertices[None] + np.array([0.0, 0.0, 0.05]) * np.sin(t + 3 * vertices[None, :, :1])
          + 0.01 * t).astype(np.float32)


def _check_bounds(gltf, accessor, index):
  acc = gltf['accessors'][index]
  values = accessor(index)
  np.testing.assert_allclose(acc['min'], values.min(0), rtol=1e-7)
  np.testing.assert_allclose(acc['max'], values.max(0), rtol=1e-7)


def test_animated_glb_round_trip(tmp_path):
  vertices, faces = _grid_mesh()
  frames = _frames(vertices)
  path = tmp_path / 'garment.glb'
  export.write_animated_glb(path, frames, faces, fps=10)
  gltf, accessor, _ = _read_glb(path)
  primitive = gltf['meshes'][0]['primitives'][0]
  base = accessor(primitive['attributes']['POSITION'])
  np.testing.assert_array_equal(accessor(primitive['indices']).reshape(-1, 3), faces)
  assert len(primitive['targets']) == len(frames)
  _check_bounds(gltf, accessor, primitive['attributes']['POSITION'])
  for t, target in enumerate(primitive['targets']):
    _check_bounds(gltf, accessor, target['POSITION'])
    np.testing.assert_allclose(base + accessor(target['POSITION']), frames[t], atol=1e-6)
    normal = accessor(primitive['attributes']['NORMAL']) + accessor(target['NORMAL'])
    reference = _reference_vertex_normals(frames[t].astype(np.float64), faces)
    np.testing.assert_allclose(normal, reference, atol=1e-6)
  animation = gltf['animations'][0]
  assert animation['channels'] == [{'sampler': 0, 'target': {'node': 0, 'path': 'weights'}}]
  sampler = animation['samplers'][0]
  times = accessor(sampler['input'])
  np.testing.assert_allclose(times, np.arange(len(frames)) / 10.0, rtol=1e-7)
  _check_bounds(gltf, accessor, sampler['input'])
  weights = accessor(sampler['output']).reshape(len(frames), len(frames))
  np.testing.assert_array_equal(weights, np.eye(len(frames)))
  assert gltf['materials'][0]['doubleSided'] is True
  assert gltf['meshes'][0]['weights'] == [1.0] + [0.0] * (len(frames) - 1)  # At rest: frame 0.
  # An independent reader sees the base mesh.
  scene = trimesh.load(path, process=False)
  (mesh,) = scene.geometry.values()
  np.testing.assert_allclose(mesh.vertices, frames[0], atol=1e-6)
  np.testing.assert_array_equal(mesh.faces, faces)


def test_animated_glb_with_texture_splits_seams(tmp_path):
  vertices, faces = _grid_mesh(3)
  # Two uv islands: faces in the first half map to the left of the atlas, the rest to the right,
  # so vertices on the shared diagonal carry two uvs.
  uvs = np.concatenate([vertices[:, :2] * 0.5, vertices[:, :2] * 0.5 + [0.5, 0.0]])
  face_uvs = faces.copy()
  face_uvs[len(faces) // 2:] += len(vertices)
  frames = _frames(vertices, 3)
  path = tmp_path / 'garment.glb'
  export.write_animated_glb(path, frames, faces, fps=30, uvs=uvs, face_uvs=face_uvs,
                            texture=_two_colour_texture())
  gltf, accessor, image = _read_glb(path)
  primitive = gltf['meshes'][0]['primitives'][0]
  new_faces = accessor(primitive['indices']).reshape(-1, 3)
  num_vertices = len(np.unique(np.stack([faces.ravel(), face_uvs.ravel()], -1), axis=0))
  assert len(accessor(primitive['attributes']['POSITION'])) == num_vertices
  base = accessor(primitive['attributes']['POSITION'])
  for t, target in enumerate(primitive['targets']):
    positions = base + accessor(target['POSITION'])
    np.testing.assert_allclose(positions[new_faces], frames[t][faces], atol=1e-6)
  texcoord = accessor(primitive['attributes']['TEXCOORD_0'])
  expected = uvs[face_uvs]
  expected[..., 1] = 1.0 - expected[..., 1]  # glTF: v = 0 at the top of the image.
  np.testing.assert_allclose(texcoord[new_faces], expected, atol=1e-7)
  np.testing.assert_array_equal(image(0), (_two_colour_texture() * 255).astype(np.uint8))
  material = gltf['materials'][0]['pbrMetallicRoughness']
  assert gltf['textures'][material['baseColorTexture']['index']]['source'] == 0
  with pytest.raises(ValueError, match='uvs and face_uvs together'):
    export.write_animated_glb(path, frames, faces, fps=30, texture=_two_colour_texture())


def test_side_by_side_and_colormap():
  a = np.zeros((6, 4, 3), np.float32)
  b = np.ones((6, 5), np.float32)
  row = images.side_by_side([a, b], gap=2)
  assert row.shape == (6, 11, 3) and row.dtype == np.uint8
  assert np.all(row[:, :4] == 0) and np.all(row[:, 6:] == 255)
  labelled = images.side_by_side([a, b], labels=['input', 'render'])
  assert labelled.shape[0] > 6 and labelled.shape[1] == 11
  assert np.any(labelled[:-6] < 255)  # Some text was drawn in the strip.
  with pytest.raises(ValueError, match='share a height'):
    images.side_by_side([a, b[:5]])
  error = images.error_colormap(np.zeros((2, 2, 3)), np.array([[0.0, 0.5], [1.0, 2.0]])[..., None]
                                * np.ones(3), error_max=1.0)
  np.testing.assert_array_equal(error[0, 0], [0, 0, 4])
  np.testing.assert_array_equal(error[1, 0], [252, 255, 164])
  np.testing.assert_array_equal(error[1, 1], [252, 255, 164])  # Clipped at error_max.
  np.testing.assert_array_equal(error[0, 1], [186, 54, 85])  # Anchor 4 of 8.


def test_preview_grid_and_animations(tmp_path):
  rng = np.random.default_rng(0)
  rows = [(rng.random((15, 21, 3)), rng.random((15, 21, 3))) for _ in range(3)]
  frames = [images.preview_row(a, b, label=str(k)) for k, (a, b) in enumerate(rows)]
  # Rows of different widths (e.g. a frame without held-out views) are padded with white.
  narrow = images.side_by_side([rows[0][0]], labels=['only one'])
  grid = export.write_preview_grid(tmp_path / 'preview.png', frames + [narrow])
  np.testing.assert_array_equal(iio.imread(tmp_path / 'preview.png'), grid)
  assert grid.shape == (3 * (frames[0].shape[0] + 2) + narrow.shape[0] + 2, frames[0].shape[1], 3)
  np.testing.assert_array_equal(grid[: frames[0].shape[0]], frames[0])
  assert np.all(grid[-narrow.shape[0] - 2:, narrow.shape[1]:] == 255)

  export.write_preview_animation(tmp_path / 'preview.gif', frames, fps=5, format='gif')
  gif = iio.imread(tmp_path / 'preview.gif', index=None)
  assert gif.shape[0] == 3 and gif.shape[1:3] == frames[0].shape[:2]

  export.write_preview_animation(tmp_path / 'preview.mp4', frames, fps=5, format='mp4')
  with iio_v2.get_reader(tmp_path / 'preview.mp4', format='FFMPEG') as reader:
    video = [frame for frame in reader]
    assert reader.get_meta_data()['fps'] == 5
  h, w = frames[0].shape[:2]
  assert len(video) == 3 and video[0].shape == (h + h % 2, w + w % 2, 3)
  assert np.abs(video[0][:h, :w].astype(float) - frames[0]).mean() < 20  # Lossy H.264.
  assert sorted(p.name for p in tmp_path.iterdir()) == ['preview.gif', 'preview.mp4', 'preview.png']

  with pytest.raises(ValueError, match=r'does not end in \.gif'):
    export.write_preview_animation(tmp_path / 'preview.mp4', frames, fps=5, format='gif')


def test_mp4_without_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setattr(export, 'ffmpeg_available', lambda: False)
  with pytest.raises(RuntimeError, match='imageio-ffmpeg'):
    export.write_preview_animation(tmp_path / 'a.mp4', [np.zeros((4, 4, 3))], fps=5, format='mp4')
  assert not list(tmp_path.iterdir())


def test_preview_indices_spread_over_the_whole_sequence():
  np.testing.assert_array_equal(views.preview_indices(30, 8), [0, 4, 8, 12, 16, 20, 24, 29])
  np.testing.assert_array_equal(views.preview_indices(4, 8), [0, 1, 2, 3])  # Fewer frames than asked.
  np.testing.assert_array_equal(views.preview_indices(5, 1), [0])
