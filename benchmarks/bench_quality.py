"""Quality benchmark (issue 11): the reconstruction against baselines and the paper's ablations, on
generated sequences none of which is the demo, per case and per third of each sequence.

    python benchmarks/bench_quality.py [--out=runs/bench_quality] [--cases=long_skirt,...]
        [--variants=ngd,...] [--epochs=40] [--seed=0]

Cases (ngd_jax.data.synthetic presets and DERIVED sequences, generated into the cache on first use,
24 frames at 160x160, three held-out cameras), each started from a template that is not the true rest
shape unless said:
  long_skirt    a long skirt on a body walking and turning; a straight tube template, 0.7 of the
                skirt's length and wider than its waist;
  flared_skirt  a short, strongly flared skirt on a twirling body; a straight tube, 0.8 long;
  dress_walk    a strapless dress on a walking body; a cone 0.85 of the dress's length;
  tshirt_arms   a T-shirt on a body swinging its arms; a loose offset surface of the torso;
  skater_above  a skater skirt on a twirling body seen from above at 3/4 (elevation 32 degrees,
                azimuth 40); a straight tube, 0.8 long;
  long_template a skirt on a body walking and turning; a straight tube 1.4 times LONGER than it;
  long_estimated   long_skirt with inputs as estimators give them (ngd_jax.data.degrade): normals
                blurred (3 px at 384^2) and tilted by a smooth field up to 12 degrees, masks grown or
                shrunk by 1 px per frame, no depth;
  long_estimated_depth long_skirt with depth as a monocular estimator gives it (ngd_jax.data.degrade
                .estimator_depth): relative per frame, bent by a power 0.7-1.4, a smooth error up to 5 %
                of its range, blurred 3 px at 384^2;
  long_tracked  long_skirt with body.npz as a tracker gives it (2 + 1 degrees per joint, 2 degrees
                global, 1.5 cm mostly in depth); pictures and truth exact;
  long_first_frame long_skirt from its own first-frame garment unposed (the paper's setting), skinned
                by the paper's rule (skinning.contact_distance=-1), under which that template is exact.
Variants (each a full run: geometry, appearance, evaluation):
  ngd           the method with the project's defaults (configs/default.py) at this size;
  displacement  per-vertex offsets instead of Jacobian fields (geometry.parameterization);
  no_remesh     the paper's ablation without adaptive remeshing;
  normals       the paper's ablation supervising normal maps instead of diffuse images;
  body_template ngd from the project's body-built template (template.source='body');
  before_issue19 (only when asked for) ngd with issue 19's departures undone: hands-only occluder, depth
                margin 0.1 and every pair, nearest-body skinning, T^S starting at 0.2, no dense depth term;
  silhouette_x3 (only when asked for) ngd with loss.mask_weight 1.2 instead of 0.4;
  shading_image (only when asked for) ngd with loss.shading_region 'image': drawing off the mask costs shading too;
  no_depth_correlation (only when asked for) ngd without the dense depth term (loss.depth_correlation_weight 0);
  depth_correlation_low, depth_correlation_high (only when asked for) its weight at 0.25 and 1.0 instead of 0.5;
  photometric, photometric_low (only when asked for) ngd with the photometric term (loss.photometric_weight 3,
                and 1);
  paper         (only when asked for) the paper's settings: those, and the centroid anchor, no priors,
                J^S rate 1.5e-3.
Every evaluation also measures the LBS-only baseline: its own template skinned, no deformation.

'drift mm' is metrics.surface_drift_mm: how far the garment's points slide along the true cloth from
frame 0 (the texture, fixed on the template, smears by as much).

Writes OUT/<case>/<variant>/ (a normal workdir: metrics.json, previews after --export), and
OUT/results.json and OUT/results.md, the table benchmarks/README.md shows. A finished
(case, variant) is not run again, so an interrupted benchmark continues where it stopped.
"""

import json
import pathlib
import sys
import time

from absl import app
from absl import flags
import ml_collections

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import demo  # pylint: disable=g-import-not-at-top,wrong-import-position
from ngd_jax import export  # pylint: disable=wrong-import-position
from ngd_jax import files  # pylint: disable=wrong-import-position
from ngd_jax import train  # pylint: disable=wrong-import-position
from ngd_jax.data import synthetic  # pylint: disable=wrong-import-position

