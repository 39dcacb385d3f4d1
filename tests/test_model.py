"""The garment model on padded meshes: padding changes nothing, and buckets do not retrace."""

import jax
import jax.numpy as jnp
import numpy as np
from test_remesh_refine import tube_mesh
from test_render_grad import _patch

from ngd_jax import body
from ngd_jax import compiles
from ngd_jax import geometry
from ngd_jax import losses
from ngd_jax import model as model_lib
from ngd_jax import padding
from ngd_jax import pipeline
from ngd_jax import remesh
from ngd_jax import render

_RESOLUTION = (48, 48)


def _mesh(vertices, faces, capacity_multiple):
  vertex_capacity = padding.capacity(len(vertices), capacity_multiple)
  face_capacity = padding.capacity(len(faces), capacity_multiple)
  operators = geometry.build_operators(vertices, faces, vertex_capacity, face_capacity)
  weights = jnp.zeros((vertex_capacity, 2)).at[:, 0].set(1.0)  # All on joint 0.
  return model_lib.GarmentMesh(operators, weights, render.build_topology(np.asarray(operators.faces)),
                               pipeline.padded_face_pairs(faces, face_capacity), None)


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
  weights = losses.RenderLossWeights(5.0, 0.65, 0.005, 0.35, 0.4, 0)
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
  counter = compiles.TraceCounter()
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


def _displacement_model():
  """The displacement baseline (issue 11): the same small field with 3 outputs per vertex."""
  field = _model().field.clone(num_outputs=3)
  return model_lib.GarmentModel(field, 'cholesky', 1e-6, 100, _RESOLUTION, 'auto', True,
                                parameterization='displacement')


def _skinning_frame():
  """_frame with joint 0 rotated 0.3 rad about y and moved, so that skinning is not the identity."""
  frame = _frame()
  c, s = np.cos(0.3), np.sin(0.3)
  transform = np.array([[c, 0, s, 0.05], [0, 1, 0, -0.02], [-s, 0, c, 0.1], [0, 0, 0, 1]], np.float32)
  return frame._replace(transforms=frame.transforms.at[0].set(transform))


def _tube_y():
  vertices, faces = tube_mesh(16, 6)
  return vertices[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0]), faces  # Tube axis along -y.


def test_displacement_zero_offsets_give_the_template_skinned_exactly():
  vertices, faces = _tube_y()
  model, frame, mesh = _displacement_model(), _skinning_frame(), _mesh(*_tube_y(), 64)
  ops = mesh.operators
  offsets = model.init_static(ops)
  assert offsets.shape == ops.rest_vertices.shape and not np.any(offsets)
  template_posed = body.lbs(ops.rest_vertices, mesh.skinning_weights, frame.transforms)
  warmup = model.deform({'static': offsets, 'dynamic': None}, None, mesh, frame, dynamic=False)
  np.testing.assert_array_equal(warmup.canonical, ops.rest_vertices)
  np.testing.assert_array_equal(warmup.posed, template_posed)
  np.testing.assert_array_equal(warmup.jacobians, geometry.init_static_jacobians(ops))  # Same prior as J^S.
  np.testing.assert_array_equal(model.static_canonical(mesh, offsets), ops.rest_vertices)
  # With the network on and its last layer zero, J^D-free: still the template, exactly.
  bounds = geometry.fit_field_bounds(np.asarray(template_posed), np.zeros((1, 2)), margin=0.25)
  field_params = model.field.init(jax.random.PRNGKey(0), ops.rest_vertices, ops.rest_vertices, jnp.zeros(2))
  zeroed = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.zeros_like(x) if 'out' in jax.tree_util.keystr(path) else x, field_params)
  full = model.deform({'static': offsets, 'dynamic': zeroed}, bounds, mesh, frame, dynamic=True)
  np.testing.assert_array_equal(full.posed, template_posed)
  # The untouched network moves the real vertices a little, never the padding ones.
  moved = model.deform({'static': offsets, 'dynamic': field_params}, bounds, mesh, frame, dynamic=True)
  assert moved.dynamic.shape == ops.rest_vertices.shape
  assert 0 < float(jnp.abs(moved.dynamic[: len(vertices)]).max()) < 1e-2
  np.testing.assert_array_equal(moved.dynamic[len(vertices):], 0.0)


