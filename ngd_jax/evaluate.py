"""Host: restore a run and measure it against the sequence's ground truth (docs/method.md section 8).

Geometry: per training frame, the posed garment against gt/garment/<frame>.ply (Chamfer x 10^3 in
the paper's convention, plain Chamfer in mm, normal consistency). Appearance: the textured
garment rendered from each held-out camera against gt/views/<name>/ (PSNR, SSIM, LPIPS), both
images masked to the garment (prediction by its coverage, target by the view's mask) and compared
over the whole frame; the same from the training camera against the training frame (train_view_*:
how well the video is explained, the one measure a clip without ground truth has). Each camera's
error is also split in two: silhouette_iou (the geometry as that camera sees it) and covered_psnr (the
texture, over the pixels both the render and the mask hold). The LBS-only baseline (the template
skinned, no deformation, a flat mean garment colour) is measured the same way for reference.

Means alone hide a collapse in part of the sequence, so metrics.json also holds each method's means
per third of the frames and the worst frame's Chamfer ratio to the baseline, and TensorBoard gets
the per-frame Chamfer curves and, for a few frames, the export's pictures (held-out views, side
view over the ground truth) at the restored checkpoint's step.
"""

import logging
import math
import os
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import ml_collections
import numpy as np

from ngd_jax import appearance_phase
from ngd_jax import data
from ngd_jax import files
from ngd_jax import frames as frames_lib
from ngd_jax import images
from ngd_jax import metrics
from ngd_jax import render
from ngd_jax import reporting
from ngd_jax import restore
from ngd_jax import views

# Surface samples per mesh and frame for inside_body_pct: a share, known to ~0.4 % at 2,000 (the winding number
# costs ~25 ms per 1,000 points against a 27k-face body).
INSIDE_BODY_SAMPLES = 2000
# TensorBoard tags of the evaluation: the per-frame Chamfer curves (one per method, step = the
# sequence frame index) and the pictures of a frame (step = the restored checkpoint's step).
CHAMFER_CURVE_PREFIX = 'eval/chamfer_sq_x1e3_per_frame'
PICTURE_PREFIX = 'eval/views'


def mean_garment_colour(bank: frames_lib.FrameBank) -> np.ndarray:
  weights = bank.mask[..., None].astype(np.float64)
  return (np.sum(bank.rgb * weights, axis=(0, 1, 2)) / 255.0 / max(weights.sum(), 1.0)).astype(np.float32)


def image_metrics(pred: np.ndarray, target: np.ndarray, use_lpips: bool, drawn: np.ndarray,
                  mask: np.ndarray) -> dict[str, float]:
  """Whole-image PSNR / SSIM (/ LPIPS) of a render against the garment-masked photo, and what splits their
  error in two: silhouette_iou (the pixels the render draws, `drawn` [H, W], against the garment mask: the
  geometry as the camera sees it) and covered_psnr (PSNR over the pixels both hold: the texture where the
  geometry is right; NaN where they share none)."""
  out = {'psnr': float(metrics.psnr(jnp.asarray(pred), jnp.asarray(target))),
         'ssim': float(metrics.ssim(jnp.asarray(pred), jnp.asarray(target)))}
  if use_lpips:
    out['lpips'] = float(metrics.lpips(jnp.asarray(pred), jnp.asarray(target)))
  drawn, garment = np.asarray(drawn) > 0.5, np.asarray(mask) > 0.5
  both = drawn & garment
  out['silhouette_iou'] = float(both.sum() / max((drawn | garment).sum(), 1))
  out['covered_psnr'] = float(metrics.psnr(jnp.asarray(pred), jnp.asarray(target), both)) if both.any() else math.nan
  return out


def missing_ground_truth(seq: data.Sequence) -> str | None:
  """Host: one line saying which ground truth the sequence lacks and what is measured instead (None: has both)."""
  missing = [what for what, absent in (('gt/garment meshes (Chamfer, normal consistency)', not seq.gt_frames),
                                       ('held-out views (gt/views image metrics)', not seq.eval_cameras)) if absent]
  if not missing:
    return None
  return (f'{seq.path}: no {" and no ".join(missing)}; reporting the training-view image metrics (train_view_psnr, '
          'train_view_ssim, train_view_lpips) and what else it has.')


