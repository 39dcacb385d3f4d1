"""Compacted antialias (candidate pixel pairs only) == the dense pass over every pixel pair."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import render
from ngd_jax.render import screen

RES = (40, 48)


def _dense_reference(color, rast, clip_pos, faces, opposite):
  """Slow reference: the pre-compaction antialias, every horizontal and vertical pair, one image."""
  height, width = rast.shape[:2]
  fx, fy = screen.ndc_centres(height, width)
  centre = jnp.stack(jnp.broadcast_arrays(fx[None, :], fy[:, None]), axis=-1)
  v = clip_pos[faces]
  x, y, w = v[..., 0], v[..., 1], v[..., 3]
  j, k = np.array([1, 2, 0]), np.array([2, 0, 1])
  a = x[:, j] * y[:, k] - y[:, j] * x[:, k]
  b = y[:, j] * w[:, k] - w[:, j] * y[:, k]
  c = w[:, j] * x[:, k] - x[:, j] * w[:, k]
  det = x[:, 0] * b[:, 0] + y[:, 0] * c[:, 0] + w[:, 0] * a[:, 0]
  s = jnp.where(det > 0, 1.0, -1.0)[:, None]
  coef = jnp.stack([s * a, s * b, s * c], axis=-1)
  o = jax.lax.stop_gradient(clip_pos)[jnp.maximum(opposite, 0)]
  side = jax.lax.stop_gradient(coef[..., 0] * o[..., 3] + coef[..., 1] * o[..., 0]
                               + coef[..., 2] * o[..., 1])
  silhouette = (opposite < 0) | (side >= 0)
  grad_x = jax.lax.stop_gradient(jnp.abs(b)) / width
  grad_y = jax.lax.stop_gradient(jnp.abs(c)) / height
  use_h, use_v = silhouette & (grad_x >= grad_y), silhouette & (grad_y > grad_x)

  def deltas(sl_a, sl_b, use):
    ca, cb, ra, rb = color[sl_a], color[sl_b], rast[sl_a], rast[sl_b]
    pa, pb = centre[sl_a], centre[sl_b]
    id_a = ra[..., 3].astype(jnp.int32) - 1
    id_b = rb[..., 3].astype(jnp.int32) - 1
    a_owns = (id_a >= 0) & ((id_b < 0) | (ra[..., 2] <= rb[..., 2]))
    tri = jnp.maximum(jnp.where(a_owns, id_a, id_b), 0)
    p_own = jnp.where(a_owns[..., None], pa, pb)[..., None, :]
    p_oth = jnp.where(a_owns[..., None], pb, pa)[..., None, :]
    edge = coef[tri]
    e_own = edge[..., 0] + edge[..., 1] * p_own[..., 0] + edge[..., 2] * p_own[..., 1]
    e_oth = edge[..., 0] + edge[..., 1] * p_oth[..., 0] + edge[..., 2] * p_oth[..., 1]
    crosses = (e_oth < 0) & (e_own > e_oth)
    t_edge = jnp.where(crosses, e_own / jnp.where(crosses, e_own - e_oth, 1.0), 2.0)
    t_min = jnp.min(t_edge, axis=-1)
    exit_edge = crosses & (t_edge == t_min[..., None])
    usable = jnp.any(exit_edge & use[tri], axis=-1) & (id_a != id_b)
    t = jnp.clip(t_min, 0.0, 1.0)
    own, oth = jnp.where(a_owns[..., None], ca, cb), jnp.where(a_owns[..., None], cb, ca)
    d_own = jnp.where((usable & (t < 0.5))[..., None], (0.5 - t)[..., None] * (oth - own), 0.0)
    d_oth = jnp.where((usable & (t >= 0.5))[..., None], (t - 0.5)[..., None] * (own - oth), 0.0)
    return jnp.where(a_owns[..., None], d_own, d_oth), jnp.where(a_owns[..., None], d_oth, d_own)

  all_ = slice(None)
  da, db = deltas((all_, slice(None, -1)), (all_, slice(1, None)), use_h)
  out = color.at[:, :-1].add(da).at[:, 1:].add(db)
  da, db = deltas(slice(None, -1), slice(1, None), use_v)
  return out.at[:-1].add(da).at[1:].add(db)


def _patch(n=8, size=0.8):
  """The curved open grid patch of test_render_grad (boundary silhouettes)."""
  u = np.linspace(-size / 2, size / 2, n + 1)
  xs, ys = np.meshgrid(u, u)
  zs = 0.15 * np.sin(2.5 * xs) * np.cos(2 * ys) + 0.1 * xs
  verts = np.stack([xs, ys, zs], -1).reshape(-1, 3)
  idx = np.arange((n + 1)**2).reshape(n + 1, n + 1)
  a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
  faces = np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3),
                          np.stack([a, c, d], -1).reshape(-1, 3)])
  return verts, faces


def _bumpy_sphere(seed, n=10):
  """Closed UV sphere with random radial bumps: fold silhouettes and self-occlusion."""
  rng = np.random.default_rng(seed)
  theta, phi = np.linspace(0.2, np.pi - 0.2, n), np.linspace(0, 2 * np.pi, n, endpoint=False)
  t, p = np.meshgrid(theta, phi, indexing='ij')
  r = 0.6 * (1 + 0.25 * rng.standard_normal(t.shape))
  verts = np.stack([r * np.sin(t) * np.cos(p), r * np.cos(t), r * np.sin(t) * np.sin(p)], -1)
  verts = np.concatenate([verts.reshape(-1, 3), [[0, 0.6, 0], [0, -0.6, 0]]])
  idx = np.arange(n * n).reshape(n, n)
  nxt = np.roll(idx, -1, axis=1)
  faces = [np.stack([idx[:-1], nxt[:-1], idx[1:]], -1).reshape(-1, 3),
           np.stack([nxt[:-1], nxt[1:], idx[1:]], -1).reshape(-1, 3),
           np.stack([np.full(n, n * n), nxt[0], idx[0]], -1),
           np.stack([np.full(n, n * n + 1), idx[-1], nxt[-1]], -1)]
  return verts, np.concatenate(faces)


def _soup(seed, count=12):
  """Random overlapping triangles at random depths (many id changes and occlusions)."""
  rng = np.random.default_rng(seed)
  centres = rng.uniform(-0.6, 0.6, (count, 1, 3))
  verts = (centres + rng.uniform(-0.35, 0.35, (count, 3, 3))).reshape(-1, 3)
  return verts, np.arange(3 * count).reshape(-1, 3)


NUM_VERTS, NUM_FACES = 102, 200  # Every scene is padded to these, so each function compiles once.


def _scene(verts, faces, seed, rotation=0.4, channels=3):
  """(color, rast, clip, faces, topology) of a mesh 2.5 in front of a perspective camera.

  Padded with vertices at the first vertex and (0, 0, 0) faces, as the training meshes are.
  """
  cos, sin = np.cos(rotation), np.sin(rotation)
  rot = np.array([[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]])
  cam = verts @ rot.T + [0.0, 0.0, 2.5]
  cam = np.concatenate([cam, np.repeat(cam[:1], NUM_VERTS - len(cam), 0)])
  faces = np.concatenate([faces, np.zeros((NUM_FACES - len(faces), 3), int)])
  focal = 1.4
  clip = np.stack([focal * cam[:, 0], -focal * cam[:, 1] * RES[1] / RES[0],
                   cam[:, 2] * 1.02 - 0.2, cam[:, 2]], -1)
  clip, faces = jnp.asarray(clip, jnp.float32), jnp.asarray(faces, jnp.int32)
  rast = render.rasterize(clip, faces, RES, 'jax')
  color = jax.random.uniform(jax.random.PRNGKey(seed), RES + (channels,))
  return color, rast, clip, faces, render.build_topology(np.asarray(faces))


SCENES = {
    'patch': lambda: _scene(*_patch(), seed=0, rotation=0.3),
    'sphere0': lambda: _scene(*_bumpy_sphere(0), seed=1),
    'sphere1': lambda: _scene(*_bumpy_sphere(1), seed=2, rotation=1.3),
    'soup': lambda: _scene(*_soup(3), seed=3),
}


@functools.partial(jax.jit, static_argnames='max_pairs')
def _fast(color, rast, clip, faces, topology, cotangent, max_pairs):
  """(antialiased image, (d color, d clip) of <image, cotangent>) from the library."""
  out, pullback = jax.vjp(
      lambda c, p: render.antialias(c, rast, p, faces, topology, max_pairs=max_pairs), color, clip)
  return out, pullback(cotangent)


@jax.jit
def _slow(color, rast, clip, faces, topology, cotangent):
  """Same as _fast from the dense reference."""
  out, pullback = jax.vjp(
      lambda c, p: _dense_reference(c, rast, p, faces, topology.opposite), color, clip)
  return out, pullback(cotangent)


def _check_against_reference(scene, max_pairs):
  """Values (atol 1e-6) and VJPs (rtol 1e-5, atol 1e-5) vs the dense reference.

  Returns the number of pixels the reference changed and its clip-position gradient.
  """
  color, rast, clip, faces, topology = scene
  cotangent = jax.random.normal(jax.random.PRNGKey(7), color.shape)
  out_fast, grads_fast = _fast(color, rast, clip, faces, topology, cotangent, max_pairs=max_pairs)
  out_slow, grads_slow = _slow(color, rast, clip, faces, topology, cotangent)
  changed = int(np.sum(np.any(np.asarray(out_slow) != np.asarray(color), axis=-1)))
  np.testing.assert_allclose(out_fast, out_slow, atol=1e-6, rtol=0)
  for g_fast, g_slow in zip(grads_fast, grads_slow):
    np.testing.assert_allclose(g_fast, g_slow, rtol=1e-5, atol=1e-5)
  return changed, grads_slow[1]


@pytest.mark.parametrize('name', sorted(SCENES))
def test_matches_dense_reference(name):
  changed, grad_clip = _check_against_reference(SCENES[name](), max_pairs=None)
  # The scene exercises silhouettes: pixels change and positions get gradients.
  assert changed > 10 and np.abs(np.asarray(grad_clip)).sum() > 0


def test_overflow_falls_back_to_exact_result():
  # Each usable pair changes exactly one pixel, so > 4 changed pixels means some direction has
  # more than 2 candidate pairs: capacity 2 overflows.
  changed, _ = _check_against_reference(SCENES['sphere0'](), max_pairs=2)
  assert changed > 4


def test_batch_jit_and_vmap_agree_with_single_images():
  scenes = [SCENES['sphere0'](), SCENES['sphere1']()]
  faces, topology = scenes[0][3], scenes[0][4]
  color, rast, clip = (jnp.stack([s[i] for s in scenes]) for i in range(3))
  expected = jax.jit(jax.vmap(lambda c, r, p: _dense_reference(c, r, p, faces, topology.opposite)))(
      color, rast, clip)
  batched = jax.jit(lambda c, r, p: render.antialias(c, r, p, faces, topology))(color, rast, clip)
  mapped = jax.jit(jax.vmap(lambda c, r, p: render.antialias(c, r, p, faces, topology)))(
      color, rast, clip)
  # atol 1e-5: float32 rounding of t differs between the two compiled programs.
  np.testing.assert_allclose(batched, expected, atol=1e-5, rtol=0)
  np.testing.assert_allclose(mapped, expected, atol=1e-5, rtol=0)


def test_rejects_bad_capacity():
  color, rast, clip, faces, topology = SCENES['patch']()
  with pytest.raises(ValueError, match='max_pairs'):
    render.antialias(color, rast, clip, faces, topology, max_pairs=0)
