"""Analytic antialiasing of silhouette edges: the only source of silhouette gradients.

Written from the published algorithm (Laine et al. 2020, "Modular primitives for high-performance
differentiable rendering", section 3.3; docs/notes.md), not from its code. For every pair of
horizontally or vertically neighbouring pixels with different triangle ids, the triangle of the
nearer pixel (the non-background one if the other is background) is the owner. Along the segment
from the owner pixel's centre to the other's, the owner's edge that the segment leaves the
triangle through is found; if that edge is a silhouette (a boundary edge, or the triangle across
it lies on the same side on screen, i.e. the surface folds away) and is steep relative to the pair
direction (more vertical for horizontal pairs, more horizontal for vertical ones, so each edge is
handled by one direction only), the two colours are blended by where the edge crosses: crossing at
t in [0, 1] from the owner, the owner covers t + 0.5 pixels of the pair, so the other pixel takes
(t - 0.5) of the owner's colour when t > 0.5, and the owner pixel (0.5 - t) of the other's when
t < 0.5. Gradients w.r.t. positions flow through t.

Only pairs whose ids differ and whose owner has such an edge can change, a few per cent of all
pairs on garment frames, so antialias gathers those into a static capacity and scatters the
deltas back (benchmarks/README.md, "Proposals, ranked by measured gain", proposal 3), with an
exact fallback when they do not fit.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int
import numpy as np

from ngd_jax import meshes
from ngd_jax.render import screen


class Topology(NamedTuple):
  """Edge adjacency of a triangle mesh, static per topology."""
  # Across edge i (the edge opposite vertex i), the neighbour face's third vertex; -1 for boundary
  # and non-manifold edges.
  opposite: Int[Array, 'F 3']


def build_topology(faces: Int[np.ndarray, 'F 3']) -> Topology:
  """Host: edge -> opposite vertex of the neighbour face, once per topology.

  Edges shared by exactly two real faces get the neighbour's opposite vertex; boundary and
  non-manifold edges get -1 (always silhouettes). Degenerate faces (padding (0, 0, 0)) are
  ignored and get -1 everywhere.
  """
  faces = np.asarray(faces, dtype=np.int64)
  if faces.ndim != 2 or faces.shape[1] != 3:
    raise ValueError(f'build_topology: faces must be [F, 3], got {faces.shape}.')
  real = ((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
          & (faces[:, 0] != faces[:, 2]))
  opposite = np.full(faces.shape, -1, dtype=np.int64)
  # The edge opposite vertex i is edge (i + 1) % 3 of the adjacency.
  opposite[real] = np.roll(meshes.edge_adjacency(faces[real]).opposite, -1, axis=1)
  return Topology(jnp.asarray(opposite, dtype=jnp.int32))


class _EdgeData(NamedTuple):
  """Per-face edge functions and flags, gathered by the pixel pairs."""
  coef: Float[Array, 'F 3 3']  # Edge i's (A, B, C), normalized so the face is on the e >= 0 side.
  use_h: Bool[Array, 'F 3']  # Silhouette edge, steep enough for horizontal pairs.
  use_v: Bool[Array, 'F 3']  # Silhouette edge for vertical pairs.


def _edge_data(clip_pos, faces, opposite, resolution) -> _EdgeData:
  """Edge functions e_i(p) = A + B px + C py = (v_j x v_k) . (px, py, 1) in homogeneous (x, y, w).

  Computed once per face (differentiable w.r.t. clip_pos), so each pixel pair gathers 9 numbers.
  """
  v = clip_pos[faces]  # [F, 3, 4]
  edges = screen.edge_functions(v[..., 0], v[..., 1], v[..., 3])
  s = edges.sign[:, None]
  coef = jnp.stack([s * edges.a, s * edges.b, s * edges.c], axis=-1)
  o = jax.lax.stop_gradient(clip_pos)[jnp.maximum(opposite, 0)]  # [F, 3, 4]
  side = jax.lax.stop_gradient(coef[..., 0] * o[..., 3] + coef[..., 1] * o[..., 0]
                               + coef[..., 2] * o[..., 1])
  silhouette = (opposite < 0) | (side >= 0)
  # Screen gradient of the edge function per pixel step: (2 B / W, 2 C / H).
  grad_x = jax.lax.stop_gradient(jnp.abs(edges.b)) / resolution[1]
  grad_y = jax.lax.stop_gradient(jnp.abs(edges.c)) / resolution[0]
  return _EdgeData(coef, silhouette & (grad_x >= grad_y), silhouette & (grad_y > grad_x))


class _Owner(NamedTuple):
  """Who owns a pair of neighbouring pixels a and b; no gradient flows here."""
  id_a: jax.Array  # i32 triangle of pixel a, -1 background.
  id_b: jax.Array  # i32 triangle of pixel b, -1 background.
  a_owns: jax.Array  # bool
  triangle: jax.Array  # i32 the owner's triangle (0 where neither pixel is covered).


def _owner(rast_a, rast_b) -> _Owner:
  """The owner is the nearer pixel's triangle, or the non-background one."""
  id_a = jax.lax.stop_gradient(rast_a[..., 3]).astype(jnp.int32) - 1
  id_b = jax.lax.stop_gradient(rast_b[..., 3]).astype(jnp.int32) - 1
  zw_a, zw_b = jax.lax.stop_gradient(rast_a[..., 2]), jax.lax.stop_gradient(rast_b[..., 2])
  a_owns = (id_a >= 0) & ((id_b < 0) | (zw_a <= zw_b))
  return _Owner(id_a, id_b, a_owns, jnp.maximum(jnp.where(a_owns, id_a, id_b), 0))


