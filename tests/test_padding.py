"""Capacity buckets and the padding convention (ngd_jax/padding.py), and what the convention buys:
the same Poisson solve on a padded mesh, one compile per bucket."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import compiles
from ngd_jax import geometry
from ngd_jax import padding


def tube_mesh(around: int = 12, rings: int = 5) -> tuple[np.ndarray, np.ndarray]:
  theta = 2 * np.pi * np.arange(around) / around
  y = np.linspace(0.0, 0.6, rings)
  vertices = np.stack([np.tile(0.2 * np.cos(theta), rings), np.repeat(y, around),
                       np.tile(0.2 * np.sin(theta), rings)], axis=1)
  i, j = np.meshgrid(np.arange(rings - 1), np.arange(around), indexing='ij')
  a, b = i * around + j, i * around + (j + 1) % around
  faces = np.concatenate([np.stack([a, a + around, b], -1), np.stack([b, a + around, b + around], -1)])
  return vertices, faces.reshape(-1, 3).astype(np.int32)


def bend(vertices: np.ndarray) -> np.ndarray:
  out = vertices.copy()
  out[:, 0] += 0.3 * vertices[:, 1] ** 2
  return out


def test_capacity_buckets():
  counts = [1, 1000, 1024, 1025, 5000]
  assert [padding.capacity(n, 1024) for n in counts] == [1024, 1024, 1024, 2048, 5120]
  with pytest.raises(ValueError, match='multiple must be >= 1'):
    padding.capacity(5, 0)
  with pytest.raises(ValueError, match='negative'):
    padding.capacity(-1, 8)


def test_rows_pad_with_the_convention_and_unpad():
  vertices, faces = tube_mesh()
  padded_vertices = padding.pad_vertex_rows(vertices, 80)
  np.testing.assert_array_equal(padded_vertices[len(vertices):], np.repeat(vertices[:1], 80 - len(vertices), 0))
  padded_faces = padding.pad_rows(faces, 100)
  assert padded_faces.dtype == faces.dtype and not padded_faces[len(faces):].any()
  per_frame = np.stack([vertices, 2 * vertices])  # [T, V, 3]: pads the vertex axis of each frame.
  padded_frames = padding.pad_vertex_rows(per_frame, 70, axis=1)
  np.testing.assert_array_equal(padded_frames[1, len(vertices):], np.repeat(2 * vertices[:1], 70 - len(vertices), 0))
  jacobians = np.random.default_rng(0).normal(size=(len(faces), 3, 3))
  np.testing.assert_array_equal(padding.pad_rows(jacobians, 100, fill=1.0)[len(faces):], 1.0)
  for padded, real in ((padded_vertices, vertices), (padded_faces, faces)):
    np.testing.assert_array_equal(padding.unpad(padded, len(real)), real)
  with pytest.raises(ValueError, match='does not fit'):
    padding.pad_vertex_rows(vertices, 4)
  with pytest.raises(ValueError, match='does not fit'):
    padding.pad_rows(jacobians, 3)


def test_padded_mesh_gives_the_same_poisson_solve():
  vertices, faces = tube_mesh()
  vertex_capacity = padding.capacity(len(vertices), 128)
  face_capacity = padding.capacity(len(faces), 128)
  deformed = jnp.asarray(bend(vertices), jnp.float32)
  plain = geometry.build_operators(vertices, faces)
  padded = geometry.build_operators(vertices, faces, vertex_capacity, face_capacity)
  # The operators pad exactly as the convention says.
  np.testing.assert_array_equal(padded.faces, padding.pad_rows(faces, face_capacity))
  np.testing.assert_allclose(padded.rest_vertices, padding.pad_vertex_rows(vertices, vertex_capacity), rtol=1e-7)
  np.testing.assert_array_equal(padded.face_mask, np.arange(face_capacity) < len(faces))
  jacobians = geometry.jacobians(plain, deformed)
  padded_jacobians = padding.pad_rows(np.asarray(jacobians), face_capacity, fill=7.0)
  padded_deformed = jnp.asarray(padded.rest_vertices).at[:len(vertices)].set(deformed)
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
    face_capacity = padding.capacity(len(faces), 64)
    padded_vertices = padding.pad_vertex_rows(vertices, padding.capacity(len(vertices), 64))
    padded_faces, face_mask = padding.pad_rows(faces, face_capacity), np.arange(face_capacity) < len(faces)
    areas.append(float(step(padded_vertices, padded_faces, face_mask)))
    unpadded = masked_area(vertices, faces, np.ones(len(faces), bool))
    np.testing.assert_allclose(areas[-1], float(unpadded), rtol=1e-5)
    step(padded_vertices, padded_faces, face_mask)  # Same shapes: no retrace.
  assert counter.counts == {'masked_area': 2} and counter.total == 2
  assert len(messages) == 2 and 'compile #2 of masked_area' in messages[1]