def _camera_metrics(trained: restore.Trained, t: int, baseline: np.ndarray, colour: np.ndarray,
                    world_to_clip: np.ndarray, photo: np.ndarray, mask: np.ndarray
                    ) -> tuple[dict[str, float] | None, dict[str, float]]:
  """Host: image metrics of frame t seen by one camera (photo float [H, W, 3], garment mask [H, W]; the target
  is the garment-masked photo): the textured reconstruction (None before the appearance phase) and the LBS
  baseline's flat colour."""
  run, config = trained.run, trained.run.config
  size = mask.shape
  target = photo * mask[..., None]
  occluder = views.body_in_front(trained, t, world_to_clip, size)
  world_to_clip = jnp.asarray(world_to_clip)
  reconstruction = None
  if trained.appearance is not None:
    pred, drawn = appearance_phase.render_textured(config, trained.appearance, jnp.asarray(trained.posed[t]),
                                                   jnp.asarray(trained.faces), world_to_clip,
                                                   jnp.asarray(run.bank.pose[t]), size, occluder)
    reconstruction = image_metrics(pred, target, config.eval.lpips, drawn, mask)
  flat = render.render_colors(jnp.asarray(baseline[t]), jnp.asarray(run.inputs.template_faces),
                              jnp.broadcast_to(jnp.asarray(colour), baseline[t].shape), world_to_clip, size,
                              backend=config.render.backend)
  flat_rgb, flat_drawn = np.asarray(flat.rgb), np.asarray(flat.rast[..., 3]) > 0
  if occluder is not None:
    in_front = np.asarray(flat.rast[..., 2]) < occluder
    flat_rgb, flat_drawn = flat_rgb * in_front[..., None], flat_drawn & in_front
  return reconstruction, image_metrics(flat_rgb, target, config.eval.lpips, flat_drawn, mask)


def tracked_cloth(gt_meshes: Sequence[Any], num_frames: int) -> bool:
  """Whether every evaluated frame has a true mesh and all share one vertex order (a simulator's cloth, not
  per-frame scans): then metrics.surface_drift_mm measures how the garment's points slide over time."""
  return (len(gt_meshes) == num_frames > 1
          and all(len(m.vertices) == len(gt_meshes[0].vertices) and np.array_equal(m.faces, gt_meshes[0].faces)
                  for m in gt_meshes))


def evaluate_trained(trained: restore.Trained) -> dict[str, Any]:
  """Per-frame and mean metrics of the reconstruction and the LBS-only baseline; the training view's image
  metrics also as top-level train_view_* keys (benchmarks/bench_quality.py reads them)."""
  run, config = trained.run, trained.run.config
  seq, bank = run.inputs.sequence, run.bank
  note = missing_ground_truth(seq)
  if note:
    logging.warning(note)
  baseline = run.template_skinned()
  colour = mean_garment_colour(bank)
  num_frames = bank.num_frames if config.eval.max_frames < 0 else min(bank.num_frames, config.eval.max_frames)
  bodies = np.asarray(frames_lib.posed_body(seq.body, bank.indices[:num_frames]))  # [T, Vb, 3]
  per_frame, gt_meshes = [], []
  for t in range(num_frames):
    index = int(bank.indices[t])
    name = seq.frames[index]
    entry = {'frame': name, 'reconstruction': {}, 'lbs_baseline': {}}
    gt = seq.gt_mesh(index) if name in seq.gt_frames else None
    for key, (vertices, faces) in (('reconstruction', (trained.posed[t], trained.faces)),
                                   ('lbs_baseline', (baseline[t], run.inputs.template_faces))):
      entry[key]['inside_body_pct'] = metrics.inside_body_pct(vertices, faces, bodies[t], seq.body.faces,
                                                              INSIDE_BODY_SAMPLES, seed=t)
      if gt is not None:
        result = metrics.chamfer((vertices, faces), gt, config.eval.chamfer_samples, seed=t)
        entry[key].update(chamfer_sq_x1e3=float(result.chamfer_sq_x1e3), chamfer_mm=float(result.chamfer_mm),
                          normal_consistency=float(result.normal_consistency))
    if gt is not None:
      gt_meshes.append(gt)
      entry['ground_truth_inside_body_pct'] = metrics.inside_body_pct(
          *metrics.mesh_arrays(gt, 'ground truth'), bodies[t], seq.body.faces, INSIDE_BODY_SAMPLES, seed=t)
    for view_name in sorted(seq.eval_cameras):
      view = seq.eval_view(view_name, index, config.data.resolution)
      world_to_clip = frames_lib.clip_matrix(view.camera, view.mask.shape, config.render)
      measured = _camera_metrics(trained, t, baseline, colour, world_to_clip, view.rgb, view.mask)
      for key, values in zip(('reconstruction', 'lbs_baseline'), measured):
        if values is not None:
          entry[key].setdefault('views', {})[view_name] = values
    for key in ('reconstruction', 'lbs_baseline'):
      views = entry[key].get('views')
      if views:
        for metric in next(iter(views.values())):
          entry[key][metric] = float(np.mean([v[metric] for v in views.values()]))
    measured = _camera_metrics(trained, t, baseline, colour, bank.world_to_clip[t], bank.rgb[t] / np.float32(255.0),
                               bank.mask[t].astype(np.float32))
    for key, values in zip(('reconstruction', 'lbs_baseline'), measured):
      entry[key].update({f'train_view_{metric}': value for metric, value in (values or {}).items()})
    per_frame.append(entry)
  if tracked_cloth(gt_meshes, num_frames):
    gt_vertices = np.stack([np.asarray(mesh.vertices) for mesh in gt_meshes])
    for key, posed in (('reconstruction', trained.posed), ('lbs_baseline', baseline)):
      for entry, drift in zip(per_frame, metrics.surface_drift_mm(posed[:num_frames], gt_vertices, gt_meshes[0].faces)):
        entry[key]['drift_mm'] = float(drift)
  summary = {method: dict(metrics.method_means(per_frame, method), thirds=metrics.sequence_thirds(per_frame, method))
             for method in metrics.TABLE_METHODS}
  truth_inside = [entry['ground_truth_inside_body_pct'] for entry in per_frame
                  if 'ground_truth_inside_body_pct' in entry]
  return {
      **summary,
      **{f'train_view_{metric}': summary['reconstruction'].get(f'train_view_{metric}')
         for metric in ('psnr', 'ssim', 'lpips', 'covered_psnr', 'silhouette_iou')},
      'worst_chamfer_ratio': metrics.worst_chamfer_ratio(per_frame),
      # The true cloth's share inside the body: what the reconstruction's inside_body_pct is to be read against.
      'ground_truth_inside_body_pct': float(np.mean(truth_inside)) if truth_inside else None,
      'per_frame': per_frame,
      'frames': num_frames,
      'train_wall_seconds': float(trained.geometry.meta.get('wall_seconds', 0.0)),
      'faces': int(trained.faces.shape[0]),
      'vertices': int(trained.posed.shape[1]),
  }