class _PairDeltas(NamedTuple):
  """Colour changes of the pixels a and b of each pair, [..., C]."""
  a: jax.Array
  b: jax.Array


def _pair_deltas(color_a, color_b, rast_a, rast_b, centre_a, centre_b, coef, use) -> _PairDeltas:
  """Blends each pair across the owner's exit edge where it is a usable silhouette (see top)."""
  owner = _owner(rast_a, rast_b)
  a_owns, tri = owner.a_owns, owner.triangle
  p_own = jnp.where(a_owns[..., None], centre_a, centre_b)[..., None, :]
  p_oth = jnp.where(a_owns[..., None], centre_b, centre_a)[..., None, :]
  edge = coef[tri]  # [..., 3, 3]
  e_own = edge[..., 0] + edge[..., 1] * p_own[..., 0] + edge[..., 2] * p_own[..., 1]
  e_oth = edge[..., 0] + edge[..., 1] * p_oth[..., 0] + edge[..., 2] * p_oth[..., 1]
  crosses = (e_oth < 0) & (e_own > e_oth)  # Keeps the denominator below positive.
  t_edge = jnp.where(crosses, e_own / jnp.where(crosses, e_own - e_oth, 1.0), 2.0)
  # The segment leaves the owner through the first edge it crosses.
  t_min = jnp.min(t_edge, axis=-1)
  exit_edge = crosses & (t_edge == t_min[..., None])
  usable = jnp.any(exit_edge & use[tri], axis=-1) & (owner.id_a != owner.id_b)
  t = jnp.clip(t_min, 0.0, 1.0)
  color_own = jnp.where(a_owns[..., None], color_a, color_b)
  color_oth = jnp.where(a_owns[..., None], color_b, color_a)
  d_own = jnp.where((usable & (t < 0.5))[..., None], (0.5 - t)[..., None] * (color_oth - color_own),
                    0.0)
  d_oth = jnp.where((usable & (t >= 0.5))[..., None],
                    (t - 0.5)[..., None] * (color_own - color_oth), 0.0)
  return _PairDeltas(jnp.where(a_owns[..., None], d_own, d_oth),
                     jnp.where(a_owns[..., None], d_oth, d_own))


def _candidates(rast, data: _EdgeData) -> jax.Array:
  """bool[2, H W]: pixel a = flat index, b = a + 1 (row 0) or a + W (row 1) can change colour.

  A pair can change only if its triangle ids differ and the owner triangle has a silhouette edge
  steep for that direction; every other pair gets zero deltas from _pair_deltas, so skipping it
  changes nothing.
  """
  height, width = rast.shape[:2]
  flat_rast = rast.reshape(-1, 4)
  index = np.arange(height * width)
  masks = []
  for step, use, in_image in ((1, data.use_h, index % width < width - 1),
                              (width, data.use_v, index < (height - 1) * width)):
    owner = _owner(flat_rast, jnp.roll(flat_rast, -step, axis=0))
    masks.append(in_image & (owner.id_a != owner.id_b) & jnp.any(use, axis=-1)[owner.triangle])
  return jnp.stack(masks)


def _antialias_pairs(color, rast, data: _EdgeData, candidates, capacity: int):
  """Runs _pair_deltas on the first `capacity` candidate pairs per direction, scatters back.

  Exact when each direction has at most `capacity` candidates (always when capacity >= H W).
  """
  height, width, channels = color.shape
  fx, fy = screen.ndc_centres(height, width)
  centre = jnp.stack(jnp.broadcast_arrays(fx[None, :], fy[:, None]), axis=-1).reshape(-1, 2)
  flat_color, flat_rast = color.reshape(-1, channels), rast.reshape(-1, 4)
  out = flat_color
  for candidate, step, use in ((candidates[0], 1, data.use_h), (candidates[1], width, data.use_v)):
    (a,) = jnp.nonzero(candidate, size=capacity, fill_value=0)
    valid = (jnp.arange(capacity) < jnp.sum(candidate))[:, None]
    b = a + step
    deltas = _pair_deltas(flat_color[a], flat_color[b], flat_rast[a], flat_rast[b], centre[a],
                          centre[b], data.coef, use)
    out = out.at[a].add(jnp.where(valid, deltas.a, 0.0)).at[b].add(jnp.where(valid, deltas.b, 0.0))
  return out.reshape(height, width, channels)


