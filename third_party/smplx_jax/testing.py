"""Host: random model files with SMPL's exact array shapes, for tests (never real SMPL data).

The arrays have SMPL's layout and a plausible structure (rows of J_regressor and weights are
convex combinations, skinning follows joint proximity, the kinematic tree is SMPL's), so the
real loading path and the forward pass are exercised without the licensed model.
"""

import pathlib

import numpy as np

# SMPL's kinematic tree (joint k's parent); the structure is public, the model data is not.
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NUM_VERTICES = 6890
NUM_FACES = 13776


def random_smpl_arrays(seed: int = 0, num_betas: int = 10) -> dict[str, np.ndarray]:
  """Host: float64/uint32 arrays under the official SMPL keys and shapes."""
  rng = np.random.default_rng(seed)
  num_joints = len(SMPL_PARENTS)
  v_template = rng.normal(size=(NUM_VERTICES, 3)) * np.array([0.15, 0.4, 0.1]) + np.array([0.0, 0.3, 0.0])
  # Three distinct vertices per face: a, a + o1, a + o2 (mod V) with 0 < o1 < V/2 <= o2 < V.
  first = rng.integers(0, NUM_VERTICES, NUM_FACES)
  offsets = np.stack([rng.integers(1, NUM_VERTICES // 2, NUM_FACES),
                      rng.integers(NUM_VERTICES // 2, NUM_VERTICES, NUM_FACES)], axis=1)
  faces = np.concatenate([first[:, None], (first[:, None] + offsets) % NUM_VERTICES], axis=1).astype(np.uint32)
  j_regressor = np.zeros((num_joints, NUM_VERTICES))
  for k in range(num_joints):
    j_regressor[k, rng.choice(NUM_VERTICES, 8, replace=False)] = rng.dirichlet(np.ones(8))
  joints = j_regressor @ v_template
  # Each vertex is skinned to its 4 nearest joints, weights falling off with distance.
  dist = np.linalg.norm(v_template[:, None] - joints[None], axis=-1)
  nearest = np.argsort(dist, axis=1)[:, :4]
  weights = np.zeros((NUM_VERTICES, num_joints))
  near_dist = np.take_along_axis(dist, nearest, axis=1)
  np.put_along_axis(weights, nearest, np.exp(-near_dist / 0.1), axis=1)
  weights /= weights.sum(axis=1, keepdims=True)
  kintree = np.stack([np.array(SMPL_PARENTS, np.int64) % 2**32, np.arange(num_joints)]).astype(np.uint32)
  return {
      'v_template': v_template,
      'f': faces,
      'shapedirs': rng.normal(size=(NUM_VERTICES, 3, num_betas)) * 0.01,
      'posedirs': rng.normal(size=(NUM_VERTICES, 3, 9 * (num_joints - 1))) * 0.005,
      'J_regressor': j_regressor,
      'weights': weights,
      'kintree_table': kintree,
  }


def write_random_smpl(path: str | pathlib.Path, seed: int = 0) -> dict[str, np.ndarray]:
  """Host: writes random_smpl_arrays(seed) to the .npz `path`; returns the arrays."""
  arrays = random_smpl_arrays(seed)
  np.savez(path, **arrays)
  return arrays
