"""Sequence format (docs/design.md section 3): reading with validation, writing."""

from ngd_jax.data.sequence import Camera
from ngd_jax.data.sequence import check_in_view
from ngd_jax.data.sequence import EvalView
from ngd_jax.data.sequence import Frame
from ngd_jax.data.sequence import read_sequence
from ngd_jax.data.sequence import resized_size
from ngd_jax.data.sequence import scale_camera
from ngd_jax.data.sequence import Sequence
from ngd_jax.data.sequence import SequenceError
from ngd_jax.data.sequence import SequenceWriter
from ngd_jax.data.sequence import validate_sequence
from ngd_jax.data.sequence import write_sequence

__all__ = [
    'Camera', 'check_in_view', 'EvalView', 'Frame', 'read_sequence', 'resized_size', 'scale_camera', 'Sequence',
    'SequenceError', 'SequenceWriter', 'validate_sequence', 'write_sequence',
]
