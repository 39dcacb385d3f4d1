"""Adaptive remeshing (docs/method.md section 6).

Face scores inside the training step, host-side refinement, state transfer (the capacity buckets
they pad to are ngd_jax/padding.py).
"""

from ngd_jax.remesh.refine import MeshCheck
from ngd_jax.remesh.refine import RemeshReport
from ngd_jax.remesh.refine import RemeshResult
from ngd_jax.remesh.refine import check_mesh
from ngd_jax.remesh.refine import quantile_schedule
from ngd_jax.remesh.refine import refine_mesh
from ngd_jax.remesh.refine import select_faces
from ngd_jax.remesh.refine import threshold_schedule
from ngd_jax.remesh.refine import triangle_quality
from ngd_jax.remesh.refine import valence_deviation
from ngd_jax.remesh.scores import FaceScoreAccumulator
from ngd_jax.remesh.scores import FrameFaceStats
from ngd_jax.remesh.scores import accumulate
from ngd_jax.remesh.scores import face_pixel_counts
from ngd_jax.remesh.scores import face_scores
from ngd_jax.remesh.scores import frame_face_stats
from ngd_jax.remesh.scores import init_accumulator
from ngd_jax.remesh.transfer import FaceCorrespondence
from ngd_jax.remesh.transfer import blend_faces
from ngd_jax.remesh.transfer import blend_weight
from ngd_jax.remesh.transfer import face_correspondence
from ngd_jax.remesh.transfer import nearest_faces
from ngd_jax.remesh.transfer import parent_means
from ngd_jax.remesh.transfer import transfer_face_leaves
from ngd_jax.remesh.transfer import transfer_vertex_leaves
