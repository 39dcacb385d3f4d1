"""The garment model on padded meshes: padding changes nothing, and buckets do not retrace."""

import jax
import jax.numpy as jnp
import numpy as np
from test_remesh_refine import tube_mesh

from ngd_jax import geometry
from ngd_jax import losses
from ngd_jax import model as model_lib
from ngd_jax import remesh
from ngd_jax import render

_RESOLUTION = (48, 48)


def _mesh(vertices, faces, capacity_multiple):
  vertex_capacity = remesh.capacity(len(vertices), capacity_multiple)
  face_capacity = remesh.capacity(len(faces), capacity_multiple)
  operators = geometry.build_operators(vertices, faces, vertex_capacity, face_capacity)
  weights = jnp.zeros((vertex_capacity, 2)).at[:, 0].set(1.0)  # All on joint 0.
  return model_lib.GarmentMesh(operators, weights, render.build_topology(np.asarray(operators.faces)))


def _frame():
  """A camera 1.5 m in front of the tube (OpenCV axes), identity skinning."""
  world_to_camera = np.eye(4, dtype=np.float32)
  world_to_camera[:3, 3] = (0.0, 0.25, 1.5)
  K = np.array([[60.0, 0, 24], [0, 60.0, 24], [0, 0, 1]], np.float32)
  world_to_clip = render.camera_to_clip(K, world_to_camera, _RESOLUTION, 0.05, 10.0)
  transforms = jnp.broadcast_to(jnp.eye(4), (2, 4, 4))
  return model_lib.FrameInputs(transforms, jnp.asarray(world_to_clip), jnp.asarray(world_to_camera), jnp.zeros(2))


def _model():
  field = geometry.DynamicJacobianField(
      hash_levels=2, hash_features=2, hash_log2_table_size=8, hash_base_resolution=4, hash_growth=2.0,
      mlp_width=8, mlp_depth=1)
  return model_lib.GarmentModel(field, 'cholesky', 1e-6, 100, _RESOLUTION, 'auto', True)


def _loss(model, mesh, frame, target, static):
  """Render + Jacobian loss of J^S alone (as in the warm-up step)."""
  deformation = model.deform({'static': static, 'dynamic': None}, None, mesh, frame, dynamic=False)
  out = model.render(mesh, deformation.posed, frame)
  weights = losses.RenderLossWeights(5.0, 0.65, 0.005, 0.35, 0.4)
  terms = losses.render_loss(out.diffuse, out.alpha[..., 0], target, (target[..., 0] > 0).astype(jnp.float32),
                             jnp.zeros(_RESOLUTION), weights)
  terms['jacobian'] = losses.jacobian_loss(deformation.jacobians, mesh.operators.face_mask.astype(jnp.float32),
                                           jnp.sum(mesh.operators.face_mask))
  return sum(terms.values()), out.diffuse


def _static(mesh, num_faces):
  """The template's Jacobians with a smooth flare, padding rows filled with a large value."""
  base = geometry.init_static_jacobians(mesh.operators)
  flare = jnp.diag(jnp.array([1.2, 1.2, 1.0]))
  static = jnp.einsum('ij,fjk->fik', flare, base)
  return static.at[num_faces:].set(5.0)


def test_padded_mesh_gives_the_same_render_loss_and_gradient():
  vertices, faces = tube_mesh(16, 6)
  vertices = vertices[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # A rotation: tube axis along -y.
  model, frame = _model(), _frame()
  plain, padded = _mesh(vertices, faces, 1), _mesh(vertices, faces, 64)
  assert padded.operators.faces.shape[0] > len(faces)
  target = jnp.asarray(np.random.default_rng(0).uniform(0.2, 0.9, _RESOLUTION + (1,)), jnp.float32)
  grad_fn = jax.jit(jax.value_and_grad(_loss, argnums=4, has_aux=True), static_argnums=0)
  (loss_plain, image_plain), grad_plain = grad_fn(model, plain, frame, target, _static(plain, len(faces)))
  (loss_padded, image_padded), grad_padded = grad_fn(model, padded, frame, target, _static(padded, len(faces)))
  assert float(jnp.sum(image_plain > 0)) > 50  # The tube is in view.
  np.testing.assert_allclose(image_padded, image_plain, atol=1e-5)
  np.testing.assert_allclose(loss_padded, loss_plain, rtol=1e-5)
  np.testing.assert_allclose(grad_padded[: len(faces)], grad_plain, rtol=1e-3, atol=1e-6)
  np.testing.assert_array_equal(grad_padded[len(faces):], 0.0)


def test_meshes_in_one_bucket_compile_once():
  counter = remesh.TraceCounter()
  model, frame = _model(), _frame()
  render_fn = jax.jit(counter.wrap(
      lambda mesh, static: model.render(mesh, model.deform({'static': static}, None, mesh, frame, dynamic=False).posed,
                                        frame).diffuse, 'render'))
  for around, rows in ((16, 6), (18, 6), (40, 6)):
    vertices, faces = tube_mesh(around, rows)
    mesh = _mesh(vertices, faces, 128)
    render_fn(mesh, geometry.init_static_jacobians(mesh.operators))
  # 16x6 and 18x6 tubes share the 128-vertex / 256-face bucket; 40x6 needs a bigger one.
  assert counter.counts['render'] == 2
