"""How much of the texture's error is the cloth sliding over the fitted surface (issue 19, item 3).

On a finished run (its frozen geometry and atlas), one training frame's garment pixels are read onto the
atlas alone (appearance/projection.py's splat) and drawn back into another training frame through that
frame's own atlas coordinates. The PSNR is taken over the pixels the garment covers, inside the eroded
mask, whose texels the first frame saw. A gap of 0 frames measures what the atlas and the bilinear
lookup lose; as the gap grows, what the cloth's sliding over the fitted surface adds (the same point of
the surface shows other cloth). Next to it, on the same pixels of each frame: the texture read off all
frames (where the appearance phase starts) and the trained texture (static + dynamic). Where the sequence's
true cloth is tracked (a simulator's), the same read-back on the true cloth (its own atlas, its own coverage):
what a surface that follows the cloth would keep, the light changing over the cloth from frame to frame
included.

    .venv/bin/python benchmarks/bench_texture_sliding.py --workdir=runs/bench_quality/long_skirt/ngd
"""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app
from absl import flags

from ngd_jax import appearance_phase
from ngd_jax import evaluate
from ngd_jax import restore
from ngd_jax.appearance import projection
from ngd_jax.appearance import texture as texture_lib
from ngd_jax.render import sampling

_WORKDIR = flags.DEFINE_string('workdir', None, 'A finished run (appearance phase done).', required=True)
_GAPS = flags.DEFINE_list('gaps', ['0', '1', '2', '4', '8'], 'Frame gaps between the read and the drawn frame.')


@functools.partial(jax.jit, static_argnames='size')
def read_back(uv_read, weight_read, rgb_read, uv_drawn, size: int):
  """The colour frame `read` shows at each pixel of frame `drawn` [H, W, 3], and how much of it the read
  frame saw there [H, W] (the bilinear lookup of the splatted weights: normalised convolution, so texels
  the read frame did not see do not darken the colour)."""
  colour_sum, weight_sum = projection.splat(uv_read, weight_read, rgb_read, jnp.zeros((size, size, 3)),
                                            jnp.zeros((size, size)))
  colour = sampling.bilinear_sample(colour_sum, uv_drawn)
  weight = sampling.bilinear_sample(weight_sum[..., None], uv_drawn)[..., 0]
  return colour / jnp.maximum(weight, 1e-6)[..., None], weight


def masked_psnr(pred: np.ndarray, target: np.ndarray, where: np.ndarray) -> float:
  return float(-10.0 * np.log10(np.mean((pred[where] - target[where]) ** 2)))


def read_back_psnr(uv: np.ndarray, weight: np.ndarray, garment: np.ndarray, rgb: np.ndarray, gap: int,
                   size: int) -> list[float]:
  """PSNR of every pair (frame s read, frame s + gap drawn) over the drawn frame's garment pixels that s saw."""
  values = []
  for read in range(uv.shape[0] - gap):
    drawn = read + gap
    colour, seen = read_back(uv[read], weight[read], rgb[read], uv[drawn], size=size)
    where = garment[drawn] & (np.asarray(seen) > 0.5)
    if where.sum() >= 100:
      values.append(masked_psnr(np.asarray(colour), rgb[drawn], where))
  return values


def surface_psnr(uv: np.ndarray, coverage: np.ndarray, mask: np.ndarray, rgb: np.ndarray, gaps: list[int],
                 size: int) -> tuple[dict[int, list[float]], list[float]]:
  """On one surface (its atlas coordinates uv [T, H, W, 2] and coverage [T, H, W] in each training view): the
  read-back PSNRs per gap, and each frame's PSNR under the texture read off all frames, over the pixels the
  surface covers inside the eroded garment mask."""
  weight = coverage * mask
  garment = (coverage > 0.5) & (mask > 0.5)
  by_gap = {gap: read_back_psnr(uv, weight, garment, rgb, gap, size) for gap in gaps}
  texture = jnp.asarray(projection.texture_from_frames(uv, weight, rgb, size))
  all_frames = [masked_psnr(np.asarray(sampling.bilinear_sample(texture, uv[t])), rgb[t], garment[t])
                for t in range(uv.shape[0])]
  return by_gap, all_frames


