"""Host pieces of the pipeline: the translation anchor, the padded face pairs, where the sequence comes from
and which of its frames train."""

import sys
import types

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ngd_jax import data as data_lib
from ngd_jax import errors
from ngd_jax import frames
from ngd_jax import geometry
from ngd_jax import pipeline


def _hanging_tube(rows=9, around=16, length=0.4, radius=0.15):
  """An open cylinder along y (rest space is y up), top ring at y = 1, counter-clockwise outside."""
  angle = np.linspace(0.0, 2 * np.pi, around, endpoint=False)
  heights = 1.0 - np.linspace(0.0, length, rows)
  vertices = np.stack([np.tile(radius * np.sin(angle), rows), np.repeat(heights, around),
                       np.tile(radius * np.cos(angle), rows)], axis=-1)
  faces = []
  for j in range(rows - 1):
    for i in range(around):
      a, b = j * around + i, j * around + (i + 1) % around
      faces += [(a, a + around, b), (b, a + around, b + around)]
  return vertices, np.array(faces, np.int32)


def _anchor_config(anchor):
  config = ml_collections.ConfigDict({'geometry': {'anchor': anchor, 'anchor_width': 0.03}})
  return config


@pytest.mark.parametrize('anchor, top_moves_by', [('centroid', 0.1), ('top', 0.0)])
def test_a_lengthened_garment_hangs_from_its_top_with_the_top_anchor(anchor, top_moves_by):
  """Jacobians asking for 1.5x the length: the paper's centroid anchor lifts the waist by a quarter
  of the length (0.1 m here); the top anchor keeps it (within 5 mm: the next ring, 5 cm lower,
  still weighs exp(-(5/3)^2)) and the hem drops by half the length."""
  vertices, faces = _hanging_tube()
  weights = pipeline.anchor_weights(vertices, faces, _anchor_config(anchor))
  operators = geometry.build_operators(vertices, faces, anchor_weights=weights)
  stretch = np.diag([1.0, 1.5, 1.0])
  jacobians = stretch @ np.asarray(geometry.jacobians(operators, operators.rest_vertices))
  solved = np.asarray(geometry.poisson_solve(operators, jnp.asarray(jacobians, jnp.float32), 'cholesky'))
  top, hem = vertices[:, 1] == vertices[:, 1].max(), vertices[:, 1] == vertices[:, 1].min()
  np.testing.assert_allclose(solved[top, 1] - vertices[top, 1], top_moves_by, atol=5e-3)
  np.testing.assert_allclose(solved[hem, 1] - vertices[hem, 1], top_moves_by - 0.2, atol=5e-3)


def test_padded_face_pairs_hold_every_shared_edge_once():
  vertices, faces = _hanging_tube(rows=3, around=6)
  pairs = np.asarray(pipeline.padded_face_pairs(faces, face_capacity=40))
  assert pairs.shape == (80, 2)
  real = pairs[pairs[:, 0] != pairs[:, 1]]
  # Interior edges of a tube of 2 bands x 6 quads: 6 diagonals x 2 bands + 6 verticals x 2 + 6 between bands.
  assert len(real) == 30 and len({tuple(sorted(p)) for p in real}) == 30
  assert np.all(pairs[len(real):] == 0)


def _data(first_frame=0, num_frames=-1, frame_stride=1):
  return ml_collections.ConfigDict(dict(first_frame=first_frame, num_frames=num_frames, frame_stride=frame_stride))


def _one_line_exit(capsys, fail):
  """errors.run_program(fail): one line naming the problem on stderr, exit status 2."""
  with pytest.raises(SystemExit) as exit_info:
    errors.run_program(lambda argv: fail(), 'ngd_jax', argv=['ngd_jax'])
  stderr = capsys.readouterr().err
  assert exit_info.value.code == 2 and len(stderr.strip().splitlines()) == 1 and 'Traceback' not in stderr
  return stderr.strip()


def test_training_indices_select_inside_the_sequence():
  np.testing.assert_array_equal(frames.training_indices(10, _data(2, 3, 2)), [2, 4, 6])
  np.testing.assert_array_equal(frames.training_indices(10, _data(7)), [7, 8, 9])
  np.testing.assert_array_equal(frames.training_indices(10, _data(1, 3, 3)), [1, 4, 7])


@pytest.mark.parametrize('data, message', [
    (_data(first_frame=10), "ngd_jax: error: --config.data.first_frame=10 is outside the sequence's 4 frames. "
                            'Fix: pick a first frame in [0, 3].'),
    (_data(first_frame=-1), "ngd_jax: error: --config.data.first_frame=-1 is outside the sequence's 4 frames. "
                            'Fix: pick a first frame in [0, 3].'),
    (_data(first_frame=1, num_frames=2, frame_stride=3),
     'ngd_jax: error: --config.data.num_frames=2: the sequence has 4 frames, of which data.first_frame=1 and '
     'data.frame_stride=3 select 1. Fix: ask for at most 1, or -1 for all of them.'),
])
def test_frames_outside_the_sequence_are_one_line(capsys, data, message):
  assert _one_line_exit(capsys, lambda: frames.training_indices(4, data)) == message


def test_no_sequence_is_an_error_not_generated_data(capsys):
  config = ml_collections.ConfigDict({'seed': 0, 'data': {'path': '', 'synthetic_preset': ''}})
  assert _one_line_exit(capsys, lambda: pipeline.sequence_path(config)) == (
      'ngd_jax: error: data.path is empty and data.synthetic_preset is empty: no input sequence. Fix: pass '
      '--config.data.path=DIR (a sequence folder), or --config.data.synthetic_preset=demo for generated data.')


def test_a_named_preset_is_generated_and_logged(monkeypatch, caplog):
  made = []
  synthetic = types.SimpleNamespace(ensure_sequence=lambda preset, seed: made.append((preset, seed)) or '/cache/x')
  monkeypatch.setitem(sys.modules, 'ngd_jax.data.synthetic', synthetic)  # Generating would take minutes.
  monkeypatch.setattr(data_lib, 'synthetic', synthetic, raising=False)
  config = ml_collections.ConfigDict({'seed': 3, 'data': {'path': '', 'synthetic_preset': 'tiny'}})
  assert pipeline.sequence_path(config) == '/cache/x' and made == [('tiny', 3)]
  assert "synthetic preset 'tiny' (seed 3) at /cache/x" in caplog.text
  config.data.path = '/my/sequence'
  assert pipeline.sequence_path(config) == '/my/sequence' and len(made) == 1