CASES = ('long_skirt', 'flared_skirt', 'dress_walk', 'tshirt_arms', 'skater_above', 'long_template',
         'long_estimated', 'long_estimated_depth', 'long_tracked', 'long_first_frame')
# Where the paper's claim against displacements applies.
LOOSE = ('long_skirt', 'flared_skirt', 'dress_walk', 'skater_above', 'long_template', 'long_estimated',
         'long_estimated_depth', 'long_tracked', 'long_first_frame')
# Issue 19's targets: Chamfer per third at most this share of LBS's (EXACT_TEMPLATE: the template is
# the garment), training-view PSNR at least TRAIN_PSNR dB, held-out PSNR HELD_OUT_GAIN dB above LBS's.
CHAMFER_RATIO, EXACT_TEMPLATE_RATIO, EXACT_TEMPLATE = 0.6, 0.3, ('long_first_frame',)
TRAIN_PSNR, HELD_OUT_GAIN = 30.0, 2.0
# The first-frame template is exact under the paper's skinning rule (ngd_jax.data.degrade.unposed),
# so that case skins by it: the LBS-only baseline is then the truth at frame 0.
CASE_OVERRIDES = {'long_first_frame': {'skinning.contact_distance': -1.0}}
BEFORE_ISSUE19 = {'data.body_occlusion': False, 'loss.depth_margin': 0.1, 'loss.depth_min_gap': 0.0,
                  'skinning.contact_distance': -1.0, 'appearance.texture_from_frames': False,
                  'loss.depth_correlation_weight': 0.0, 'loss.posed_penetration_weight': 0.0}
VARIANTS = {
    'ngd': {},
    'displacement': {'geometry.parameterization': 'displacement'},
    'no_remesh': {'remesh.enabled': False},
    'normals': {'loss.supervision': 'normals'},
    'body_template': {'template.source': 'body'},
    # Not run by default: issue 19's departures undone (the hands alone as occluder, the paper's depth margin
    # and every depth pair, nearest-body skinning, T^S from 0.2, no dense depth, no posed penetration), and the
    # paper's settings (also the vertex-centroid anchor, no priors, its J^S rate).
    'before_issue19': BEFORE_ISSUE19,
    # Not run by default: three times the paper's silhouette share (benchmarks/README.md, "Silhouette weight").
    'silhouette_x3': {'loss.mask_weight': 1.2},
    # Not run by default: shading compared over the whole image, not only the mask (losses.render_loss).
    'shading_image': {'loss.shading_region': 'image'},
    # Not run by default: without the dense depth term (losses.depth_correlation_loss).
    'no_depth_correlation': {'loss.depth_correlation_weight': 0.0},
    'depth_correlation_low': {'loss.depth_correlation_weight': 0.25},  # Half and twice the default: its sensitivity.
    'depth_correlation_high': {'loss.depth_correlation_weight': 1.0},
    # Not run by default: without the posed garment's penetration term (losses.posed_penetration_loss).
    'no_posed_penetration': {'loss.posed_penetration_weight': 0.0},
    'posed_penetration_low': {'loss.posed_penetration_weight': 100.0},  # A tenth of the default: its sensitivity.
    # Not run by default: with the photometric term (a template point held to one point of the cloth).
    'photometric': {'loss.photometric_weight': 3.0},
    'photometric_low': {'loss.photometric_weight': 1.0},  # A third of it: its sensitivity.
    'paper': {**BEFORE_ISSUE19, 'geometry.anchor': 'centroid', 'loss.smoothness_weight': 0.0,
              'loss.penetration_weight': 0.0, 'train.static_lr': 1.5e-3},
}
DEFAULT_VARIANTS = ('ngd', 'displacement', 'no_remesh', 'normals', 'body_template')
METRICS = ('chamfer_sq_x1e3', 'chamfer_mm', 'normal_consistency', 'drift_mm', 'inside_body_pct')
# Decimals in the table (3 for the others).
DIGITS = {'chamfer_sq_x1e3': 2, 'chamfer_mm': 2, 'drift_mm': 1, 'inside_body_pct': 1}
HELD_OUT = ('psnr', 'ssim', 'lpips')  # Means over the held-out views.

