"""smplx_jax: a self-contained JAX SMPL layer (loads the official .pkl without chumpy, or .npz)."""

from smplx_jax import testing
from smplx_jax.io import load_model_arrays
from smplx_jax.io import ModelFileError
from smplx_jax.smpl import forward
from smplx_jax.smpl import kinematic_chain
from smplx_jax.smpl import lbs
from smplx_jax.smpl import rodrigues
from smplx_jax.smpl import shape_blend
from smplx_jax.smpl import SMPL
from smplx_jax.smpl import SMPL_JOINT_NAMES
from smplx_jax.smpl import SMPLOutput

__all__ = [
    'forward', 'kinematic_chain', 'lbs', 'load_model_arrays', 'ModelFileError', 'rodrigues',
    'shape_blend', 'SMPL', 'SMPL_JOINT_NAMES', 'SMPLOutput', 'testing',
]
