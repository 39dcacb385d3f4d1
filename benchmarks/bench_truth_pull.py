"""How hard each image term pushes the ground-truth garment away from itself (issue 19).

    python benchmarks/bench_truth_pull.py --sequence=DIR [--resolution=160] [--frames=8]
        [--offset_mm=5] [--set loss.depth_space=ndc ...]

A term whose optimum is the truth has zero gradient there. For each of the first --frames training
frames, the true posed garment (gt/garment/<frame>.ply) is rendered exactly as the step renders the
reconstruction, and the gradient of every image term (huber, ssim, mask, depth) with respect to its
vertices is measured: its RMS over vertices, split into the camera's depth axis and the image
plane. As a scale, the same gradient is measured on the truth pushed --offset_mm along its normals:
the render terms' answer to a known error. A term whose pull at the truth is of the order of its
answer to a few millimetres of error moves the fit by that much. Prints a markdown table (medians
over the frames).
"""

import pathlib
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import demo  # pylint: disable=g-import-not-at-top,wrong-import-position
from ngd_jax import losses  # pylint: disable=wrong-import-position
from ngd_jax import meshes  # pylint: disable=wrong-import-position
from ngd_jax import padding  # pylint: disable=wrong-import-position
from ngd_jax import pipeline  # pylint: disable=wrong-import-position
from ngd_jax import run as run_lib  # pylint: disable=wrong-import-position
from ngd_jax import train  # pylint: disable=wrong-import-position

_SEQUENCE = flags.DEFINE_string('sequence', None, 'Sequence folder with gt/garment meshes.', required=True)
_RESOLUTION = flags.DEFINE_integer('resolution', 160, 'Training resolution (longer side).')
_FRAMES = flags.DEFINE_integer('frames', 8, 'Frames measured (the first ones).')
_OFFSET_MM = flags.DEFINE_float('offset_mm', 5.0, 'Normal offset of the reference error (mm).')
_SET = flags.DEFINE_multi_string('set', [], 'Config overrides section.name=value, e.g. loss.depth_margin=0.')

TERMS = ('huber', 'ssim', 'mask', 'depth')


def config_for(sequence: str, resolution: int, overrides: list[str]):
  config = demo.get_config()
  config.data.path = sequence
  config.data.resolution = resolution
  for item in overrides:
    key, value = item.split('=', 1)
    section, name = key.split('.')
    current = config[section][name]
    config[section][name] = type(current)(value) if not isinstance(current, bool) else value.lower() == 'true'
  return config


def term_gradients(run: run_lib.Run, t: int, vertices: np.ndarray, faces: np.ndarray, key: jax.Array) -> dict:
  """Gradient of each image term w.r.t. the posed vertices of frame t, float64 [V, 3] per term."""
  mesh = run.mesh_for(vertices.astype(np.float64), faces)
  capacity = mesh.operators.rest_vertices.shape[0]
  posed = jnp.asarray(padding.pad_vertex_rows(vertices.astype(np.float32), capacity))
  frame = pipeline.frame_inputs(run.bank, t, np.zeros((run.config.geometry.pose_components,), np.float32))
  images = train.frame_images(run.training_frames(), jnp.int32(t))
  loss = train.LossSettings.from_config(run.config.loss)
  pairs = losses.sample_depth_pairs(key, images.mask, loss.depth_pairs, loss.depth_box, loss.depth_pairs_in_mask)

  def term(name):
    def value(points):
      out = run.model.render(mesh, points, frame)
      terms = train.image_terms(out, jnp.zeros_like(images.target), images, pairs, loss, use_depth=True)
      return terms[name]
    return value

  return {name: np.asarray(jax.grad(term(name))(posed))[: len(vertices)] for name in TERMS}


def split(gradient: np.ndarray, world_to_camera: np.ndarray) -> tuple[float, float]:
  """RMS over vertices of the gradient's component along the camera's depth axis and in the image plane."""
  camera = gradient @ world_to_camera[:3, :3].T
  return float(np.sqrt(np.mean(camera[:, 2] ** 2))), float(np.sqrt(np.mean(np.sum(camera[:, :2] ** 2, -1))))


def main(argv):
  del argv
  config = config_for(_SEQUENCE.value, _RESOLUTION.value, _SET.value)
  run = run_lib.Run(config, pipeline.load_inputs(config))
  seq = run.inputs.sequence
  rows = {name: [] for name in TERMS}
  for t in range(min(_FRAMES.value, run.bank.num_frames)):
    gt = seq.gt_mesh(int(run.bank.indices[t]))
    vertices, faces = np.asarray(gt.vertices, np.float64), np.asarray(gt.faces, np.int32)
    offset = vertices + 1e-3 * _OFFSET_MM.value * meshes.vertex_normals(vertices, faces)
    key = jax.random.PRNGKey(t)
    at_truth = term_gradients(run, t, vertices, faces, key)
    off_truth = term_gradients(run, t, offset, faces, key)
    for name in TERMS:
      rows[name].append(split(at_truth[name], run.bank.world_to_camera[t])
                        + split(off_truth[name], run.bank.world_to_camera[t]))
  print(f'{_SEQUENCE.value}: {len(rows["huber"])} frames at {run.bank.resolution}, overrides {_SET.value or "none"}')
  print('| term | at truth: depth axis | at truth: image plane | '
        f'{_OFFSET_MM.value:g} mm off: depth axis | {_OFFSET_MM.value:g} mm off: image plane |')
  print('|---|---|---|---|---|')
  for name in TERMS:
    median = np.median(np.asarray(rows[name]), axis=0)
    print(f'| {name} | ' + ' | '.join(f'{value:.3g}' for value in median) + ' |')


if __name__ == '__main__':
  app.run(main)
