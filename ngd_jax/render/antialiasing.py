"""Analytic antialiasing of silhouette edges: the only source of silhouette gradients.

Written from the published algorithm (Laine et al. 2020, "Modular primitives for high-performance
differentiable rendering", section 3.3; NOTES.md), not from its code. For every pair of
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
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ngd_jax.render import rasterizer as rasterize_lib


class Topology(NamedTuple):
  """Edge adjacency of a triangle mesh, static per topology."""
  # i32[F, 3]: across edge i (the edge opposite vertex i), the neighbour face's third vertex;
  # -1 for boundary and non-manifold edges.
  opposite: jax.Array


def build_topology(faces: np.ndarray) -> Topology:
  """Host: edge -> opposite vertex of the neighbour face, once per topology.

  Edges shared by exactly two real faces get the neighbour's opposite vertex; boundary and
  non-manifold edges get -1 (always silhouettes). Degenerate faces (padding (0, 0, 0)) are
  ignored and get -1 everywhere.

  Args:
    faces: int [F, 3].

  Returns:
    Topology with opposite i32[F, 3].
  """
  faces = np.asarray(faces, dtype=np.int64)
  if faces.ndim != 2 or faces.shape[1] != 3:
    raise ValueError(f'build_topology: faces must be [F, 3], got {faces.shape}.')
  num_faces = faces.shape[0]
  real = ((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
          & (faces[:, 0] != faces[:, 2]))
  slot_j, slot_k = np.array([1, 2, 0]), np.array([2, 0, 1])
  vj, vk = faces[:, slot_j], faces[:, slot_k]  # [F, 3] edge i = (vj, vk).
  lo, hi = np.minimum(vj, vk).ravel(), np.maximum(vj, vk).ravel()
  face_of = np.repeat(np.arange(num_faces), 3)
  slot_of = np.tile(np.arange(3), num_faces)
  keep = np.repeat(real, 3)
  lo, hi, face_of, slot_of = lo[keep], hi[keep], face_of[keep], slot_of[keep]
  order = np.lexsort((hi, lo))
  lo, hi, face_of, slot_of = lo[order], hi[order], face_of[order], slot_of[order]
  same = (lo[1:] == lo[:-1]) & (hi[1:] == hi[:-1])
  run_start = np.concatenate([[True], ~same])
  run_id = np.cumsum(run_start) - 1
  run_len = np.bincount(run_id)
  first = np.flatnonzero(run_start)
  pairs = first[run_len == 2]
  opposite = np.full((num_faces, 3), -1, dtype=np.int64)
  fa, sa, fb, sb = face_of[pairs], slot_of[pairs], face_of[pairs + 1], slot_of[pairs + 1]
  opposite[fa, sa] = faces[fb, sb]
  opposite[fb, sb] = faces[fa, sa]
  return Topology(jnp.asarray(opposite, dtype=jnp.int32))


class _EdgeData(NamedTuple):
  """Per-face edge functions and flags, gathered by the pixel pairs."""
  coef: jax.Array  # f32[F, 3, 3]: edge i's (A, B, C), normalized so the face is on the e >= 0 side.
  use_h: jax.Array  # bool[F, 3]: silhouette edge, steep enough for horizontal pairs.
  use_v: jax.Array  # bool[F, 3]: silhouette edge for vertical pairs.


def _edge_data(clip_pos, faces, opposite, resolution) -> _EdgeData:
  """Edge functions e_i(p) = A + B px + C py = (v_j x v_k) . (px, py, 1) in homogeneous (x, y, w).

  Computed once per face (differentiable w.r.t. clip_pos), so each pixel pair gathers 9 numbers.
  """
  v = clip_pos[faces]  # [F, 3, 4]
  x, y, w = v[..., 0], v[..., 1], v[..., 3]
  j, k = np.array([1, 2, 0]), np.array([2, 0, 1])
  a = x[:, j] * y[:, k] - y[:, j] * x[:, k]
  b = y[:, j] * w[:, k] - w[:, j] * y[:, k]
  c = w[:, j] * x[:, k] - x[:, j] * w[:, k]
  det = x[:, 0] * b[:, 0] + y[:, 0] * c[:, 0] + w[:, 0] * a[:, 0]
  s = jnp.where(det > 0, 1.0, -1.0)[:, None]
  coef = jnp.stack([s * a, s * b, s * c], axis=-1)
  o = jax.lax.stop_gradient(clip_pos)[jnp.maximum(opposite, 0)]  # [F, 3, 4]
  side = jax.lax.stop_gradient(coef[..., 0] * o[..., 3] + coef[..., 1] * o[..., 0]
                               + coef[..., 2] * o[..., 1])
  silhouette = (opposite < 0) | (side >= 0)
  # Screen gradient of the edge function per pixel step: (2 B / W, 2 C / H).
  grad_x = jax.lax.stop_gradient(jnp.abs(b)) / resolution[1]
  grad_y = jax.lax.stop_gradient(jnp.abs(c)) / resolution[0]
  return _EdgeData(coef, silhouette & (grad_x >= grad_y), silhouette & (grad_y > grad_x))


def _pair_deltas(color_a, color_b, rast_a, rast_b, centre_a, centre_b, coef, use):
  """Colour changes (delta_a, delta_b) of neighbouring pixels a and b (arrays [..., C])."""
  id_a = jax.lax.stop_gradient(rast_a[..., 3]).astype(jnp.int32) - 1
  id_b = jax.lax.stop_gradient(rast_b[..., 3]).astype(jnp.int32) - 1
  zw_a, zw_b = rast_a[..., 2], rast_b[..., 2]
  a_owns = (id_a >= 0) & ((id_b < 0) | (zw_a <= zw_b))
  tri = jnp.maximum(jnp.where(a_owns, id_a, id_b), 0)
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
  usable = jnp.any(exit_edge & use[tri], axis=-1) & (id_a != id_b)
  t = jnp.clip(t_min, 0.0, 1.0)
  color_own = jnp.where(a_owns[..., None], color_a, color_b)
  color_oth = jnp.where(a_owns[..., None], color_b, color_a)
  d_own = jnp.where((usable & (t < 0.5))[..., None], (0.5 - t)[..., None] * (color_oth - color_own),
                    0.0)
  d_oth = jnp.where((usable & (t >= 0.5))[..., None],
                    (t - 0.5)[..., None] * (color_own - color_oth), 0.0)
  delta_a = jnp.where(a_owns[..., None], d_own, d_oth)
  delta_b = jnp.where(a_owns[..., None], d_oth, d_own)
  return delta_a, delta_b


def _antialias_one(color, rast, clip_pos, faces, opposite):
  height, width = rast.shape[:2]
  fx, fy = rasterize_lib.ndc_centres(height, width)
  centre = jnp.stack(jnp.broadcast_arrays(fx[None, :], fy[:, None]), axis=-1)  # [H, W, 2]
  data = _edge_data(clip_pos, faces, opposite, (height, width))
  # Horizontal pairs (a = column c, b = column c + 1).
  da, db = _pair_deltas(color[:, :-1], color[:, 1:], rast[:, :-1], rast[:, 1:], centre[:, :-1],
                        centre[:, 1:], data.coef, data.use_h)
  out = color.at[:, :-1].add(da).at[:, 1:].add(db)
  # Vertical pairs (a = row r, b = row r + 1).
  da, db = _pair_deltas(color[:-1], color[1:], rast[:-1], rast[1:], centre[:-1], centre[1:],
                        data.coef, data.use_v)
  return out.at[:-1].add(da).at[1:].add(db)


def antialias(color: jax.Array, rast: jax.Array, clip_pos: jax.Array, faces: jax.Array,
              topology: Topology) -> jax.Array:
  """Blends colours across silhouette edges (see module docstring).

  Args:
    color: f32[B, H, W, C] | [H, W, C] shaded image.
    rast: f32[B, H, W, 4] | [H, W, 4] from rasterize with the same clip_pos and faces.
    clip_pos: f32[B, V, 4] | [V, 4].
    faces: i32[F, 3].
    topology: build_topology(faces).

  Returns:
    Antialiased colour, same shape; differentiable w.r.t. color and clip_pos.
  """
  if color.shape[:-1] != rast.shape[:-1] or clip_pos.ndim != rast.ndim - 1:
    raise ValueError(f'antialias: color {color.shape}, rast {rast.shape} and clip_pos '
                     f'{clip_pos.shape} must share the batch and image dimensions.')
  if topology.opposite.shape != faces.shape:
    raise ValueError(f'antialias: topology for {topology.opposite.shape[0]} faces given with '
                     f'{faces.shape[0]} faces; call build_topology(faces) for these faces.')
  faces = jnp.asarray(faces, jnp.int32)
  if color.ndim == 4:
    return jax.vmap(_antialias_one, in_axes=(0, 0, 0, None, None))(
        color, rast, clip_pos, faces, topology.opposite)
  return _antialias_one(color, rast, clip_pos, faces, topology.opposite)
