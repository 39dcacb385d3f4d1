"""Host: writers for the outputs of a run (docs/design.md section 8): meshes, textures, glTF, previews.

Every writer is atomic: it writes a temporary file in the destination folder and renames it over
the destination, so a killed export leaves either the old file or the new one, never half a file.

UV convention (OBJ, OpenGL): u runs left to right and v = 0 is the BOTTOM row of the texture
image, while images are stored top row first. write_animated_glb converts to glTF's v = 0 at the
top itself.
"""

import io
import json
import logging
import os
import pathlib
import struct
from typing import Sequence

import imageio.v3 as iio
import numpy as np
from PIL import Image

from ngd_jax import files
from ngd_jax import images
from ngd_jax import meshes
from ngd_jax import metrics
from ngd_jax import restore
from ngd_jax import run as run_lib
from ngd_jax import views

# glTF 2.0 constants (Khronos glTF 2.0 specification, section 5).
_FLOAT = 5126
_UINT32 = 5125
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_GLB_MAGIC = 0x46546C67  # 'glTF'
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942


def _check_uvs(uvs: np.ndarray, face_uvs: np.ndarray, faces: np.ndarray,
               name: str) -> tuple[np.ndarray, np.ndarray]:
  """Host: uvs float [U, 2] and face_uvs int [F, 3] (one uv index per face corner) validated."""
  uvs = np.asarray(uvs)
  face_uvs = np.asarray(face_uvs)
  if uvs.ndim != 2 or uvs.shape[1] != 2 or not np.all(np.isfinite(uvs)):
    raise ValueError(f'{name}: uvs must be finite [U, 2], got shape {uvs.shape}.')
  if face_uvs.shape != faces.shape or not np.issubdtype(face_uvs.dtype, np.integer):
    raise ValueError(f'{name}: face_uvs must be integer with the shape of faces {faces.shape}, '
                     f'got {face_uvs.dtype} {face_uvs.shape}.')
  if face_uvs.size and (face_uvs.min() < 0 or face_uvs.max() >= len(uvs)):
    raise ValueError(f'{name}: face_uvs must lie in [0, {len(uvs)}).')
  return uvs, face_uvs


def _png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(images.to_uint8(image)).save(buffer, format='PNG')
  return buffer.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
  """Host: atomically write an image (see to_uint8) as PNG."""
  files.write_bytes(path, _png_bytes(image))


def _obj_text(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
              face_uvs: np.ndarray | None = None, header: Sequence[str] = ()) -> str:
  """Host: Wavefront OBJ text (1-based indices; 'f v/vt' corners when uvs are given)."""
  lines = list(header)
  lines += [f'v {x:.8g} {y:.8g} {z:.8g}' for x, y, z in np.asarray(vertices, np.float64)]
  if uvs is None:
    lines += [f'f {a} {b} {c}' for a, b, c in faces + 1]
  else:
    lines += [f'vt {u:.8g} {v:.8g}' for u, v in np.asarray(uvs, np.float64)]
    corners = np.stack([faces + 1, face_uvs + 1], axis=-1)  # [F, 3, 2]
    lines += [' '.join(['f'] + [f'{v}/{t}' for v, t in face]) for face in corners]
  return '\n'.join(lines) + '\n'


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
  """Host: atomically write a triangle mesh (vertices float [V, 3], faces int [F, 3]) as OBJ."""
  vertices, faces = metrics.mesh_arrays((vertices, faces), 'write_obj')
  files.write_bytes(path, _obj_text(vertices, faces).encode())


def write_textured_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray,
                       uvs: np.ndarray, face_uvs: np.ndarray, texture_image: np.ndarray,
                       texture_filename: str = 'texture.png') -> None:
  """Host: OBJ + MTL + PNG texture, all in the folder of `path`.

  Args:
    path: the .obj file; the material goes to the same name with .mtl.
    vertices: float [V, 3]; faces: int [F, 3].
    uvs: float [U, 2] in [0, 1], OBJ convention (v = 0 at the bottom row of the texture image).
    face_uvs: int [F, 3], the uv index of each face corner (uvs may be split at seams).
    texture_image: [Ht, Wt, 3] float in [0, 1] or uint8, top row first (as images are stored).
    texture_filename: name of the PNG next to the .obj.
  """
  vertices, faces = metrics.mesh_arrays((vertices, faces), 'write_textured_obj')
  uvs, face_uvs = _check_uvs(uvs, face_uvs, faces, 'write_textured_obj')
  path = pathlib.Path(path)
  mtl_name = path.with_suffix('.mtl').name
  # The .obj goes last so that its presence means the material and texture are complete.
  write_png(path.parent / texture_filename, texture_image)
  files.write_bytes(path.parent / mtl_name, (
      'newmtl garment\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n'
      f'map_Kd {texture_filename}\n').encode())
  obj = _obj_text(vertices, faces, uvs, face_uvs, header=(f'mtllib {mtl_name}', 'usemtl garment'))
  files.write_bytes(path, obj.encode())


