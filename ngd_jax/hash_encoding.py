"""Multiresolution hash-grid encoding (Instant-NGP), pure JAX/Flax, any input dimension.

Used by the dynamic Jacobian field (docs/method.md section 2: position, normal and pose grids) and the
dynamic texture (section 7: (u, v, pose code)). Level l has resolution
floor(base_resolution * growth^l) cells per axis; its (resolution + 1)^D corners are indexed
densely when they fit in the table, otherwise by the Instant-NGP spatial hash
(XOR of coordinate x prime, modulo the table size). Features are d-linearly interpolated over
the 2^D corners of the cell holding the point. All levels share one parameter array with static
per-level offsets, so the lookup is a single gather.
"""

import dataclasses
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Instant-NGP hash primes (Mueller et al. 2022); the first axis is not scrambled.
_PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


class HashGridEncoding(nn.Module):
  """Inputs float [..., D] in [0, 1]^D (clipped) -> float32 [..., num_levels * features].

  Output features are ordered level-major (level 0's features first).
  """

  num_levels: int
  features: int
  log2_table_size: int
  base_resolution: int
  growth: float
  init_scale: float = 1e-4  # Tables start uniform in [-init_scale, init_scale] (Instant-NGP).

  def _levels(self, dim: int) -> tuple[list[int], list[int], list[bool]]:
    """Static per-level resolution, parameter offset and dense flag."""
    if dim > len(_PRIMES):
      raise ValueError(f'HashGridEncoding supports up to {len(_PRIMES)} input dims, got {dim}.')
    table = 2**self.log2_table_size
    resolutions, offsets, dense = [], [], []
    offset = 0
    for level in range(self.num_levels):
      resolution = int(np.floor(self.base_resolution * self.growth**level))
      corners = (resolution + 1)**dim
      resolutions.append(resolution)
      offsets.append(offset)
      dense.append(corners <= table)
      offset += min(corners, table)
    offsets.append(offset)
    return resolutions, offsets, dense

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    dim = inputs.shape[-1]
    resolutions, offsets, dense = self._levels(dim)
    scale = self.init_scale
    table = self.param(
        'table', lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -scale, scale),
        (offsets[-1], self.features))
    points = jnp.clip(inputs.reshape(-1, dim).astype(jnp.float32), 0.0, 1.0)
    corner_offsets = np.array(list(itertools.product((0, 1), repeat=dim)), np.uint32)  # [2^D, D]
    indices, weights = [], []
    for resolution, offset, is_dense in zip(resolutions, offsets[:-1], dense):
      position = points * resolution
      cell = jnp.clip(jnp.floor(position), 0, resolution - 1)
      frac = position - cell  # [N, D] in [0, 1]
      corner = cell.astype(jnp.uint32)[:, None, :] + corner_offsets[None]  # [N, 2^D, D]
      if is_dense:
        strides = np.array([(resolution + 1)**d for d in range(dim)], np.uint32)
        index = jnp.sum(corner * strides, axis=-1)
      else:
        hashed = corner * np.array(_PRIMES[:dim], np.uint32)
        index = hashed[..., 0]
        for d in range(1, dim):
          index = index ^ hashed[..., d]
        index = index & np.uint32(2**self.log2_table_size - 1)
      indices.append(index.astype(jnp.int32) + offset)
      weight = jnp.where(corner_offsets[None] == 1, frac[:, None, :], 1.0 - frac[:, None, :])
      weights.append(jnp.prod(weight, axis=-1))  # [N, 2^D]
    indices = jnp.stack(indices, axis=1)  # [N, L, 2^D]
    weights = jnp.stack(weights, axis=1)
    features = jnp.sum(table[indices] * weights[..., None], axis=2)  # [N, L, F]
    return features.reshape(*inputs.shape[:-1], self.num_levels * self.features)



class HashGridMLP(nn.Module):
  """Base of the modules built from hash grids and an MLP: the dynamic Jacobian field (sizes from
  config.geometry) and the dynamic texture (config.appearance). Field names match the config's."""

  hash_levels: int
  hash_features: int
  hash_log2_table_size: int
  hash_base_resolution: int
  hash_growth: float
  mlp_width: int
  mlp_depth: int

  @classmethod
  def from_config(cls, config):
    """The module with its sizes read from a config section (configs/default.py)."""
    sizes = [f.name for f in dataclasses.fields(HashGridMLP) if f.name not in ('parent', 'name')]
    return cls(**{name: config[name] for name in sizes})

  def encoder(self, name: str | None = None) -> HashGridEncoding:
    """A hash grid with this module's sizes (a submodule: call inside the compact __call__)."""
    return HashGridEncoding(num_levels=self.hash_levels, features=self.hash_features,
                            log2_table_size=self.hash_log2_table_size,
                            base_resolution=self.hash_base_resolution, growth=self.hash_growth, name=name)
