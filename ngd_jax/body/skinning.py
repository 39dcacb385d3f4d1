"""Garment skinning: weights transferred from the body, and LBS by the baked transforms (docs/method.md section 2).

The garment is skinned with the body's joint transforms only (no pose or shape blend shapes);
`lbs` is smplx_jax's (one implementation for body and garment).
"""

import jax
import numpy as np
from scipy import sparse
from scipy import spatial
from scipy.sparse import csgraph
from scipy.sparse import linalg as sparse_linalg
from smplx_jax import lbs

# Garment x body distance pairs per chunk of the 'exp' rule (float64: 16 MB per [N,Vb] array).
_PAIRS_PER_CHUNK = 2**21
_METHODS = ('exp', 'knn')
_EXACT_BELOW = 1e-5  # Distances (m) below which the expansion's cancellation error is too large.


def lbs_frames(vertices: jax.Array, weights: jax.Array, transforms: jax.Array) -> jax.Array:
  """LBS of one rest mesh to many frames: f32[V,3], f32[V,K], f32[T,K,4,4] -> f32[T,V,3]."""
  return jax.vmap(lbs, in_axes=(None, None, 0))(vertices, weights, transforms)


def _distances(points: np.ndarray, body_rest: np.ndarray, body_sq: np.ndarray) -> np.ndarray:
  """Host: f64[N,Vb] distances by |p|^2 + |b|^2 - 2 p.b (matrix product: 5x faster than differences).

  The expansion loses ~1e-8 m to cancellation at metre scale, which matters only where d_min is
  that small: rows with a body vertex closer than _EXACT_BELOW are recomputed from differences.
  """
  d2 = np.sum(points**2, axis=1)[:, None] + body_sq[None, :] - 2.0 * (points @ body_rest.T)
  dist = np.sqrt(np.maximum(d2, 0.0))
  close = dist.min(axis=1) < _EXACT_BELOW
  if np.any(close):
    dist[close] = np.linalg.norm(points[close][:, None, :] - body_rest[None, :, :], axis=-1)
  return dist


def _exp_rule(dist: np.ndarray, sigma: float) -> np.ndarray:
  """Host: w_j ~ exp(-(d_j - d_min)^2 / (sigma d_min^2)) per row of dist f64[N,Vb] (overwritten), rows normalized.

  A garment vertex on the body (d_min = 0) takes the body vertices at distance 0 (the limit of the
  rule), so no 0/0 appears.
  """
  d_min = dist.min(axis=1, keepdims=True)
  w = np.subtract(dist, d_min, out=dist)
  np.square(w, out=w)
  with np.errstate(divide='ignore', invalid='ignore'):
    w /= sigma * d_min**2
  on_body = d_min[:, 0] == 0.0
  if np.any(on_body):
    w[on_body] = np.where(w[on_body] > 0.0, np.inf, 0.0)  # Was 0/0 = nan at the coincident vertices.
  np.negative(w, out=w)
  np.exp(w, out=w)
  return w / w.sum(axis=1, keepdims=True)


def _knn_rule(garment_rest, body_rest, knn):
  """Host: (indices i64[Vg,k], weights f64[Vg,k]): inverse distance over the knn nearest body
  vertices, normalized; body vertices at distance 0 take all the weight."""
  knn = min(knn, len(body_rest))
  dist, idx = spatial.cKDTree(body_rest).query(garment_rest, k=knn)
  dist, idx = dist.reshape(len(garment_rest), knn), idx.reshape(len(garment_rest), knn)
  on_body = dist[:, :1] <= 1e-12
  w = np.where(on_body, (dist <= 1e-12).astype(np.float64), 1.0 / np.maximum(dist, 1e-12))
  return idx, w / w.sum(axis=1, keepdims=True)