_OUT = flags.DEFINE_string('out', 'runs/bench_quality', 'Folder of the runs and the result tables.')
_CASES = flags.DEFINE_list('cases', list(CASES), f'Cases, among {CASES}.')
_VARIANTS = flags.DEFINE_list('variants', list(DEFAULT_VARIANTS), f'Variants, among {tuple(VARIANTS)}.')
_EPOCHS = flags.DEFINE_integer('epochs', 40, 'Geometry epochs (24 frames each); remeshing at half of them.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the generated sequences and of training.')
_EXPORT = flags.DEFINE_bool('export', True, 'Also export each run (previews with held-out and side views).')


def bench_config(case: str, variant: str, epochs: int, seed: int) -> ml_collections.ConfigDict:
  """The demo's CPU sizes at 160x160, `epochs` geometry epochs, with the variant's overrides."""
  config = demo.get_config()
  config.seed = seed
  config.data.path = str(synthetic.ensure_sequence(case, seed=seed))
  config.data.resolution = 160
  config.train.num_epochs = epochs  # configs/demo.py's static_lr (5e-3) suits this many steps.
  config.train.warmup_epochs = max(1, epochs // 5)
  config.remesh.epochs = (epochs // 2,)
  config.remesh.blend_epochs = 3
  config.appearance.num_epochs = 6
  config.appearance.dynamic_start_epoch = 2
  config.train.checkpoint_every_steps = 10 * epochs * 24  # Only the phase ends (a finished run is not redone).
  config.export.preview_frames = 4
  for key, value in {**CASE_OVERRIDES.get(case, {}), **VARIANTS[variant]}.items():
    section, name = key.split('.')
    config[section][name] = value
  return config


def run_one(case: str, variant: str, out: pathlib.Path) -> dict:
  """Trains, evaluates (and exports) one (case, variant) unless its metrics.json exists."""
  workdir = out / case / variant
  metrics_path = workdir / 'metrics.json'
  if not metrics_path.exists():
    config = bench_config(case, variant, _EPOCHS.value, _SEED.value)
    started = time.time()
    train.train_and_evaluate(config, str(workdir))
    if _EXPORT.value:
      export.export_run(config, str(workdir))
    print(f'{case}/{variant}: {time.time() - started:.0f} s', flush=True)
  with open(metrics_path) as f:
    return json.load(f)


def _cell(value, digits: int) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def _thirds(thirds: list, key: str, digits: int) -> str:
  return ' / '.join(_cell(third.get(key), digits) for third in thirds)


def chamfer_ratios(metrics: dict, lbs: dict) -> list[float]:
  """Chamfer x1e3 of each third over the LBS-only baseline's."""
  return [t['chamfer_sq_x1e3'] / b['chamfer_sq_x1e3'] for t, b in zip(metrics['thirds'], lbs['thirds'])]


def method_row(case: str, template: str, method: str, metrics: dict, lbs: dict, train_psnr) -> str:
  """One markdown row: geometry means, training-view PSNR and its two parts (the silhouette's IoU with the
  mask, the PSNR where both hold), held-out image means, then Chamfer x1e3, NC and the Chamfer ratio to LBS
  per third."""
  cells = [_cell(metrics.get(key), DIGITS.get(key, 3)) for key in METRICS]
  split = f'{_cell(metrics.get("train_view_silhouette_iou"), 3)} / {_cell(metrics.get("train_view_covered_psnr"), 2)}'
  cells += [_cell(train_psnr, 2), split] + [_cell(metrics.get(key), 2 if key == 'psnr' else 3) for key in HELD_OUT]
  thirds = metrics.get('thirds', [])
  ratios = ' / '.join(_cell(r, 2) for r in chamfer_ratios(metrics, lbs))
  return (f'| {case} | {template} | {method} | ' + ' | '.join(cells) +
          f' | {_thirds(thirds, "chamfer_sq_x1e3", 2)} | {_thirds(thirds, "normal_consistency", 3)} | {ratios} |')


HEADER = ('| case | template | method | Chamfer x1e3 | Chamfer mm | NC | drift mm | inside body % | PSNR train view | '
          'train view: silhouette IoU / PSNR where drawn and in the mask | PSNR held-out | SSIM held-out | '
          'LPIPS held-out | Chamfer x1e3 per third | NC per third | Chamfer / LBS per third |\n' + '|---' * 16 + '|')


def target_checks(case: str, results: dict) -> list[str]:
  """Issue 19's targets for the case (see CHAMFER_RATIO); on the loose garments, ngd's Chamfer below the
  displacement baseline's."""
  if 'ngd' not in results:
    return []
  metrics = results['ngd']
  ngd, lbs = metrics['reconstruction'], metrics['lbs_baseline']
  limit = EXACT_TEMPLATE_RATIO if case in EXACT_TEMPLATE else CHAMFER_RATIO
  chamfer_ok = all(r <= limit for r in chamfer_ratios(ngd, lbs))
  nc_ok = all(t['normal_consistency'] >= b['normal_consistency'] for t, b in zip(ngd['thirds'], lbs['thirds']))
  yes = lambda ok: 'yes' if ok else 'NO'
  line = (f'{case}: Chamfer <= {limit} x LBS in every third: {yes(chamfer_ok)}; NC at least LBS\'s in every third: '
          f'{yes(nc_ok)}')
  if metrics.get('train_view_psnr') is not None:
    line += f'; training-view PSNR >= {TRAIN_PSNR} dB: {yes(metrics["train_view_psnr"] >= TRAIN_PSNR)}'
  if ngd.get('psnr') is not None and lbs.get('psnr') is not None:
    line += f'; held-out PSNR >= LBS + {HELD_OUT_GAIN} dB: {yes(ngd["psnr"] >= lbs["psnr"] + HELD_OUT_GAIN)}'
  lines = [line]
  if metrics.get('ground_truth_inside_body_pct') is not None:
    lines.append(f'{case}: the true cloth has {metrics["ground_truth_inside_body_pct"]:.1f} % of its surface inside '
                 f'the body, ngd {ngd["inside_body_pct"]:.1f} %, LBS {lbs["inside_body_pct"]:.1f} %')
  if case in LOOSE and 'displacement' in results:
    better = ngd['chamfer_sq_x1e3'] < results['displacement']['reconstruction']['chamfer_sq_x1e3']
    lines.append(f'{case}: ngd ahead of the displacement baseline in Chamfer: {yes(better)}')
  return lines


def main(argv):
  del argv
  unknown = set(_CASES.value) - set(CASES) | set(_VARIANTS.value) - set(VARIANTS)
  if unknown:
    raise app.UsageError(f'Unknown case or variant {sorted(unknown)}: cases {CASES}, variants {tuple(VARIANTS)}.')
  out = pathlib.Path(_OUT.value)
  started = time.time()
  results = {case: {variant: run_one(case, variant, out) for variant in _VARIANTS.value} for case in _CASES.value}
  rows, checks = [HEADER], []
  for case, by_variant in results.items():
    for variant, metrics in by_variant.items():
      template = 'body-built' if variant == 'body_template' else 'first frame' if case in EXACT_TEMPLATE else 'generic'
      if variant in ('ngd', 'body_template'):
        rows.append(method_row(case, template, 'LBS only', metrics['lbs_baseline'], metrics['lbs_baseline'], None))
      name = 'ngd' if variant == 'body_template' else variant
      rows.append(method_row(case, template, name, metrics['reconstruction'], metrics['lbs_baseline'],
                             metrics.get('train_view_psnr')))
    checks += target_checks(case, by_variant)
  table = '\n'.join(rows)
  report = (f'{table}\n\n' + '\n'.join(f'- {line}' for line in checks) +
            f'\n\n{_EPOCHS.value} geometry epochs x 24 frames, seed {_SEED.value}; '
            f'{time.time() - started:.0f} s for this invocation.\n')
  files.write_json(out / 'results.json', results)
  files.write_bytes(out / 'results.md', report.encode())
  print(report)


if __name__ == '__main__':
  app.run(main)
