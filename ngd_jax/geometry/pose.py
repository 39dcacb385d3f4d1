"""Pose code: PCA of the per-frame pose vectors over the training frames (docs/method.md sections 2, 7).

Top n principal directions, no whitening. Stored as arrays (a pytree) so it is checkpointed
with the model and evaluation reproduces the training codes.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class PosePCA(NamedTuple):
  """mean float32 [P]; components float32 [n, P] (orthonormal rows, zero rows if rank < n)."""

  mean: jax.Array
  components: jax.Array


def fit_pose_pca(poses: np.ndarray, num_components: int) -> PosePCA:
  """Host: PCA of training poses [T, P] by SVD of the centred matrix.

  Signs are fixed (largest-magnitude entry of each component positive) so that refits give the
  same codes. With fewer independent frames than components the missing components are zero rows,
  so the code keeps its configured length.
  """
  poses = np.asarray(poses, np.float64)
  if poses.ndim != 2 or len(poses) == 0 or not np.all(np.isfinite(poses)):
    raise ValueError(f'poses must be a finite [T, P] array with T > 0, got shape {poses.shape}.')
  if not 0 < num_components <= poses.shape[1]:
    raise ValueError(
        f'num_components must be in [1, {poses.shape[1]}] (pose size), got {num_components}.')
  mean = poses.mean(axis=0)
  _, singular, vt = np.linalg.svd(poses - mean, full_matrices=False)
  rank = int(np.sum(singular > 1e-10 * max(singular.max(initial=0.0), 1e-30)))
  components = np.zeros((num_components, poses.shape[1]))
  used = min(rank, num_components)
  components[:used] = vt[:used]
  pivot = np.argmax(np.abs(components), axis=1)
  signs = np.sign(components[np.arange(num_components), pivot])
  components *= np.where(signs == 0, 1.0, signs)[:, None]
  return PosePCA(jnp.asarray(mean, jnp.float32), jnp.asarray(components, jnp.float32))


def pose_code(pca: PosePCA, pose: jax.Array) -> jax.Array:
  """Projects pose [..., P] onto the components: float32 [..., n]."""
  return (pose - pca.mean) @ pca.components.T
