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
from ngd_jax import config_files
from ngd_jax import configuration
from ngd_jax import data
from ngd_jax import files
from ngd_jax import frames as frames_lib
from ngd_jax import geometry
from ngd_jax import meshes
from ngd_jax import model as model_lib
from ngd_jax import padding
from ngd_jax import render


def sequence_path(config: ml_collections.ConfigDict) -> str:
  """data.path, or the synthetic preset generated into the cache (first use) when data.path is ''.

  Only a config that names a preset generates one: a run whose data.path was lost must not train or
  evaluate on made-up data.
  """
  if config.data.path:
    return config.data.path
  if not config.data.synthetic_preset:
    raise configuration.ConfigError(
        'data.path is empty and data.synthetic_preset is empty: no input sequence. Fix: pass '
        '--config.data.path=DIR (a sequence folder), or --config.data.synthetic_preset=demo for generated data.')
  from ngd_jax.data import synthetic  # pylint: disable=g-import-not-at-top  (MuJoCo only when generating)

  path = synthetic.ensure_sequence(config.data.synthetic_preset, seed=config.seed)
  logging.warning('data.path is empty: using the synthetic preset %r (seed %d) at %s.',
                  config.data.synthetic_preset, config.seed, path)
  return str(path)


@dataclasses.dataclass(frozen=True)
class RunInputs:
  """The sequence, its training frames and the garment template (rest space, unpadded)."""

  sequence: data.Sequence
  bank: frames_lib.FrameBank
  template_vertices: np.ndarray  # float64 [V, 3]
  template_faces: np.ndarray  # int32 [F, 3]
  body_distance: body.DistanceGrid | None  # Rest body's signed distance (None: penetration term off).


# Template shape built from the body for each sequence.json garment class, when template.garment
# is '' (a lower garment may be trousers: set --config.template.garment=trousers then).
_BODY_TEMPLATE_OF_GARMENT = {'upper': 'tshirt', 'outer': 'tshirt', 'lower': 'skirt', 'dress': 'dress'}


def load_template(config: ml_collections.ConfigDict, seq: data.Sequence) -> tuple[np.ndarray, np.ndarray]:
  """The garment template from the sequence's template.obj, or built from the body's rest mesh.

  Either way its faces are wound with normals away from the body (geometry.orient_outward).
  """
  if config.template.source == 'sequence':
    if seq.template_path is None:
      raise data.SequenceError(
          seq.path / 'template.obj',
          'template.source is "sequence" but the sequence has no template.obj',
          'add a template in the body rest space, or pass --config.template.source=body',
      )
    vertices, faces = geometry.load_template(seq.template_path)
    # The renderer is one-sided: a template wound towards the body would be fitted inside out.
    oriented = geometry.orient_outward(vertices, faces, seq.body.rest_vertices, seq.body.faces,
                                       str(seq.template_path))
    return geometry.TemplateMesh(vertices, oriented.faces)
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
  return RunInputs(seq, bank, vertices, np.asarray(faces, np.int32), body_distance_grid(seq, vertices, config))


def body_distance_grid(seq: data.Sequence, template_vertices: np.ndarray,
                       config: ml_collections.ConfigDict) -> body.DistanceGrid | None:
  """Host: the rest body's signed distance around the template (loss.penetration_*), or None when off.

  The grid spans the template's box grown by loss.penetration_grid_margin on every side: room
  for a template that the fit lengthens or widens; beyond it a point counts as outside.
  """
  if config.loss.penetration_weight <= 0:
    return None
  margin = config.loss.penetration_grid_margin
  return body.fit_distance_grid(seq.body.rest_vertices, seq.body.faces, template_vertices.min(axis=0) - margin,
                                template_vertices.max(axis=0) + margin, config.loss.penetration_grid_resolution)


def anchor_weights(rest_vertices: np.ndarray, faces: np.ndarray,
                   config: ml_collections.ConfigDict) -> np.ndarray | None:
  """Host: weights [V] of the translation anchor (config.geometry.anchor), None for the centroid.

  'top': each vertex's share of the surface area times exp(-(h / width)^2), h its depth below the
  template's highest point (rest space, y up): garments hang from their top (a skirt's waistband,
  a dress's neckline, a shirt's shoulders), so that band stays in place while a template shorter
  or longer than the garment grows or shrinks below it. Area weighting makes the anchor a surface
  integral, which a remesh does not move. With the paper's vertex centroid ('centroid'), the
  waist of a 0.7-length skirt template rose 17 cm when the fit lengthened it (issue 11).
  """
  if config.geometry.anchor == 'centroid':
    return None
  vertices = np.asarray(rest_vertices, np.float64)
  vertex_area = meshes.vertex_areas(vertices, faces)
  below_top = vertices[:, 1].max() - vertices[:, 1]
  return vertex_area * np.exp(-((below_top / config.geometry.anchor_width) ** 2))