def test_displacement_render_loss_gradient_reaches_the_offsets():
  """A render loss reaches the offsets (and the field); central differences (step 0.1 pixel at the
  garment's depth, float32) match its gradient on interior entries."""
  vertices, faces = _patch(8, 0.6)  # An open 9x9 grid facing the camera: no back faces.
  vertices = vertices - np.array([0.0, 0.25, 0.0], np.float32)
  model, frame, mesh = _displacement_model(), _skinning_frame(), _mesh(vertices, faces, 64)
  rng = np.random.default_rng(2)
  offsets = jnp.zeros_like(mesh.operators.rest_vertices).at[: len(vertices)].set(
      jnp.asarray(rng.normal(0.0, 0.005, (len(vertices), 3)), jnp.float32))
  # Smooth per-pixel weights (as tests/test_render_grad.py): the Huber and SSIM terms have kinks
  # at this scale, the weighted image does not. Interior vertices: a 0.1-pixel move changes no
  # coverage (silhouette vertices are the renderer's tests' concern, at one-pixel steps).
  rows, cols = np.meshgrid(np.arange(_RESOLUTION[0]), np.arange(_RESOLUTION[1]), indexing='ij')
  weights = jnp.asarray(np.stack([np.sin(cols / 9.0) + rows / 40.0, np.cos(rows / 11.0) + cols / 30.0], -1),
                        jnp.float32)

  def smooth_loss(offsets):
    out = model.render(mesh, model.deform({'static': offsets, 'dynamic': None}, None, mesh, frame,
                                          dynamic=False).posed, frame)
    return jnp.sum(weights * jnp.concatenate([out.diffuse, out.alpha], -1))

  loss_fn = jax.jit(smooth_loss)
  grad = np.asarray(jax.jit(jax.grad(smooth_loss))(offsets))
  assert np.all(np.isfinite(grad)) and np.count_nonzero(np.abs(grad[: len(vertices)]).sum(axis=1)) > 40
  np.testing.assert_array_equal(grad[len(vertices):], 0.0)  # Padding vertices are not part of the garment.
  step = 0.1 * 1.5 / 60.0  # 0.1 pixel at 1.5 m with a 60-pixel focal length.
  for v, axis in ((40, 0), (40, 2), (50, 2)):  # Grid rows 4-5, columns 4-5.
    plus = float(loss_fn(offsets.at[v, axis].add(step)))
    minus = float(loss_fn(offsets.at[v, axis].add(-step)))
    assert abs(grad[v, axis]) > 1.0
    np.testing.assert_allclose((plus - minus) / (2 * step), grad[v, axis], rtol=0.02, err_msg=f'vertex {v} axis {axis}')
  # With the network on, the render loss also reaches the field's every layer.
  posed = body.lbs(mesh.operators.rest_vertices, mesh.skinning_weights, frame.transforms)
  bounds = geometry.fit_field_bounds(np.asarray(posed), np.zeros((1, 2)), margin=0.25)
  field_params = model.field.init(jax.random.PRNGKey(0), posed, posed, jnp.zeros(2))

  def dynamic_loss(field_params):
    deformation = model.deform({'static': offsets, 'dynamic': field_params}, bounds, mesh, frame, dynamic=True)
    return jnp.sum(weights[..., :1] * model.render(mesh, deformation.posed, frame).diffuse)

  for path, leaf in jax.tree_util.tree_leaves_with_path(jax.jit(jax.grad(dynamic_loss))(field_params)):
    assert float(jnp.abs(leaf).sum()) > 0, jax.tree_util.keystr(path)
