"""geometry: mesh operators, Poisson solve, Jacobian fields, the cloth's colour over the rest surface, pose code,
garment templates."""

from ngd_jax.geometry.cloth_colour import ClothColour
from ngd_jax.geometry.cloth_colour import unit_box
from ngd_jax.geometry.fields import DynamicJacobianField
from ngd_jax.geometry.fields import dynamic_field_from_config
from ngd_jax.geometry.fields import FieldBounds
from ngd_jax.geometry.fields import fit_field_bounds
from ngd_jax.geometry.fields import init_static_jacobians
from ngd_jax.geometry.fields import normalize_field_inputs
from ngd_jax.geometry.operators import build_operators
from ngd_jax.geometry.operators import DenseInverse
from ngd_jax.geometry.operators import jacobians
from ngd_jax.geometry.operators import PoissonOperators
from ngd_jax.geometry.poisson import attach_dense_inverse
from ngd_jax.geometry.poisson import poisson_solve
from ngd_jax.geometry.poisson import poisson_solve_with_info
from ngd_jax.geometry.poisson import register_factor
from ngd_jax.geometry.poisson import resolve_solver
from ngd_jax.geometry.poisson import SolveInfo
from ngd_jax.geometry.poisson import warn_if_capped
from ngd_jax.geometry.orientation import face_pairs
from ngd_jax.geometry.orientation import FacePairs
from ngd_jax.geometry.orientation import orient_outward
from ngd_jax.geometry.orientation import TemplateError
from ngd_jax.geometry.pose import fit_pose_pca
from ngd_jax.geometry.pose import pose_code
from ngd_jax.geometry.pose import PosePCA
from ngd_jax.geometry.templates import body_template
from ngd_jax.geometry.templates import GARMENTS
from ngd_jax.geometry.templates import load_template
from ngd_jax.geometry.templates import TemplateMesh