def build_mesh(
    rest_vertices: np.ndarray, faces: np.ndarray, inputs: RunInputs, config: ml_collections.ConfigDict
) -> model_lib.GarmentMesh:
  """Host: operators, Cholesky factor, skinning weights and render topology of one topology.

  Capacities round the counts up to remesh.capacity_multiple so that the jitted steps compile
  once per bucket, not once per remesh.
  """
  multiple = config.remesh.capacity_multiple
  vertex_capacity = padding.capacity(len(rest_vertices), multiple)
  face_capacity = padding.capacity(len(faces), multiple)
  operators = geometry.build_operators(rest_vertices, faces, vertex_capacity, face_capacity,
                                       anchor_weights(rest_vertices, faces, config))
  solver = geometry.resolve_solver(config.geometry.solver, vertex_capacity, config.geometry.dense_max_vertices)
  if solver == 'cholesky':
    geometry.register_factor(rest_vertices, faces, operators)
  elif solver == 'dense':
    operators = geometry.attach_dense_inverse(rest_vertices, faces, operators)
  weights = padding.pad_vertex_rows(skinning_weights(rest_vertices, faces, inputs, config), vertex_capacity)
  topology = render.build_topology(np.asarray(operators.faces))
  return model_lib.GarmentMesh(operators, jax.numpy.asarray(weights, jax.numpy.float32), topology,
                               padded_face_pairs(faces, face_capacity), inputs.body_distance)


def skinning_weights(rest_vertices: np.ndarray, faces: np.ndarray, inputs: RunInputs,
                     config: ml_collections.ConfigDict) -> np.ndarray:
  """Host: the garment's LBS weights [V, K] from the sequence's body (config.skinning)."""
  body_data = inputs.sequence.body
  skinning = config.skinning
  return body.garment_weights(rest_vertices, faces, body_data.rest_vertices, body_data.skinning_weights,
                              method=skinning.method, sigma=skinning.sigma, knn=skinning.knn,
                              contact_distance=skinning.contact_distance)


def padded_face_pairs(faces: np.ndarray, face_capacity: int) -> jax.Array:
  """Host: int32 [2 Fc, 2] faces sharing an edge, padded with (0, 0) (a pair that adds nothing).

  A manifold mesh has at most 3 F / 2 interior edges, so 2 Fc rows hold every pair of any mesh of
  the capacity bucket (one compile per bucket).
  """
  pairs = geometry.face_pairs(faces)
  return jax.numpy.asarray(padding.pad_rows(np.stack([pairs.first, pairs.second], axis=1).astype(np.int32),
                                            2 * face_capacity))


def make_model(config: ml_collections.ConfigDict, resolution: tuple[int, int]) -> model_lib.GarmentModel:
  return model_lib.GarmentModel(
      field=geometry.dynamic_field_from_config(config.geometry),
      solver=config.geometry.solver,
      cg_tol=config.geometry.cg_tol,
      cg_maxiter=config.geometry.cg_maxiter,
      cg_warm_start=config.geometry.cg_warm_start,
      resolution=tuple(int(n) for n in resolution),
      backend=config.render.backend,
      antialias=config.render.antialias,
      parameterization=config.geometry.parameterization,
      colour_field=(geometry.ClothColour.from_config(config.cloth_colour) if config.loss.photometric_weight > 0
                    else None),
  )


def frame_inputs(bank: frames_lib.FrameBank, t, pose_code) -> model_lib.FrameInputs:
  """FrameInputs of training frame t (host arrays; a traced t indexes device arrays)."""
  return model_lib.FrameInputs(bank.transforms[t], bank.world_to_clip[t], bank.world_to_camera[t], pose_code)


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes workdir/config.json atomically (the configuration the run was trained with)."""
  files.write_bytes(os.path.join(workdir, config_files.RUN_CONFIG), config.to_json_best_effort(indent=2).encode())
