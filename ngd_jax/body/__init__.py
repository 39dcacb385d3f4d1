"""Body models baked to skinning, garment skinning weights and LBS (docs/method.md section 2)."""

from ngd_jax.body.body_data import BodyData
from ngd_jax.body.body_data import BodyDataError
from ngd_jax.body.body_data import read_body_npz
from ngd_jax.body.body_data import validate_body
from ngd_jax.body.body_data import write_body_npz
from ngd_jax.body.distance_grid import DistanceGrid
from ngd_jax.body.distance_grid import fit_distance_grid
from ngd_jax.body.distance_grid import signed_distance
from ngd_jax.body.skinning import diffuse_from_contact
from ngd_jax.body.skinning import garment_skinning_weights
from ngd_jax.body.skinning import garment_weights
from ngd_jax.body.skinning import lbs
from ngd_jax.body.skinning import lbs_frames
from ngd_jax.body.smpl import bake_smpl

__all__ = [
    'BodyData', 'BodyDataError', 'bake_smpl', 'diffuse_from_contact', 'DistanceGrid', 'fit_distance_grid',
    'signed_distance', 'garment_skinning_weights', 'garment_weights', 'lbs', 'lbs_frames', 'read_body_npz',
    'validate_body', 'write_body_npz',
]
