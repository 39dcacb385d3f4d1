"""Tests of capacity buckets: padding convention, padded Poisson solves, compile counting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_remesh_refine import tube_mesh
from test_remesh_transfer import bend

from ngd_jax import compiles
from ngd_jax import geometry
from ngd_jax import remesh


def test_capacity_rounds_up_to_the_multiple():
  counts = (0, 1, 1024, 1025, 4400)
  assert [remesh.capacity(n, 1024) for n in counts] == [1024, 1024, 1024, 2048, 5120]
  with pytest.raises(ValueError, match='multiple'):
    remesh.capacity(5, 0)
  with pytest.raises(ValueError, match='negative'):
    remesh.capacity(-1, 8)


def test_pad_mesh_follows_the_workspace_convention_and_unpads():
  vertices, faces = tube_mesh(8, 3)
  padded = remesh.pad_mesh(vertices, faces, vertex_capacity=32, face_capacity=40)
  assert padded.vertices.shape == (32, 3) and padded.faces.shape == (40, 3)
  assert padded.faces.dtype == np.int32
  np.testing.assert_array_equal(padded.vertices[len(vertices):],
                                np.broadcast_to(vertices[0], (32 - len(vertices), 3)))
  np.testing.assert_array_equal(padded.faces[len(faces):], 0)
  np.testing.assert_array_equal(padded.vertex_mask, np.arange(32) < len(vertices))
  np.testing.assert_array_equal(padded.face_mask, np.arange(40) < len(faces))
  np.testing.assert_array_equal(remesh.unpad(padded.faces, len(faces)), faces)
  np.testing.assert_array_equal(remesh.unpad(padded.vertices, len(vertices)), vertices)
  jacobians = np.random.default_rng(0).normal(size=(len(faces), 3, 3))
  padded_jacobians = remesh.pad_face_array(jacobians, 40, fill=1.0)
  np.testing.assert_array_equal(padded_jacobians[len(faces):], 1.0)
  np.testing.assert_array_equal(remesh.unpad(padded_jacobians, len(faces)), jacobians)
  with pytest.raises(ValueError, match='does not fit'):
    remesh.pad_mesh(vertices, faces, vertex_capacity=4, face_capacity=40)
  with pytest.raises(ValueError, match='does not fit'):
    remesh.pad_face_array(jacobians, 3)


def test_padded_mesh_gives_the_same_poisson_solve():
  vertices, faces = tube_mesh()
  vertex_capacity = remesh.capacity(len(vertices), 128)
  face_capacity = remesh.capacity(len(faces), 128)
  deformed = jnp.asarray(bend(vertices), jnp.float32)
  plain = geometry.build_operators(vertices, faces)
  padded = geometry.build_operators(vertices, faces, vertex_capacity, face_capacity)
  mesh = remesh.pad_mesh(vertices, faces, vertex_capacity, face_capacity)
  # The geometry module pads exactly as pad_mesh does.
  np.testing.assert_array_equal(padded.faces, mesh.faces)
  np.testing.assert_allclose(padded.rest_vertices, mesh.vertices, rtol=1e-7)
  np.testing.assert_array_equal(padded.face_mask, mesh.face_mask)
  jacobians = geometry.jacobians(plain, deformed)
  padded_jacobians = remesh.pad_face_array(np.asarray(jacobians), face_capacity, fill=7.0)
  padded_deformed = jnp.asarray(mesh.vertices).at[:len(vertices)].set(deformed)
  np.testing.assert_allclose(geometry.jacobians(padded, padded_deformed)[:len(faces)], jacobians,
                             atol=1e-6)
  for solver in ('cholesky', 'cg'):
    options = {} if solver == 'cholesky' else {'tol': 1e-6, 'maxiter': 2000}
    expected = geometry.poisson_solve(plain, jacobians, solver, **options)
    solved = geometry.poisson_solve(padded, jnp.asarray(padded_jacobians), solver, **options)
    np.testing.assert_allclose(solved[:len(vertices)], expected, atol=2e-5)
    np.testing.assert_allclose(solved[len(vertices):],
                               np.broadcast_to(solved[0], (vertex_capacity - len(vertices), 3)))


def test_trace_counter_counts_one_compile_per_bucket():
  messages = []
  counter = compiles.TraceCounter(log=lambda fmt, *args: messages.append(fmt % args))

  def masked_area(vertices, faces, face_mask):
    v = vertices[faces]
    area = 0.5 * jnp.linalg.norm(jnp.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=-1)
    return jnp.sum(jnp.where(face_mask, area, 0.0))

  step = jax.jit(counter.wrap(masked_area, 'masked_area'))
  areas = []
  for around in (8, 9, 30):  # The first two share a bucket of 64 faces, the third needs 128.
    vertices, faces = tube_mesh(around, 3)
    face_capacity = remesh.capacity(len(faces), 64)
    mesh = remesh.pad_mesh(vertices, faces, remesh.capacity(len(vertices), 64), face_capacity)
    areas.append(float(step(mesh.vertices, mesh.faces, mesh.face_mask)))
    unpadded = masked_area(vertices, faces, np.ones(len(faces), bool))
    np.testing.assert_allclose(areas[-1], float(unpadded), rtol=1e-5)
    step(mesh.vertices, mesh.faces, mesh.face_mask)  # Same shapes: no retrace.
  assert counter.counts == {'masked_area': 2} and counter.total == 2
  assert len(messages) == 2 and 'compile #2 of masked_area' in messages[1]