class _GltfBuilder:
  """Host: accumulates binary-chunk views and accessors of a single-buffer glTF 2.0 asset."""

  def __init__(self):
    self.chunks: list[bytes] = []
    self.offset = 0
    self.buffer_views: list[dict] = []
    self.accessors: list[dict] = []

  def view(self, data: bytes, target: int | None = None) -> int:
    """Appends a 4-byte aligned buffer view; returns its index."""
    view = {'buffer': 0, 'byteOffset': self.offset, 'byteLength': len(data)}
    if target is not None:
      view['target'] = target
    padded = data + b'\0' * (-len(data) % 4)
    self.chunks.append(padded)
    self.offset += len(padded)
    self.buffer_views.append(view)
    return len(self.buffer_views) - 1

  def accessor(self, array: np.ndarray, kind: str, target: int | None = None,
               bounds: bool = False) -> int:
    """Appends array (float32 or uint32; [N] SCALAR, [N, 2] VEC2, [N, 3] VEC3) as an accessor."""
    component = _UINT32 if array.dtype == np.uint32 else _FLOAT
    array = np.ascontiguousarray(array, np.uint32 if component == _UINT32 else np.float32)
    accessor = {'bufferView': self.view(array.tobytes(), target), 'componentType': component,
                'count': int(array.shape[0]), 'type': kind}
    if bounds:  # Required for POSITION (base and morph targets) and animation inputs.
      flat = array.reshape(array.shape[0], -1)
      accessor['min'] = [float(x) for x in flat.min(axis=0)]
      accessor['max'] = [float(x) for x in flat.max(axis=0)]
    self.accessors.append(accessor)
    return len(self.accessors) - 1

  def glb(self, gltf: dict) -> bytes:
    """The GLB container: 12-byte header, JSON chunk (space padded), BIN chunk (zero padded)."""
    binary = b''.join(self.chunks)
    gltf = dict(gltf, bufferViews=self.buffer_views, accessors=self.accessors,
                buffers=[{'byteLength': len(binary)}])
    text = json.dumps(gltf, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 4)
    chunks = (struct.pack('<II', len(text), _CHUNK_JSON) + text +
              struct.pack('<II', len(binary), _CHUNK_BIN) + binary)
    return struct.pack('<III', _GLB_MAGIC, 2, 12 + len(chunks)) + chunks