def cell(values: list[float]) -> str:
  """Median (10th-90th percentile, count) of a table cell."""
  if not values:
    return 'no pair shares 100 pixels'
  return f'{np.median(values):.2f} ({np.percentile(values, 10):.2f}-{np.percentile(values, 90):.2f}, {len(values)})'


def true_cloth_uv(trained: restore.Trained, config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray] | None:
  """The true cloth's atlas coordinates [T, H, W, 2] and coverage [T, H, W] in each training view, where the
  sequence's true meshes share one vertex order (a simulator's cloth: each point of the atlas stays on one
  point of the cloth); None otherwise."""
  run = trained.run
  meshes = [run.inputs.sequence.gt_mesh(int(index)) for index in run.bank.indices]
  if not evaluate.tracked_cloth(meshes, len(meshes)):
    return None
  faces = np.asarray(meshes[0].faces, np.int32)
  uvs, uv_faces = appearance_phase.atlas(np.asarray(meshes[0].vertices), faces)
  seen = [appearance_phase.rasterize_uv(jnp.asarray(mesh.vertices, jnp.float32), jnp.asarray(faces), jnp.asarray(uvs),
                                        jnp.asarray(uv_faces), jnp.asarray(run.bank.world_to_clip[t]),
                                        run.bank.resolution, config.render.backend) for t, mesh in enumerate(meshes)]
  return np.stack([np.asarray(image.uv) for image in seen]), np.stack([np.asarray(image.coverage) for image in seen])


def main(argv):
  del argv
  workdir = pathlib.Path(_WORKDIR.value)
  config = ml_collections.ConfigDict(json.loads((workdir / 'config.json').read_text()))
  trained = restore.load_trained(config, str(workdir))
  if trained.appearance is None:
    raise app.UsageError(f'{workdir}: the appearance phase has not run; train it first (--mode=train).')
  frames = appearance_phase.appearance_frames(trained.run, trained.geometry, trained.appearance)
  uv, coverage = np.asarray(frames.uv), np.asarray(frames.coverage)
  rgb, mask = np.asarray(frames.rgb, np.float32) / 255.0, np.asarray(frames.mask)
  size = config.appearance.texture_size
  gaps = [int(g) for g in _GAPS.value]
  fitted, fitted_all = surface_psnr(uv, coverage, mask, rgb, gaps, size)
  truth = true_cloth_uv(trained, config)
  true_rows, true_all = surface_psnr(*truth, mask, rgb, gaps, size) if truth is not None else (None, None)
  module = texture_lib.dynamic_texture_from_config(config.appearance)
  garment = (coverage > 0.5) & (mask > 0.5)
  final = [masked_psnr(np.asarray(appearance_phase.shade(module, trained.appearance.params, frames.uv[t],
                                                         frames.code[t], 1.0, frames.pixels[t])), rgb[t], garment[t])
           for t in range(uv.shape[0])]
  print(f'{workdir}: PSNR (dB) over the garment pixels of the training view, median over frames or frame pairs '
        '(10th-90th percentile, count; a pair counts where at least 100 pixels were seen by both frames)\n')
  print('| texture | on the fitted surface | on the true cloth |\n|---|---|---|')
  for gap in gaps:
    true_cell = cell(true_rows[gap]) if truth is not None else '-'
    print(f'| one frame read, drawn {gap} frame{"" if gap == 1 else "s"} later | {cell(fitted[gap])} | {true_cell} |')
  print(f'| all frames read (where the appearance phase starts) | {cell(fitted_all)} | '
        f'{cell(true_all) if truth is not None else "-"} |')
  print(f'| trained (static + dynamic) | {cell(final)} | |')


if __name__ == '__main__':
  app.run(main)
