"""Host: what train, eval and export share: the run's inputs, the model, and mesh building.

Everything here runs once per run or once per topology (after a remesh), outside jit.
"""

import dataclasses
import logging
import os

import jax
import ml_collections
import numpy as np

from ngd_jax import body
from ngd_jax import data
from ngd_jax import files
from ngd_jax import frames as frames_lib
from ngd_jax import geometry
from ngd_jax import model as model_lib
from ngd_jax import remesh
from ngd_jax import render


def sequence_path(config: ml_collections.ConfigDict) -> str:
  """data.path, or the synthetic preset generated into the cache (first use) when data.path is ''."""
  if config.data.path:
    return config.data.path
  from ngd_jax.data import synthetic  # pylint: disable=g-import-not-at-top  (MuJoCo only when generating)

  return str(synthetic.ensure_sequence(config.data.synthetic_preset, seed=config.seed))


@dataclasses.dataclass(frozen=True)
class RunInputs:
  """The sequence, its training frames and the garment template (rest space, unpadded)."""

  sequence: data.Sequence
  bank: frames_lib.FrameBank
  template_vertices: np.ndarray  # float64 [V, 3]
  template_faces: np.ndarray  # int32 [F, 3]


# Template shape built from the body for each sequence.json garment class, when template.garment
# is '' (a lower garment may be trousers: set --config.template.garment=trousers then).
_BODY_TEMPLATE_OF_GARMENT = {'upper': 'tshirt', 'outer': 'tshirt', 'lower': 'skirt', 'dress': 'dress'}


def load_template(config: ml_collections.ConfigDict, seq: data.Sequence) -> tuple[np.ndarray, np.ndarray]:
  """The garment template from the sequence's template.obj, or built from the body's rest mesh."""
  if config.template.source == 'sequence':
    if seq.template_path is None:
      raise data.SequenceError(
          seq.path / 'template.obj',
          'template.source is "sequence" but the sequence has no template.obj',
          'add a template in the body rest space, or pass --config.template.source=body',
      )
    return geometry.load_template(seq.template_path)
  garment = config.template.garment or _BODY_TEMPLATE_OF_GARMENT[seq.garment]
  return geometry.body_template(
      seq.body.rest_vertices,
      seq.body.faces,
      seq.body.skinning_weights,
      seq.body.joint_names,
      garment,
      offset=config.template.offset,
      edge_length=config.template.edge_length,
  )


def load_inputs(config: ml_collections.ConfigDict) -> RunInputs:
  path = sequence_path(config)
  logging.info('Reading sequence %s', path)
  seq = data.read_sequence(path)
  vertices, faces = load_template(config, seq)
  bank = frames_lib.load_frames(seq, config)
  logging.info(
      'Sequence: %d training frames at %s, template %d vertices / %d faces',
      bank.num_frames, bank.resolution, len(vertices), len(faces),
  )
  # Rounded to float32, the precision the training state stores, so a resumed run rebuilds the
  # same operators as the run that wrote the checkpoint.
  vertices = np.asarray(vertices, np.float32).astype(np.float64)
  return RunInputs(seq, bank, vertices, np.asarray(faces, np.int32))


def build_mesh(
    rest_vertices: np.ndarray, faces: np.ndarray, seq: data.Sequence, config: ml_collections.ConfigDict
) -> model_lib.GarmentMesh:
  """Host: operators, Cholesky factor, skinning weights and render topology of one topology.

  Capacities round the counts up to remesh.capacity_multiple so that the jitted steps compile
  once per bucket, not once per remesh.
  """
  multiple = config.remesh.capacity_multiple
  vertex_capacity = remesh.capacity(len(rest_vertices), multiple)
  face_capacity = remesh.capacity(len(faces), multiple)
  operators = geometry.build_operators(rest_vertices, faces, vertex_capacity, face_capacity)
  if geometry.resolve_solver(config.geometry.solver) == 'cholesky':
    geometry.register_factor(rest_vertices, faces, operators)
  weights = body.garment_skinning_weights(
      rest_vertices,
      seq.body.rest_vertices,
      seq.body.skinning_weights,
      method=config.skinning.method,
      sigma=config.skinning.sigma,
      knn=config.skinning.knn,
  )
  weights = np.concatenate([weights, np.repeat(weights[:1], vertex_capacity - len(weights), axis=0)])
  topology = render.build_topology(np.asarray(operators.faces))
  return model_lib.GarmentMesh(operators, jax.numpy.asarray(weights, jax.numpy.float32), topology)


def make_model(config: ml_collections.ConfigDict, resolution: tuple[int, int]) -> model_lib.GarmentModel:
  return model_lib.GarmentModel(
      field=geometry.dynamic_field_from_config(config.geometry),
      solver=geometry.resolve_solver(config.geometry.solver),
      cg_tol=config.geometry.cg_tol,
      cg_maxiter=config.geometry.cg_maxiter,
      resolution=tuple(int(n) for n in resolution),
      backend=config.render.backend,
      antialias=config.render.antialias,
  )


def frame_inputs(bank: frames_lib.FrameBank, t, pose_code) -> model_lib.FrameInputs:
  """FrameInputs of training frame t (host arrays; a traced t indexes device arrays)."""
  return model_lib.FrameInputs(bank.transforms[t], bank.world_to_clip[t], bank.world_to_camera[t], pose_code)


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes workdir/config.json atomically (the configuration the run was trained with)."""
  files.write_bytes(os.path.join(workdir, 'config.json'), config.to_json_best_effort(indent=2).encode())