def frame_pictures(trained: restore.Trained, num_frames: int) -> dict[str, np.ndarray]:
  """Host: the export's preview rows (views.frame_panels) of config.export.preview_frames frames
  spread over the first num_frames, by frame name: uint8 [H, W, 3] each."""
  run = trained.run
  names = [run.inputs.sequence.frames[int(index)] for index in run.bank.indices]
  return {names[t]: images.side_by_side(*views.frame_panels(trained, t, views.preview_frame(trained, t), names[t]))
          for t in views.preview_indices(num_frames, run.config.export.preview_frames)}


def log_to_tensorboard(reporter: reporting.Reporter, result: Mapping[str, Any], frame_indices: Sequence[int],
                       step: int, pictures: Mapping[str, np.ndarray]) -> None:
  """Host: the per-frame Chamfer curves of result['per_frame'] (frame_indices: its sequence frame
  indices, the curves' steps) and `pictures` (by frame name) at `step`, to TensorBoard."""
  for index, entry in zip(frame_indices, result['per_frame'], strict=True):
    values = {method: entry[method]['chamfer_sq_x1e3'] for method in metrics.TABLE_METHODS
              if 'chamfer_sq_x1e3' in entry[method]}
    if values:  # Frames without a ground-truth mesh have no Chamfer.
      reporter.scalars(int(index), values, CHAMFER_CURVE_PREFIX)
  for name, picture in pictures.items():
    reporter.image(step, f'{PICTURE_PREFIX}/{name}', picture)


def evaluate_run(config: ml_collections.ConfigDict, workdir: str,
                 trained: restore.Trained | None = None) -> dict[str, Any]:
  """Measures `trained` (the end of training passes the run it has) or, for --mode=eval, the workdir's
  restored checkpoint; writes workdir/metrics.json and TensorBoard, prints the table."""
  trained = restore.load_trained(config, workdir) if trained is None else trained
  result = evaluate_trained(trained)
  files.write_json(os.path.join(workdir, 'metrics.json'), result)
  reporter = reporting.Reporter(os.path.join(workdir, 'tensorboard'))
  try:
    log_to_tensorboard(reporter, result, trained.run.bank.indices[: result['frames']], trained.step,
           frame_pictures(trained, result['frames']))
  finally:
    reporter.close()
  table = metrics.format_table(result)
  logging.info('Metrics (%d frames):\n%s', result['frames'], table)
  print(table, flush=True)
  return result
