"""Gradients through rasterize + interpolate + antialias against central finite differences."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import render

RES = (96, 96)
FOCAL = 120.0
DEPTH = 2.0
PIXEL = DEPTH / FOCAL  # World size of one pixel at the patch's depth.


def _patch(n=8, size=0.8):
  """Open, curved, garment-like grid patch facing the camera (faces counter-clockwise)."""
  u = np.linspace(-size / 2, size / 2, n + 1)
  xs, ys = np.meshgrid(u, u)
  zs = 0.15 * np.sin(2.5 * xs) * np.cos(2 * ys) + 0.1 * xs
  verts = np.stack([xs, ys, zs], -1).reshape(-1, 3).astype(np.float32)
  idx = np.arange((n + 1)**2).reshape(n + 1, n + 1)
  a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
  faces = np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3),
                          np.stack([a, c, d], -1).reshape(-1, 3)]).astype(np.int32)
  return verts, faces


def _camera():
  K = np.array([[FOCAL, 0, 47.5], [0, FOCAL, 47.5], [0, 0, 1]], np.float32)
  world_to_camera = np.eye(4, dtype=np.float32)
  world_to_camera[2, 3] = DEPTH
  return render.camera_to_clip(K, world_to_camera, RES, 0.05, 20.0), world_to_camera


VERTS, FACES = _patch()
TOPOLOGY = render.build_topology(FACES)
WORLD_TO_CLIP, WORLD_TO_CAMERA = _camera()
_ROWS, _COLS = np.meshgrid(np.arange(RES[0]), np.arange(RES[1]), indexing='ij')
# Smooth, non-symmetric per-pixel weights for the diffuse and alpha channels.
WEIGHTS = jnp.asarray(np.stack([np.sin(_COLS / 18.0) + _ROWS / 80.0,
                                np.cos(_ROWS / 22.0) + _COLS / 60.0], -1), jnp.float32)


@functools.partial(jax.jit, static_argnames=('antialias', 'channels'))
def _loss(verts, antialias=True, channels=(0, 1)):
  out = render.render_garment(verts, FACES, TOPOLOGY, WORLD_TO_CLIP, WORLD_TO_CAMERA, RES, 'ffi',
                              antialias=antialias)
  image = jnp.concatenate([out.diffuse, out.alpha], -1)
  return jnp.sum((WEIGHTS * image)[..., list(channels)])


_grad = jax.jit(jax.grad(_loss), static_argnames=('antialias', 'channels'))


def _direction(name):
  direction = np.zeros_like(VERTS)
  if name.startswith('translate'):
    direction[:, 'xyz'.index(name[-1])] = 1.0
  else:  # 'vertex<i><axis>'
    direction[int(name[6:-1]), 'xyz'.index(name[-1])] = 1.0
  return direction


# Step: one pixel at the patch's depth; the antialiased image is piecewise smooth at sub-pixel
# scale, so a one-pixel central difference measures the slope the optimiser sees.
# Vertex 0 is a corner, 4 the middle of the bottom boundary, 36 the middle of the left boundary.
@pytest.mark.parametrize('name', ['translate_x', 'translate_y', 'translate_z', 'vertex0x',
                                  'vertex4y', 'vertex36x'])
def test_gradient_matches_central_differences(name):
  direction = _direction(name)
  step = PIXEL
  fd = (float(_loss(VERTS + step * direction))
        - float(_loss(VERTS - step * direction))) / (2 * step)
  ad = float(np.sum(np.asarray(_grad(VERTS)) * direction))
  assert abs(fd) > 1.0, f'{name}: finite difference {fd} too small to test'
  assert np.sign(ad) == np.sign(fd), f'{name}: autodiff {ad} vs finite difference {fd}'
  assert abs(ad - fd) <= 0.25 * abs(fd), f'{name}: autodiff {ad} vs finite difference {fd}'


def test_interior_vertex_gradient_matches_central_differences():
  """An interior vertex moves shading only (no silhouette): a small step is accurate."""
  direction = _direction('vertex40z')
  step = 0.1 * PIXEL
  fd = (float(_loss(VERTS + step * direction))
        - float(_loss(VERTS - step * direction))) / (2 * step)
  ad = float(np.sum(np.asarray(_grad(VERTS)) * direction))
  assert abs(fd) > 0.1
  np.testing.assert_allclose(ad, fd, rtol=0.05)


def test_silhouette_gradient_only_with_antialias():
  """alpha alone is piecewise constant without antialiasing: its position gradient is 0."""
  direction = _direction('translate_x')
  g_plain = np.asarray(_grad(VERTS, antialias=False, channels=(1,)))
  g_aa = np.asarray(_grad(VERTS, antialias=True, channels=(1,)))
  assert np.all(g_plain == 0.0)
  step = PIXEL
  fd = (float(_loss(VERTS + step * direction, channels=(1,)))
        - float(_loss(VERTS - step * direction, channels=(1,)))) / (2 * step)
  ad = float(np.sum(g_aa * direction))
  assert abs(fd) > 1.0 and abs(ad - fd) <= 0.25 * abs(fd), (ad, fd)
  # Only silhouette (boundary) vertices receive a gradient from alpha.
  boundary = np.zeros(len(VERTS), bool)
  grid = np.arange(len(VERTS)).reshape(9, 9)
  boundary[np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]])] = True
  assert np.all(g_aa[~boundary] == 0.0) and np.abs(g_aa[boundary]).sum() > 0


def test_gradients_finite_with_padding_and_degenerate_faces():
  faces = np.concatenate([FACES, np.zeros((5, 3), np.int32)])
  verts = np.concatenate([VERTS, np.repeat(VERTS[:1], 3, 0)])
  topology = render.build_topology(faces)

  def loss(v):
    out = render.render_garment(v, faces, topology, WORLD_TO_CLIP, WORLD_TO_CAMERA, RES, 'jax')
    return jnp.sum(out.diffuse + out.alpha + out.depth + out.normal)

  g = np.asarray(jax.jit(jax.grad(loss))(verts))
  assert np.all(np.isfinite(g)) and np.all(g[len(VERTS):] == 0)