def split_seams(faces: np.ndarray,
                face_uvs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Host: one vertex per unique (vertex, uv) corner pair, as glTF needs one uv per vertex.

  Returns (vertex_index int [N], uv_index int [N], new_faces int32 [F, 3]): new vertex i is
  original vertex vertex_index[i] with uv uv_index[i].
  """
  pairs = np.stack([faces.reshape(-1), face_uvs.reshape(-1)], axis=-1)
  unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
  return unique[:, 0], unique[:, 1], inverse.reshape(faces.shape).astype(np.int32)


def write_animated_glb(path: str | os.PathLike, vertices_per_frame: np.ndarray, faces: np.ndarray,
                       fps: float, uvs: np.ndarray | None = None,
                       face_uvs: np.ndarray | None = None,
                       texture: np.ndarray | None = None) -> None:
  """Host: one binary glTF 2.0 file that plays the frames (three.js, model-viewer, Blender).

  The mesh is frame 0 plus one morph target per frame (target t = frame t - frame 0, positions and
  normals), animated by a weights channel keyed at t / fps with weights one-hot on target t and
  LINEAR interpolation, so the mesh is exactly frame t at time t / fps. The material is double
  sided (garments are open surfaces). Positions are written as given (glTF viewers take +Y as up,
  metres). With a texture, vertices are duplicated per unique (vertex, uv) pair (split_seams).

  Args:
    path: the .glb file.
    vertices_per_frame: float [T, V, 3].
    faces: int [F, 3], counter-clockwise seen from the front.
    fps: frames per second of the animation.
    uvs, face_uvs: optional, as write_textured_obj (OBJ convention, v = 0 at the image bottom).
    texture: optional [Ht, Wt, 3] float in [0, 1] or uint8, top row first; needs uvs.
  """
  frames = np.asarray(vertices_per_frame)
  if frames.ndim != 3 or len(frames) == 0:
    raise ValueError(f'write_animated_glb: vertices_per_frame must be [T, V, 3] with T >= 1, '
                     f'got {frames.shape}.')
  _, faces = metrics.mesh_arrays((frames[0], faces), 'write_animated_glb')
  if not np.all(np.isfinite(frames)):
    raise ValueError('write_animated_glb: vertices_per_frame contain NaN or inf.')
  if not fps > 0:
    raise ValueError(f'write_animated_glb: fps must be positive, got {fps}.')
  if (uvs is None) != (face_uvs is None) or (texture is not None and uvs is None):
    raise ValueError('write_animated_glb: pass uvs and face_uvs together, and both with a texture.')
  normals = np.stack([meshes.vertex_normals(np.asarray(frame, np.float64), faces, fallback=(0.0, 0.0, 1.0))
                      for frame in frames]).astype(np.float32)
  if uvs is not None:
    uvs, face_uvs = _check_uvs(uvs, face_uvs, faces, 'write_animated_glb')
    vertex_index, uv_index, faces = split_seams(faces, face_uvs)
    frames, normals = frames[:, vertex_index], normals[:, vertex_index]
    # glTF puts v = 0 at the top of the image.
    texcoord = np.asarray(uvs, np.float64)[uv_index] * [1.0, -1.0] + [0.0, 1.0]

  builder = _GltfBuilder()
  base = frames[0].astype(np.float32)
  base_normal = normals[0]
  attributes = {
      'POSITION': builder.accessor(base, 'VEC3', _ARRAY_BUFFER, bounds=True),
      'NORMAL': builder.accessor(base_normal, 'VEC3', _ARRAY_BUFFER)}
  if uvs is not None:
    attributes['TEXCOORD_0'] = builder.accessor(texcoord.astype(np.float32), 'VEC2', _ARRAY_BUFFER)
  targets = [{'POSITION': builder.accessor(frames[t].astype(np.float32) - base, 'VEC3',
                                           _ARRAY_BUFFER, bounds=True),
              'NORMAL': builder.accessor(normals[t] - base_normal, 'VEC3', _ARRAY_BUFFER)}
             for t in range(len(frames))]
  indices = builder.accessor(faces.reshape(-1).astype(np.uint32), 'SCALAR', _ELEMENT_ARRAY_BUFFER)
  num_frames = len(frames)
  times = builder.accessor(np.arange(num_frames, dtype=np.float32) / np.float32(fps), 'SCALAR',
                           bounds=True)
  weights = builder.accessor(np.eye(num_frames, dtype=np.float32).reshape(-1), 'SCALAR')

  material = {'name': 'garment', 'doubleSided': True,
              'pbrMetallicRoughness': {'metallicFactor': 0.0, 'roughnessFactor': 1.0}}
  gltf = {'asset': {'version': '2.0', 'generator': 'ngd_jax'}, 'scene': 0,
          'scenes': [{'nodes': [0]}], 'nodes': [{'mesh': 0, 'name': 'garment'}]}
  if texture is not None:
    image_view = builder.view(_png_bytes(texture))
    gltf['images'] = [{'bufferView': image_view, 'mimeType': 'image/png'}]
    gltf['samplers'] = [{'magFilter': 9729, 'minFilter': 9987, 'wrapS': 33071, 'wrapT': 33071}]
    gltf['textures'] = [{'sampler': 0, 'source': 0}]
    material['pbrMetallicRoughness']['baseColorTexture'] = {'index': 0}
  else:
    material['pbrMetallicRoughness']['baseColorFactor'] = [0.8, 0.8, 0.8, 1.0]
  gltf['materials'] = [material]
  gltf['meshes'] = [{
      'name': 'garment',
      'primitives': [{'attributes': attributes, 'indices': indices, 'material': 0, 'mode': 4,
                      'targets': targets}],
      'weights': [1.0] + [0.0] * (num_frames - 1),
      'extras': {'targetNames': [f'frame_{t:06d}' for t in range(num_frames)]}}]
  gltf['animations'] = [{
      'name': 'frames',
      'samplers': [{'input': times, 'output': weights, 'interpolation': 'LINEAR'}],
      'channels': [{'sampler': 0, 'target': {'node': 0, 'path': 'weights'}}]}]
  files.write_bytes(path, builder.glb(gltf))


def write_preview_grid(path: str | os.PathLike, rows: Sequence[np.ndarray]) -> np.ndarray:
  """Host: a PNG of labelled rows (side_by_side outputs, one per frame) stacked; returns the image.

  Rows of different widths are padded with white on the right.
  """
  if not rows:
    raise ValueError('write_preview_grid: no rows.')
  width = max(row.shape[1] for row in rows)
  rows = [np.pad(images.to_uint8(row), ((0, 2), (0, width - row.shape[1]), (0, 0)), constant_values=255)
          for row in rows]
  grid = np.concatenate(rows, axis=0)
  write_png(path, grid)
  return grid


def ffmpeg_available() -> bool:
  """Host: whether imageio-ffmpeg (which ships its own ffmpeg binary) can encode MP4 here."""
  try:
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    return os.path.exists(imageio_ffmpeg.get_ffmpeg_exe())
  except (ImportError, RuntimeError):
    return False


def write_preview_animation(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float,
                            format: str = 'gif') -> None:  # pylint: disable=redefined-builtin
  """Host: an animated GIF (Pillow) or MP4 (H.264 through imageio-ffmpeg) of equally sized frames.

  Args:
    path: destination; its suffix must match the format (.gif or .mp4).
    frames: [H, W, 3] per frame, float in [0, 1] or uint8 (e.g. preview_row outputs).
    fps: frames per second.
    format: 'gif' or 'mp4' (config.export.video_format).
  """
  if format not in ('gif', 'mp4'):
    raise ValueError(f"write_preview_animation: format must be 'gif' or 'mp4', got {format!r}.")
  path = pathlib.Path(path)
  if path.suffix.lower() != f'.{format}':
    raise ValueError(f'write_preview_animation: path {path} does not end in .{format}.')
  if not frames:
    raise ValueError('write_preview_animation: no frames.')
  if not fps > 0:
    raise ValueError(f'write_preview_animation: fps must be positive, got {fps}.')
  if len({np.shape(frame)[:2] for frame in frames}) != 1:
    raise ValueError('write_preview_animation: frames must all have the same size.')
  frames = np.stack([images.to_uint8(frame) for frame in frames])
  if format == 'mp4':
    if not ffmpeg_available():
      raise RuntimeError('MP4 previews need imageio-ffmpeg (`pip install imageio-ffmpeg==0.8.1`, '
                         'which ships an ffmpeg binary); or set '
                         "config.export.video_format = 'gif'.")
    # H.264 in yuv420p needs even sides: pad with white.
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    with files.atomic_path(path) as tmp:
      iio.imwrite(tmp, frames, plugin='FFMPEG', fps=fps, codec='libx264', macro_block_size=2)
  else:
    with files.atomic_path(path) as tmp:
      iio.imwrite(tmp, frames, plugin='pillow', extension='.gif', duration=1000.0 / fps, loop=0)


def export_run(config, workdir: str) -> None:
  """--mode=export: posed and canonical meshes, texture, animated glb and previews of a trained run.

  Writes under workdir: meshes/posed/<frame>.obj, meshes/canonical.obj, garment_textured.obj
  (+ .mtl, texture.png), garment.glb, previews/grid.png and previews/preview.<gif|mp4>.
  """
  trained = restore.load_trained(config, workdir)
  run, bank = trained.run, trained.run.bank
  seq = run.inputs.sequence
  out = pathlib.Path(workdir)
  names = [seq.frames[int(i)] for i in bank.indices]
  for t, name in enumerate(names):
    write_obj(out / 'meshes' / 'posed' / f'{name}.obj', trained.posed[t], trained.faces)
  canonical, faces = run_lib.canonical_mesh(run, trained.geometry)
  write_obj(out / 'meshes' / 'canonical.obj', canonical, faces)
  appearance = trained.appearance
  texture = uvs = uv_faces = None
  if appearance is not None:
    texture = np.clip(np.asarray(appearance.params['static']), 0.0, 1.0)
    uvs, uv_faces = np.asarray(appearance.uvs), np.asarray(appearance.uv_faces)
    write_textured_obj(out / 'garment_textured.obj', canonical, faces, uvs, uv_faces, texture)
  write_animated_glb(out / 'garment.glb', trained.posed, trained.faces, seq.fps, uvs, uv_faces, texture)
  rows = [views.preview_frame(trained, t) for t in range(bank.num_frames)]
  chosen = views.preview_indices(bank.num_frames, config.export.preview_frames)
  write_preview_grid(out / 'previews' / 'grid.png',
                     [images.side_by_side(*views.frame_panels(trained, t, rows[t], names[t])) for t in chosen])
  write_preview_animation(out / 'previews' / f'preview.{config.export.video_format}',
                          [images.preview_row(*row) for row in rows], seq.fps, config.export.video_format)
  logging.info('Exported %d frames to %s', bank.num_frames, out)
