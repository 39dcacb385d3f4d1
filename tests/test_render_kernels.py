"""Rasterizer kernels: C++ (jax.ffi) == portable JAX, both against a slow float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import render
from ngd_jax.render import ffi
from ngd_jax.render import portable
from ngd_jax.render import screen


def _kernels(clip, faces, resolution):
  """(depth, ids) from both kernels, as numpy."""
  clip, faces = jnp.asarray(clip, jnp.float32), jnp.asarray(faces, jnp.int32)
  d_ffi, i_ffi = ffi.rasterize_ffi(clip, faces, resolution)
  d_jax, i_jax = jax.jit(portable.rasterize_portable, static_argnums=2)(clip, faces, resolution)
  return (np.asarray(d_ffi), np.asarray(i_ffi)), (np.asarray(d_jax), np.asarray(i_jax))


def _reference(clip, faces, resolution):
  """Slow, obvious float64 rasterizer: (depth, ids, near_tie mask) per pixel.

  Pixel p = (fx, fy, 1) is covered by a triangle when M lam = p (columns of M the vertices'
  (x, y, w)) has lam >= 0: the point lam / sum(lam) of the triangle projects to p with w > 0.
  Then z/w = sum lam_i z_i, kept in [-1, 1]. near_tie marks pixels where rounding may decide
  (an edge or a depth difference within a small tolerance).
  """
  height, width = resolution
  fx, fy = screen.ndc_centres(height, width)
  p = np.stack(np.broadcast_arrays(fx[None, :].astype(np.float64),
                                   fy[:, None].astype(np.float64), 1.0), -1)  # [H, W, 3]
  clip = np.asarray(clip, np.float64)
  best = np.full((height, width), np.inf)
  second = np.full((height, width), np.inf)
  ids = np.full((height, width), -1)
  near_edge = np.zeros((height, width), bool)
  for f, face in enumerate(faces):
    v = clip[face]
    m = np.stack([v[:, 0], v[:, 1], v[:, 3]])
    if len(set(face.tolist())) < 3 or abs(np.linalg.det(m)) < 1e-12:
      continue
    lam = np.einsum('ij,hwj->hwi', np.linalg.inv(m), p)
    scale = np.abs(lam).sum(-1)
    inside = np.all(lam >= 0, -1)
    near_edge |= (np.abs(lam).min(-1) < 1e-5 * scale) & (np.min(lam, -1) > -1e-5 * scale)
    zw = lam @ v[:, 2]
    inside &= (zw >= -1) & (zw <= 1)
    nearer = inside & (zw < best)
    second = np.where(nearer, best, np.where(inside, np.minimum(second, zw), second))
    best = np.where(nearer, zw, best)
    ids = np.where(nearer, f, ids)
  with np.errstate(invalid='ignore'):
    near_tie = near_edge | (second - best < 1e-5)
  return np.where(ids >= 0, best, 0.0), ids, near_tie


def _random_scene(rng, kind, num_faces=60):
  """Clip positions and faces of one kind of hard case."""
  num_vertices = 3 * num_faces
  if kind == 'large':
    ndc = rng.uniform(-2.5, 2.5, (num_vertices, 3))
    w = rng.uniform(0.5, 3.0, (num_vertices, 1))
  elif kind == 'tiny':
    centre = rng.uniform(-1, 1, (num_faces, 1, 3))
    ndc = (centre + rng.normal(0, 0.06, (num_faces, 3, 3))).reshape(-1, 3)
    w = rng.uniform(0.5, 3.0, (num_vertices, 1))
  elif kind == 'behind_camera':
    ndc = rng.uniform(-1.5, 1.5, (num_vertices, 3))
    w = rng.uniform(-1.0, 2.0, (num_vertices, 1))
  elif kind == 'off_screen':
    ndc = rng.uniform(-1, 1, (num_vertices, 3)) + rng.choice([-1.5, 1.5], (num_vertices, 1))
    w = rng.uniform(0.5, 3.0, (num_vertices, 1))
  else:
    raise ValueError(kind)
  clip = np.concatenate([ndc * np.abs(w), w], 1).astype(np.float32)
  faces = np.arange(num_vertices).reshape(num_faces, 3).astype(np.int32)
  if kind == 'tiny':
    faces[::7] = 0  # Padding faces (0, 0, 0).
  return clip, faces


def _edge_on_scene():
  """Triangles whose plane contains the eye (zero screen area) or nearly, plus collinear ones."""
  clip = np.array([
      [-0.5, -0.5, 0.2, 1.0], [0.5, 0.5, 0.4, 2.0], [0.2, 0.2, 0.3, 1.5],  # Projections collinear.
      [-0.8, 0.1, 0.1, 1.0], [0.8, 0.1, 0.2, 1.0], [0.0, 0.1000001, 0.3, 1.0],  # Sliver.
      [-0.9, -0.9, 0.5, 1.0], [0.9, -0.7, 0.5, 1.0], [0.0, 0.9, 0.5, 1.0],  # A normal one.
  ], np.float32)
  faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [1, 1, 2]], np.int32)
  return clip, faces


@pytest.mark.parametrize('kind', ['large', 'tiny', 'behind_camera', 'off_screen'])
def test_kernels_identical_and_match_reference(kind):
  rng = np.random.default_rng(['large', 'tiny', 'behind_camera', 'off_screen'].index(kind))
  resolution = (37, 50)
  clip, faces = _random_scene(rng, kind)
  (d_ffi, i_ffi), (d_jax, i_jax) = _kernels(clip, faces, resolution)
  np.testing.assert_array_equal(i_ffi, i_jax)
  np.testing.assert_array_equal(d_ffi, d_jax)
  d_ref, i_ref, tie = _reference(clip, faces, resolution)
  assert (i_ffi >= 0).sum() > 20, 'scene too empty to test anything'
  agree = (i_ffi == i_ref) | tie
  assert agree.mean() == 1.0, f'{(~agree).sum()} pixels differ from the reference'
  both = (i_ffi == i_ref) & (i_ref >= 0)
  # float32 depth planes of small, thin triangles are conditioned to about 1e-4.
  np.testing.assert_allclose(d_ffi[both], d_ref[both], atol=1e-4)


def test_kernels_identical_on_many_triangles_of_all_sizes():
  rng = np.random.default_rng(7)
  parts = [_random_scene(rng, kind, 400) for kind in ('large', 'tiny', 'behind_camera')]
  clip = np.concatenate([c for c, _ in parts])
  faces = np.concatenate([f + 1200 * i for i, (_, f) in enumerate(parts)])
  for resolution in [(64, 64), (97, 131)]:
    (d_ffi, i_ffi), (d_jax, i_jax) = _kernels(clip, faces, resolution)
    np.testing.assert_array_equal(i_ffi, i_jax)
    np.testing.assert_array_equal(d_ffi, d_jax)


def test_edge_on_and_degenerate_triangles_not_drawn():
  clip, faces = _edge_on_scene()
  (d_ffi, i_ffi), (d_jax, i_jax) = _kernels(clip, faces, (32, 32))
  np.testing.assert_array_equal(i_ffi, i_jax)
  np.testing.assert_array_equal(d_ffi, d_jax)
  assert not np.any(i_ffi == 0) and not np.any(i_ffi == 3)
  assert np.sum(i_ffi == 2) > 100


def test_shared_edges_cover_each_pixel_exactly_once():
  """A pixel-aligned fan and grid (many exact ties): every pixel of the hull once, none twice."""
  height = width = 16
  # Vertices exactly on pixel centres and pixel corners, in NDC.
  cols = np.array([0.0, 4.0, 8.5, 12.0, 16.0])
  rows = np.array([0.0, 3.5, 8.0, 16.0])
  xs, ys = np.meshgrid(2 * cols / width - 1, 1 - 2 * rows / height)
  clip = np.stack([xs, ys, np.zeros_like(xs), np.ones_like(xs)], -1).reshape(-1, 4)
  clip = clip.astype(np.float32)
  idx = np.arange(xs.size).reshape(xs.shape)
  a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
  faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3),
                          np.stack([a, d, c], -1).reshape(-1, 3)]).astype(np.int32)
  faces[::3] = faces[::3, ::-1]  # Mixed orientations.
  count = np.zeros((height, width), int)
  for f in range(len(faces)):
    _, ids = _kernels(clip, faces[f:f + 1], (height, width))[0]
    count += ids >= 0
  np.testing.assert_array_equal(count, 1)
  (_, i_ffi), (_, i_jax) = _kernels(clip, faces, (height, width))
  np.testing.assert_array_equal(i_ffi, i_jax)
  assert np.all(i_ffi >= 0)


def test_eager_jit_vmap_agree_for_both_backends():
  rng = np.random.default_rng(3)
  clips = np.stack([_random_scene(rng, 'large', 30)[0] for _ in range(3)])
  faces = np.arange(90).reshape(30, 3).astype(np.int32)
  resolution = (24, 40)
  for backend in ('ffi', 'jax'):
    eager = np.stack([render.rasterize(jnp.asarray(c), faces, resolution, backend) for c in clips])
    vmapped = jax.jit(jax.vmap(lambda c, b=backend: render.rasterize(c, faces, resolution, b)))(
        clips)
    variants = [vmapped]
    if backend == 'ffi':  # The portable kernel's compile time makes more variants costly.
      variants.append(render.rasterize(jnp.asarray(clips), faces, resolution, backend))
      variants.append(jax.jit(render.rasterize, static_argnums=(2, 3))(
          jnp.asarray(clips), faces, resolution, backend))
    for other in variants:
      np.testing.assert_array_equal(eager[..., 3], np.asarray(other)[..., 3])
      np.testing.assert_allclose(eager, np.asarray(other), atol=1e-6)
    if backend == 'ffi':
      ffi_eager = eager
  np.testing.assert_array_equal(ffi_eager, eager)


def test_rast_layout_and_barycentrics():
  """One triangle: (u, v) reproduce the pixel centre, z/w and id + 1 as documented."""
  clip = np.array([[-0.8, -0.8, 0.1, 1.0], [1.6, -1.2, 0.4, 2.0], [0.0, 2.4, 0.9, 3.0]],
                  np.float32)
  rast = np.asarray(render.rasterize(jnp.asarray(clip), np.array([[0, 1, 2]]), (20, 30)))
  covered = rast[..., 3] > 0
  assert covered.sum() > 50 and np.all(rast[~covered] == 0) and np.all(rast[covered, 3] == 1)
  u, v = rast[..., 0], rast[..., 1]
  b = np.stack([u, v, 1 - u - v], -1)
  point = b @ clip  # Perspective-correct barycentrics give the clip-space point of the pixel.
  fx, fy = screen.ndc_centres(20, 30)
  rows, cols = np.nonzero(covered)
  p = point[rows, cols]
  np.testing.assert_allclose(p[:, 0] / p[:, 3], fx[cols], atol=1e-5)
  np.testing.assert_allclose(p[:, 1] / p[:, 3], fy[rows], atol=1e-5)
  np.testing.assert_allclose(rast[rows, cols, 2], p[:, 2] / p[:, 3], atol=1e-5)
  # Row 0 is the top: the apex (y_ndc = 0.8) is near row 1.5, the base (y_ndc = -0.8) near 17.5.
  assert rows.min() >= 2 and rows.max() == 17


def test_bad_input_and_missing_library(monkeypatch):
  with pytest.raises(ValueError, match='backend'):
    render.rasterize(jnp.zeros((3, 4)), np.array([[0, 1, 2]]), (8, 8), 'opengl')
  with pytest.raises(ValueError, match='resolution'):
    render.rasterize(jnp.zeros((3, 4)), np.array([[0, 1, 2]]), (8, 5000))
  with pytest.raises(ValueError, match='clip_pos'):
    render.rasterize(jnp.zeros((3, 3)), np.array([[0, 1, 2]]), (8, 8))
  monkeypatch.setattr(ffi, '_library_path', lambda: None)
  monkeypatch.setattr(ffi, '_register', ffi._register.__wrapped__)
  with pytest.raises(ffi.NativeRasterizerMissing, match='build_ext'):
    render.rasterize(jnp.zeros((3, 4)), np.array([[0, 1, 2]]), (8, 8), 'ffi')
  rast = render.rasterize(jnp.zeros((3, 4)), np.array([[0, 1, 2]]), (8, 8), 'auto')
  assert rast.shape == (8, 8, 4)


def test_camera_to_clip_projects_onto_the_covered_pixel():
  """A point projected by hand with K lands on the pixel whose interpolated position it is."""
  height, width = 48, 64
  K = np.array([[70.0, 0.0, 30.2], [0.0, 75.0, 22.7], [0.0, 0.0, 1.0]])
  angle = 0.3
  rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
  world_to_camera = np.eye(4)
  world_to_camera[:3, :3] = rot
  world_to_camera[:3, 3] = [0.1, -0.2, 2.5]
  proj = np.asarray(render.camera_to_clip(K, world_to_camera, (height, width), 0.1, 10.0))
  # A world point whose projection is exactly the centre of pixel (row 17, col 41).
  row, col, depth = 17, 41, 1.7
  cam = depth * np.linalg.inv(K) @ np.array([col, row, 1.0])
  world = np.linalg.solve(world_to_camera, np.append(cam, 1.0))[:3]
  uvw = K @ (world_to_camera @ np.append(world, 1.0))[:3]
  np.testing.assert_allclose(uvw[:2] / uvw[2], [col, row], atol=1e-9)
  # A small triangle around that point, facing the camera.
  tri_cam = cam + 0.02 * np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
  tri = (np.linalg.inv(world_to_camera) @ np.c_[tri_cam, np.ones(3)].T).T[:, :3]
  clip = np.c_[tri, np.ones(3)] @ proj.T
  np.testing.assert_allclose(clip[:, 3], tri_cam[:, 2], rtol=1e-6)  # w = camera depth.
  rast = render.rasterize(jnp.asarray(clip, jnp.float32), np.array([[0, 1, 2]]), (height, width))
  assert rast[row, col, 3] == 1
  xyz = render.interpolate(jnp.asarray(tri, jnp.float32), rast, np.array([[0, 1, 2]]))
  np.testing.assert_allclose(xyz[row, col], world, atol=1e-4)
  near, far = 0.1, 10.0
  expected_zw = (far + near) / (far - near) - 2 * far * near / ((far - near) * depth)
  np.testing.assert_allclose(rast[row, col, 2], expected_zw, atol=1e-5)
