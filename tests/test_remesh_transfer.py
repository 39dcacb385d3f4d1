"""Tests of state transfer to the refined mesh (docs/method.md section 6), including the Poisson shape check."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_remesh_refine import synthetic_scores
from test_remesh_refine import tube_mesh

from ngd_jax import geometry
from ngd_jax import padding
from ngd_jax import remesh


def bend(vertices):
  """A smooth non-rigid map: widen with height, then bend the tube around an axis parallel to y."""
  x, y, z = vertices[:, 0] * (1.0 + 0.3 * vertices[:, 2]), vertices[:, 1], vertices[:, 2]
  radius, angle = 0.6, 1.5 * vertices[:, 2]
  return np.stack([radius - (radius - x) * np.cos(angle), y, (radius - x) * np.sin(angle)], axis=-1)


def _refined_tube(flip=True):
  vertices, faces = tube_mesh()
  selected = remesh.select_faces(synthetic_scores(vertices, faces), 0.85)
  result = remesh.refine_mesh(vertices, faces, selected, min_edge_length=1e-4, flip=flip)
  return vertices, faces, result


def _centred(x):
  return x - x.mean(axis=0)


def test_correspondence_matches_brute_force_nearest_and_inverse_distance():
  vertices, faces, result = _refined_tube()
  correspondence = remesh.face_correspondence(vertices, faces, result.vertices, result.faces)
  old_centre = vertices[faces].mean(axis=1)
  new_centre = result.vertices[result.faces].mean(axis=1)
  values = np.random.default_rng(0).normal(size=(len(faces), 3, 3))
  blended = remesh.blend_faces(values, correspondence)
  nearest = remesh.nearest_faces(values, correspondence)
  for f in range(len(result.faces)):
    distance = np.linalg.norm(old_centre - new_centre[f], axis=1)
    order = np.argsort(distance)[:3]
    np.testing.assert_array_equal(nearest[f], values[order[0]])
    if distance[order[0]] < 1e-12:
      np.testing.assert_allclose(blended[f], values[order[0]], atol=1e-12)
    else:
      weight = (1.0 / distance[order]) / np.sum(1.0 / distance[order])
      np.testing.assert_allclose(blended[f], np.einsum('k,kij->ij', weight, values[order]),
                                 atol=1e-12)
  np.testing.assert_allclose(correspondence.weight.sum(axis=1), 1.0)


def test_identity_remesh_copies_values_and_blend_keeps_constants():
  vertices, faces = tube_mesh()
  same = remesh.face_correspondence(vertices, faces, vertices, faces)
  values = np.random.default_rng(1).normal(size=(4, len(faces), 2)).astype(np.float32)
  np.testing.assert_array_equal(remesh.blend_faces(values, same, axis=1), values)
  _, _, result = _refined_tube()
  correspondence = remesh.face_correspondence(vertices, faces, result.vertices, result.faces)
  constant = np.broadcast_to(np.arange(9.0).reshape(3, 3), (len(faces), 3, 3))
  np.testing.assert_allclose(remesh.blend_faces(constant, correspondence),
                             np.broadcast_to(constant[0], (len(result.faces), 3, 3)), atol=1e-12)


def test_per_frame_jd_is_blended_along_the_face_axis():
  vertices, faces, result = _refined_tube()
  correspondence = remesh.face_correspondence(vertices, faces, result.vertices, result.faces)
  per_frame = np.random.default_rng(2).normal(size=(3, len(faces), 3, 3))
  transferred = remesh.blend_faces(per_frame, correspondence, axis=1)
  assert transferred.shape == (3, len(result.faces), 3, 3)
  for t in range(3):
    np.testing.assert_allclose(transferred[t], remesh.blend_faces(per_frame[t], correspondence))


def test_transferred_static_jacobians_reproduce_the_deformed_shape():
  """Poisson of the transferred J^S reproduces the pre-remesh deformed (canonical) shape.

  Reference: the old piecewise-linear surface, i.e. old vertices as they were and each midpoint
  halfway between its deformed edge ends. Tolerance: max error 2e-3 x the bounding-box diagonal
  (0.87 m); measured 0.94e-3 with the inverse-distance blend, 0.69e-3 nearest-face, 0.8e-6 for
  the unremeshed solve. Without transfer (the new template's own Jacobians) it is 0.25.
  """
  vertices, faces, result = _refined_tube()
  deformed = bend(vertices)
  old_operators = geometry.build_operators(vertices, faces)
  old_jacobians = np.asarray(geometry.jacobians(old_operators, jnp.asarray(deformed, jnp.float32)))
  new_operators = geometry.build_operators(result.vertices, result.faces)
  correspondence = remesh.face_correspondence(vertices, faces, result.vertices, result.faces)
  reference = 0.5 * (deformed[result.vertex_parent[:, 0]] + deformed[result.vertex_parent[:, 1]])
  diagonal = np.linalg.norm(deformed.max(axis=0) - deformed.min(axis=0))

  def error(jacobians_):
    solved = geometry.poisson_solve(new_operators, jnp.asarray(jacobians_, jnp.float32), 'cholesky')
    return np.abs(_centred(np.asarray(solved, np.float64)) - _centred(reference)).max() / diagonal

  assert error(remesh.blend_faces(old_jacobians, correspondence)) < 2e-3
  assert error(remesh.nearest_faces(old_jacobians, correspondence)) < 2e-3
  template = geometry.jacobians(new_operators, jnp.asarray(result.vertices, jnp.float32))
  assert error(template) > 0.05


def test_adam_state_transfer_over_padded_pytree():
  vertices, faces, result = _refined_tube()
  correspondence = remesh.face_correspondence(vertices, faces, result.vertices, result.faces)
  old_capacity = padding.capacity(len(faces), 256)
  new_capacity = padding.capacity(len(result.faces), 256)
  assert new_capacity > old_capacity  # The refined tube outgrows its bucket.
  static = jnp.zeros((old_capacity, 3, 3))
  params = {'static': static, 'bias': jnp.zeros((7,))}
  state = optax.adam(1e-3).init(params)
  rng = np.random.default_rng(3)
  mu = rng.normal(size=(old_capacity, 3, 3)).astype(np.float32)
  nu = rng.random((old_capacity, 3, 3)).astype(np.float32)
  adam = state[0]._replace(count=jnp.array(5, jnp.int32), mu={'static': mu, 'bias': jnp.ones(7)},
                           nu={'static': nu, 'bias': jnp.ones(7)})
  state = (adam,) + tuple(state[1:])
  moved = remesh.transfer_face_leaves(state, correspondence, face_dim=old_capacity,
                                      method='nearest', face_capacity=new_capacity)
  nearest = correspondence.index[:, 0]
  assert int(moved[0].count) == 5
  np.testing.assert_array_equal(moved[0].mu['bias'], np.ones(7))
  for old, new in ((mu, moved[0].mu['static']), (nu, moved[0].nu['static'])):
    assert new.shape == (new_capacity, 3, 3)
    np.testing.assert_array_equal(new[:len(result.faces)], old[nearest])
    np.testing.assert_array_equal(new[len(result.faces):], 0.0)
  blended = remesh.transfer_face_leaves({'static': mu}, correspondence, old_capacity, 'blend')
  np.testing.assert_allclose(blended['static'],
                             remesh.blend_faces(mu[:len(faces)], correspondence), rtol=1e-6)
  with pytest.raises(ValueError, match='method'):
    remesh.transfer_face_leaves(state, correspondence, old_capacity, 'linear')
  with pytest.raises(ValueError, match='unpad'):
    remesh.blend_faces(mu, correspondence)


def test_blend_weight_ramps_from_old_field_to_network():
  weights = [remesh.blend_weight(e, 10) for e in (0, 5, 10, 20)]
  np.testing.assert_allclose(weights, [0.0, 0.5, 1.0, 1.0])
  jitted = jax.jit(remesh.blend_weight, static_argnums=1)
  assert float(jitted(jnp.array(3), 10)) == pytest.approx(0.3)
  assert float(remesh.blend_weight(0, 0)) == 1.0


def test_vertex_transfer_gives_parent_means_over_padded_pytree():
  """Displacement baseline: offsets and their Adam moments on a split's midpoint = the mean of its
  two parent vertices' values; old vertices keep theirs exactly; padding rows get `fill`."""
  vertices, faces, result = _refined_tube()
  num_split = len(result.vertices) - len(vertices)
  assert num_split > 0
  old_capacity = padding.capacity(len(vertices), 256)
  new_capacity = padding.capacity(len(result.vertices), 256)
  rng = np.random.default_rng(4)
  offsets = rng.normal(size=(old_capacity, 3)).astype(np.float32)
  adam = optax.adam(1e-3).init({'static': jnp.zeros((old_capacity, 3))})[0]
  adam = adam._replace(count=jnp.array(7, jnp.int32), mu={'static': offsets}, nu={'static': offsets**2})
  moved = remesh.transfer_vertex_leaves({'static': offsets, 'adam': adam}, result.vertex_parent, len(vertices),
                                        old_capacity, new_capacity)
  a, b = result.vertex_parent[len(vertices):, 0], result.vertex_parent[len(vertices):, 1]
  assert np.all(a != b)  # Every new vertex is a split midpoint.
  np.testing.assert_array_equal(result.vertices[len(vertices):], 0.5 * (vertices[a] + vertices[b]))
  for old, new in ((offsets, moved['static']), (offsets, moved['adam'].mu['static']),
                   (offsets**2, moved['adam'].nu['static'])):
    assert new.shape == (new_capacity, 3) and new.dtype == np.float32
    np.testing.assert_array_equal(new[: len(vertices)], old[: len(vertices)])
    np.testing.assert_allclose(new[len(vertices): len(result.vertices)], 0.5 * (old[a] + old[b]), rtol=1e-6)
    np.testing.assert_array_equal(new[len(result.vertices):], 0.0)
  assert int(moved['adam'].count) == 7
  # Per-frame values along axis 1 (the dynamic offsets kept as the blend target).
  per_frame = rng.normal(size=(4, len(vertices), 3))
  means = remesh.parent_means(per_frame, result.vertex_parent, axis=1)
  assert means.shape == (4, len(result.vertices), 3)
  np.testing.assert_allclose(means[:, len(vertices):], 0.5 * (per_frame[:, a] + per_frame[:, b]), rtol=1e-12)
  with pytest.raises(ValueError, match='vertex_parent'):
    remesh.parent_means(per_frame[:, :3], result.vertex_parent, axis=1)