def _run(color, coef, use_h, use_v, rast, candidates, capacity: int):
  """_antialias_pairs over the batch axis."""
  data = _EdgeData(coef, use_h, use_v)
  return jax.vmap(_antialias_pairs, in_axes=(0, 0, 0, 0, None))(color, rast, data, candidates,
                                                                 capacity)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _run_with_fallback(capacity, color, coef, use_h, use_v, rast, candidates, overflow):
  """_run with `capacity`, or with H W (every pair) when `overflow`.

  A custom VJP because differentiating lax.cond keeps the residuals of both branches (zeros for the
  untaken one, H W sized for the fallback): forward + backward took 28 ms instead of 5 ms at 256^2.
  Here the backward pass recomputes the taken branch from the inputs instead.
  """
  full = rast.shape[1] * rast.shape[2]
  return jax.lax.cond(overflow, _run_at(full), _run_at(capacity), color, coef, use_h, use_v, rast, candidates)


@functools.lru_cache(maxsize=None)
def _run_at(capacity: int):
  """_run with a fixed capacity, one function object per capacity: lax.cond caches its compiled branches by
  the functions' identity, so eager calls (pictures outside jit) compile the cond once, not on every call."""
  return functools.partial(_run, capacity=capacity)


def _run_fwd(capacity, color, coef, use_h, use_v, rast, candidates, overflow):
  out = _run_with_fallback(capacity, color, coef, use_h, use_v, rast, candidates, overflow)
  return out, (color, coef, use_h, use_v, rast, candidates, overflow)


def _run_bwd(capacity, residuals, cotangent):
  color, coef, use_h, use_v, rast, candidates, overflow = residuals
  full = rast.shape[1] * rast.shape[2]

  def pullback(size):
    def fn(color, coef):
      run = lambda c, e: _run(c, e, use_h, use_v, rast, candidates, size)
      return jax.vjp(run, color, coef)[1](cotangent)
    return fn

  d_color, d_coef = jax.lax.cond(overflow, pullback(full), pullback(capacity), color, coef)
  return d_color, d_coef, None, None, None, None, None


_run_with_fallback.defvjp(_run_fwd, _run_bwd)


def default_max_pairs(height: int, width: int) -> int:
  """Host: default pair capacity per direction, H W / 16 (at least 1).

  Candidate pairs grow with the silhouette length, not the area: a skirt filling a third of the
  image has ~720 of 4,096 at 256^2 and ~1,540 of 16,384 at 512^2 (20k faces); larger counts take
  the exact fallback.
  """
  return max(1, height * width // 16)


def antialias(color: Float[Array, '*B H W C'], rast: Float[Array, '*B H W 4'],
              clip_pos: Float[Array, '*B V 4'], faces: Int[Array, 'F 3'], topology: Topology,
              max_pairs: int | None = None) -> Float[Array, '*B H W C']:
  """Blends colours across silhouette edges (see module docstring).

  Only the pixel pairs that can change colour (_candidates) are processed, at most `max_pairs`
  per direction and image (a static capacity). When any image of the batch has more, a lax.cond
  runs the same pass with capacity H W instead, which holds every pair: overflow costs time, never
  correctness. Under an outer jax.vmap of this function the cond becomes a select and both
  branches run (still exact, slower); pass the batch as a leading axis instead.

  Args:
    color: f32[B, H, W, C] | [H, W, C] shaded image.
    rast: f32[B, H, W, 4] | [H, W, 4] from rasterize with the same clip_pos and faces.
    clip_pos: f32[B, V, 4] | [V, 4].
    faces: i32[F, 3].
    topology: build_topology(faces).
    max_pairs: static pair capacity per direction; None -> default_max_pairs(H, W).

  Returns:
    Antialiased colour, same shape; differentiable w.r.t. color and clip_pos.
  """
  if color.shape[:-1] != rast.shape[:-1] or clip_pos.ndim != rast.ndim - 1:
    raise ValueError(f'antialias: color {color.shape}, rast {rast.shape} and clip_pos '
                     f'{clip_pos.shape} must share the batch and image dimensions.')
  if topology.opposite.shape != faces.shape:
    raise ValueError(f'antialias: topology for {topology.opposite.shape[0]} faces given with '
                     f'{faces.shape[0]} faces; call build_topology(faces) for these faces.')
  height, width = rast.shape[-3:-1]
  capacity = default_max_pairs(height, width) if max_pairs is None else int(max_pairs)
  if capacity < 1:
    raise ValueError(f'antialias: max_pairs must be a positive int or None, got {max_pairs}.')
  capacity = min(capacity, height * width)
  faces = jnp.asarray(faces, jnp.int32)
  batched = color.ndim == 4
  if not batched:
    color, rast, clip_pos = color[None], rast[None], clip_pos[None]
  data = jax.vmap(lambda c: _edge_data(c, faces, topology.opposite, (height, width)))(clip_pos)
  candidates = jax.vmap(_candidates)(rast, data)
  overflow = jnp.any(jnp.sum(candidates, axis=-1) > capacity)
  out = _run_with_fallback(capacity, color, data.coef, data.use_h, data.use_v, rast, candidates,
                           overflow)
  return out if batched else out[0]
