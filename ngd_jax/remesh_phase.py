"""Host: adaptive remeshing of a run's geometry state (docs/method.md section 6).

The pieces (face scores, refinement, transfer of per-face and per-vertex arrays, capacity buckets)
are in ngd_jax/remesh/; this module applies them to a GeometryState between two epochs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ngd_jax import model as model_lib
from ngd_jax import padding
from ngd_jax import remesh
from ngd_jax import reporting
from ngd_jax import run as run_lib


def remesh_state(run: run_lib.Run, state: run_lib.GeometryState, mesh: model_lib.GarmentMesh,
                 constants: run_lib.Constants, remesh_index: int, epoch: int, reporter: reporting.Reporter
                 ) -> tuple[run_lib.GeometryState, model_lib.GarmentMesh]:
  """Host: refine the template where the epoch's face scores are high, and carry the state over.

  docs/method.md section 6: J^S by inverse-distance blend of the 3 nearest old faces, Adam moments of
  J^S from the nearest old face, skinning weights and the Poisson system rebuilt, and the old
  per-frame J^D kept as the blend target for the next remesh.blend_epochs epochs. The displacement
  baseline carries its offsets, their Adam moments and the per-frame dynamic offsets to a split's
  midpoint as the mean of its two parent vertices.
  """
  config = run.config.remesh
  num_remeshes = len(config.epochs)
  old_vertices, old_faces = run_lib.unpadded_template(state)
  scores = remesh.face_scores(state.scores, len(old_faces))
  selected = remesh.select_faces(scores, remesh.quantile_schedule(remesh_index, config.quantile, config.quantile_step))
  threshold = remesh.threshold_schedule(remesh_index, num_remeshes, config.min_edge_start, config.min_edge_end)
  result = remesh.refine_mesh(old_vertices, old_faces, selected, threshold)
  # The state keeps float32 rest vertices; build from the same values a resumed run will see.
  result = result._replace(vertices=result.vertices.astype(np.float32).astype(np.float64))
  dynamic_on = epoch >= run.config.train.warmup_epochs
  old_dynamic = run_lib.deform_all_frames(run, state, mesh, constants, epoch, True).dynamic if dynamic_on else None
  new_mesh = run.mesh_for(result.vertices, result.faces)
  face_capacity = new_mesh.operators.faces.shape[0]
  vertex_capacity = new_mesh.operators.rest_vertices.shape[0]
  correspondence = remesh.face_correspondence(old_vertices, old_faces, result.vertices, result.faces)
  old_face_capacity = state.faces.shape[0]
  opt_state = jax.device_get(state.opt_state)
  inner = dict(opt_state.inner_states)
  if run.model.parameterization == 'displacement':
    move = functools.partial(remesh.transfer_vertex_leaves, vertex_parent=result.vertex_parent,
                             num_old_vertices=len(old_vertices), vertex_dim=state.rest_vertices.shape[0],
                             vertex_capacity=vertex_capacity)
    static = move(np.asarray(state.params['static']))
    inner['static'] = move(inner['static'])
    blend_target = None
    if old_dynamic is not None:
      blend_target = np.zeros((run.bank.num_frames, vertex_capacity, 3), np.float32)
      blend_target[:, : len(result.vertices)] = remesh.parent_means(
          old_dynamic[:, : len(old_vertices)], result.vertex_parent, axis=1)
  else:
    static = remesh.transfer_face_leaves(
        np.asarray(state.params['static']), correspondence, old_face_capacity, 'blend', face_capacity)
    inner['static'] = remesh.transfer_face_leaves(inner['static'], correspondence, old_face_capacity, 'nearest',
                                                  face_capacity)
    blend_target = None
    if old_dynamic is not None:
      blend_target = np.zeros((run.bank.num_frames, face_capacity, 3, 3), np.float32)
      blend_target[:, : len(result.faces)] = remesh.blend_faces(
          old_dynamic[:, : len(old_faces)], correspondence, axis=1)
  opt_state = opt_state._replace(inner_states=inner)
  solutions = None
  if state.solutions is not None:
    old_solutions = np.asarray(state.solutions)[:, : len(old_vertices)]
    midpoints = old_solutions[:, result.vertex_parent].mean(axis=2)
    solutions = padding.pad_vertex_rows(midpoints, vertex_capacity, axis=1)
  new_state = state._replace(
      params=dict(state.params, static=jnp.asarray(static)),
      opt_state=jax.tree.map(jnp.asarray, opt_state),
      rest_vertices=jnp.copy(new_mesh.operators.rest_vertices),  # Copies: the step donates the state.
      faces=jnp.copy(new_mesh.operators.faces),
      num_vertices=jnp.int32(len(result.vertices)),
      num_faces=jnp.int32(len(result.faces)),
      scores=remesh.init_accumulator(face_capacity),
      blend_target=None if blend_target is None else jnp.asarray(blend_target, jnp.float32),
      blend_start_epoch=jnp.int32(epoch if dynamic_on else run_lib.NO_BLEND_EPOCH),
      solutions=None if solutions is None else jnp.asarray(solutions, jnp.float32),
  )
  reporter.write(f'Remesh {remesh_index + 1}/{num_remeshes} after epoch {epoch}: {result.report}')
  return new_state, new_mesh