def garment_skinning_weights(
    garment_rest: np.ndarray,
    body_rest: np.ndarray,
    body_weights: np.ndarray,
    method: str = 'exp',
    sigma: float = 0.25,
    knn: int = 8,
) -> np.ndarray:
  """Host: garment skinning weights f32[Vg,K] from the body's (docs/method.md section 2).

  garment_rest f[Vg,3] and body_rest f[Vb,3] in the same rest space; body_weights f[Vb,K].
  method 'exp': w = the exp rule over all body vertices, W = w @ W_body (computed in chunks of
  garment vertices so that 10k x 7k distances fit memory); 'knn': inverse-distance weights over
  the `knn` nearest body vertices. Rows of the result sum to 1.
  """
  if method not in _METHODS:
    raise ValueError(f'garment skinning method {method!r} is unknown; use one of {_METHODS}.')
  garment_rest = np.asarray(garment_rest, np.float64)
  body_rest = np.asarray(body_rest, np.float64)
  body_weights = np.asarray(body_weights, np.float64)
  if garment_rest.ndim != 2 or garment_rest.shape[1] != 3 or body_rest.ndim != 2 or body_rest.shape[1] != 3:
    raise ValueError(f'vertices must be [V,3]; got garment {garment_rest.shape}, body {body_rest.shape}.')
  if body_weights.shape[0] != body_rest.shape[0]:
    raise ValueError(f'body_weights has {body_weights.shape[0]} rows for {body_rest.shape[0]} body vertices.')
  if method == 'knn':
    idx, w = _knn_rule(garment_rest, body_rest, knn)
    weights = np.einsum('gn,gnk->gk', w, body_weights[idx])
  else:
    if sigma <= 0:
      raise ValueError(f'sigma must be > 0 (config.skinning.sigma), got {sigma}.')
    centre = body_rest.mean(axis=0)
    garment_rest, body_rest = garment_rest - centre, body_rest - centre
    body_sq = np.sum(body_rest**2, axis=1)
    chunk = max(1, _PAIRS_PER_CHUNK // len(body_rest))
    weights = np.empty((len(garment_rest), body_weights.shape[1]))
    for start in range(0, len(garment_rest), chunk):
      dist = _distances(garment_rest[start : start + chunk], body_rest, body_sq)
      weights[start : start + chunk] = _exp_rule(dist, sigma) @ body_weights
  return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def diffuse_from_contact(weights: np.ndarray, garment_rest: np.ndarray, faces: np.ndarray, body_rest: np.ndarray,
                         contact_distance: float) -> np.ndarray:
  """Host: garment weights f32[Vg,K] whose loose part is interpolated from where the garment rests on the body.

  The nearest-body rule gives the hem of a long skirt the legs' weights, so every stride tears it
  apart, while cloth hangs from where it touches the body. Vertices within `contact_distance` (m) of the
  garment's smallest distance to the body (a skirt's waist band, nearly all of a fitted shirt) keep
  their weights; the others take the harmonic interpolation of them over the garment's edges
  (uniform graph Laplacian: each is the mean of its neighbours), so a hem follows the pelvis and hips
  that hold the waist. A connected part that touches nothing keeps its own weights. Rows stay convex.
  """
  weights = np.asarray(weights, np.float64)
  distance = spatial.cKDTree(np.asarray(body_rest, np.float64)).query(np.asarray(garment_rest, np.float64))[0]
  pinned = distance <= distance.min() + contact_distance
  num = len(garment_rest)
  edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
  adjacency = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num, num)).tocsr()
  adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
  _, component = csgraph.connected_components(adjacency, directed=False)
  touching = np.zeros(component.max() + 1, bool)
  touching[component[pinned]] = True
  pinned |= ~touching[component]
  free = np.flatnonzero(~pinned)
  if len(free) == 0:
    return weights.astype(np.float32)
  laplacian = (sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency).tocsr()
  fixed = np.flatnonzero(pinned)
  rhs = -(laplacian[free][:, fixed] @ weights[fixed])
  out = weights.copy()
  out[free] = sparse_linalg.splu(laplacian[free][:, free].tocsc()).solve(rhs)
  out = np.clip(out, 0.0, None)
  return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def garment_weights(garment_rest: np.ndarray, faces: np.ndarray, body_rest: np.ndarray, body_weights: np.ndarray,
                    method: str = 'exp', sigma: float = 0.25, knn: int = 8,
                    contact_distance: float = -1.0) -> np.ndarray:
  """Host: the garment's weights f32[Vg,K] by config.skinning's rule: garment_skinning_weights, then, when
  contact_distance >= 0, diffuse_from_contact (the paper: -1, nearest body only)."""
  weights = garment_skinning_weights(garment_rest, body_rest, body_weights, method=method, sigma=sigma, knn=knn)
  if contact_distance < 0:
    return weights
  return diffuse_from_contact(weights, garment_rest, faces, body_rest, contact_distance)
