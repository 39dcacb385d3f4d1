"""Tests of the mesh operators and the Poisson solve (docs/method.md section 2)."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from ngd_jax import errors
from ngd_jax import model as model_lib
from ngd_jax.geometry import operators as operators_lib
from ngd_jax.geometry import poisson

CG = dict(tol=1e-7, maxiter=500)


def _for_solver(vertices, faces, solver, *capacities):
  """Operators of the mesh, with the dense inverse when the solver needs it."""
  operators = operators_lib.build_operators(vertices, faces, *capacities)
  if solver == 'dense':
    return poisson.attach_dense_inverse(vertices, faces, operators)
  return operators


def _jitted_solve(operators, solver, **kwargs):
  """One compiled solve per test (eager CG dispatches every iteration)."""
  return jax.jit(lambda j: poisson.poisson_solve(operators, j, solver, **{**CG, **kwargs}))


def _open_sphere(subdivisions, cut=0.6, seed=0):
  """An icosphere with its top cap removed, vertices jittered (irregular, open, one boundary)."""
  mesh = trimesh.creation.icosphere(subdivisions)
  faces = np.asarray(mesh.faces)[mesh.triangles_center[:, 2] < cut]
  used = np.unique(faces)
  remap = np.full(len(mesh.vertices), -1)
  remap[used] = np.arange(len(used))
  vertices = np.asarray(mesh.vertices)[used]
  vertices = vertices + np.random.default_rng(seed).normal(scale=0.01, size=vertices.shape)
  return vertices * 0.3 + np.array([0.1, 1.0, -0.2]), remap[faces]


def _projectors(vertices, faces):
  normal = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                    vertices[faces[:, 2]] - vertices[faces[:, 0]])
  normal /= np.linalg.norm(normal, axis=1, keepdims=True)
  return np.eye(3) - normal[:, :, None] * normal[:, None, :]


def _loop_gradients(vertices, faces):
  """Slow reference: per face, the in-plane gradient g_k of each hat function, from
  g . (x_1 - x_0) = B_k(x_1) - B_k(x_0), g . (x_2 - x_0) = B_k(x_2) - B_k(x_0), g . n = 0."""
  out = np.zeros((len(faces), 3, 3))
  for f, (a, b, c) in enumerate(faces):
    e1, e2 = vertices[b] - vertices[a], vertices[c] - vertices[a]
    n = np.cross(e1, e2)
    system = np.stack([e1, e2, n])
    for k in range(3):
      values = np.eye(3)[k]
      out[f, k] = np.linalg.solve(system, [values[1] - values[0], values[2] - values[0], 0.0])
  return out


def test_gradient_operator_matches_per_face_loop():
  vertices, faces = _open_sphere(1)
  reference = _loop_gradients(vertices, faces)
  system = operators_lib.host_system(vertices, faces)
  dense = system.gradient.toarray()
  for f, face in enumerate(faces):
    for k, v in enumerate(face):
      np.testing.assert_allclose(dense[3 * f:3 * f + 3, v], reference[f, k], rtol=1e-10, atol=1e-10)
  # Doubled areas and L = G^T M G.
  np.testing.assert_allclose(system.double_area, 2 * trimesh.Trimesh(vertices, faces).area_faces)
  weight = np.repeat(system.double_area, 3)
  np.testing.assert_allclose(system.laplacian.toarray(), dense.T @ (weight[:, None] * dense),
                             atol=1e-10)
  # G V in JAX (float32) against the loop: J[f][i, j] = sum_k x_k[i] g_k[j].
  operators = operators_lib.build_operators(vertices, faces)
  deformed = vertices + 0.05 * np.sin(7 * vertices[:, ::-1])
  expected = np.einsum('fki,fkj->fij', deformed[faces], reference)
  got = operators_lib.jacobians(operators, jnp.asarray(deformed, jnp.float32))
  np.testing.assert_allclose(got, expected, atol=2e-4)


def test_template_jacobians_are_tangent_projectors():
  vertices, faces = _open_sphere(2)
  operators = operators_lib.build_operators(vertices, faces)
  got = operators_lib.jacobians(operators, operators.rest_vertices)
  np.testing.assert_allclose(got, _projectors(vertices, faces), atol=1e-5)


@pytest.mark.parametrize('solver', ['cg', 'cholesky', 'dense'])
def test_template_jacobians_reproduce_template(solver):
  vertices, faces = _open_sphere(3)
  operators = _for_solver(vertices, faces, solver)
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  solved = np.asarray(jax.jit(lambda j: poisson.poisson_solve(operators, j, solver, **CG))(jac))
  error = np.linalg.norm(solved - vertices) / np.linalg.norm(vertices)
  assert error < 1e-5, error


def test_several_components_reproduce_template():
  a_vertices, a_faces = _open_sphere(2)
  b_vertices, b_faces = _open_sphere(1, seed=1)
  vertices = np.concatenate([a_vertices, b_vertices + np.array([1.0, 0.0, 0.0])])
  faces = np.concatenate([a_faces, b_faces + len(a_vertices)])
  operators = _for_solver(vertices, faces, 'dense')
  assert int(np.sum(operators.pinned)) == 2
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  for solver in ('cg', 'cholesky', 'dense'):
    solved = np.asarray(_jitted_solve(operators, solver)(jac))
    assert np.linalg.norm(solved - vertices) / np.linalg.norm(vertices) < 1e-5


@pytest.mark.parametrize('solver', ['cg', 'cholesky', 'dense'])
def test_affine_jacobian_field_gives_transformed_mesh(solver):
  vertices, faces = _open_sphere(2)
  operators = _for_solver(vertices, faces, solver)
  angle = 0.7
  rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                       [-np.sin(angle), 0, np.cos(angle)]])
  centroid = vertices.mean(axis=0)
  solve = _jitted_solve(operators, solver)
  for affine in (1.3 * np.eye(3), rotation, 0.8 * rotation):
    # The restriction of x -> A r to each face's plane has Jacobian A (I - n n^T).
    jac = jnp.asarray(affine @ _projectors(vertices, faces), jnp.float32)
    solved = np.asarray(solve(jac))
    expected = (vertices - centroid) @ affine.T + centroid
    np.testing.assert_allclose(solved, expected, atol=2e-5)


@pytest.mark.parametrize('solver', ['cg', 'cholesky', 'dense'])
def test_gradient_matches_central_differences(solver):
  vertices, faces = _open_sphere(1)
  operators = _for_solver(vertices, faces, solver)
  rng = np.random.default_rng(0)
  jac0 = _projectors(vertices, faces) + 0.1 * rng.normal(size=(len(faces), 3, 3))
  weights = rng.normal(size=vertices.shape)
  solve = _jitted_solve(operators, solver)

  def loss(j):
    x = solve(j)
    return jnp.sum(weights * x) + 0.5 * jnp.sum(x**2)

  grad = np.asarray(jax.grad(loss)(jnp.asarray(jac0, jnp.float32)))
  # The solve is linear in J, so the loss is quadratic and central differences are exact up to
  # rounding for any step: step 0.1, loss evaluated in float64 from the float32 vertices.
  def loss64(j):
    x = np.asarray(solve(jnp.asarray(j, jnp.float32)), np.float64)
    return np.sum(weights * x) + 0.5 * np.sum(x**2)

  step = 0.1
  for f, i, j in [(0, 0, 0), (3, 1, 2), (17, 2, 1), (40, 2, 2)]:
    plus, minus = jac0.copy(), jac0.copy()
    plus[f, i, j] += step
    minus[f, i, j] -= step
    fd = (loss64(plus) - loss64(minus)) / (2 * step)
    np.testing.assert_allclose(grad[f, i, j], fd, rtol=1e-3, atol=1e-4)


def test_cg_and_cholesky_agree_in_value_and_gradient():
  vertices, faces = _open_sphere(2)
  operators = operators_lib.build_operators(vertices, faces)
  rng = np.random.default_rng(1)
  jac = jnp.asarray(_projectors(vertices, faces) + 0.2 * rng.normal(size=(len(faces), 3, 3)),
                    jnp.float32)
  target = jnp.asarray(rng.normal(size=vertices.shape), jnp.float32)
  results = {}
  for solver in ('cg', 'cholesky'):
    solve = _jitted_solve(operators, solver)
    loss = lambda j: jnp.sum((solve(j) - target)**2)  # pylint: disable=cell-var-from-loop
    results[solver] = (solve(jac), jax.jit(jax.grad(loss))(jac))
  scale = np.abs(results['cholesky'][0]).max()
  np.testing.assert_allclose(results['cg'][0], results['cholesky'][0], atol=1e-5 * scale)
  gscale = np.abs(results['cholesky'][1]).max()
  np.testing.assert_allclose(results['cg'][1], results['cholesky'][1], atol=1e-4 * gscale)


def test_jacobi_preconditioned_cg_agrees():
  vertices, faces = _open_sphere(2)
  operators = operators_lib.build_operators(vertices, faces)
  jac = operators_lib.jacobians(operators, operators.rest_vertices) * 1.1
  plain = _jitted_solve(operators, 'cg')(jac)
  jacobi = _jitted_solve(operators, 'cg', precondition=True)(jac)
  np.testing.assert_allclose(plain, jacobi, atol=1e-5)


def test_warm_start_from_solution_needs_no_iterations():
  vertices, faces = _open_sphere(2)
  operators = operators_lib.build_operators(vertices, faces)
  jac = operators_lib.jacobians(operators, operators.rest_vertices) * 1.2
  solved = _jitted_solve(operators, 'cg')(jac)
  short = jax.jit(lambda j, x0: poisson.poisson_solve(operators, j, 'cg', x0=x0, tol=1e-7,
                                                      maxiter=2))
  cold = _jitted_solve(operators, 'cg', maxiter=2)(jac)
  warm = short(jac, solved + 3.0)
  np.testing.assert_allclose(warm, solved, atol=1e-5)
  assert np.abs(np.asarray(cold - solved)).max() > 1e-3  # 2 cold iterations are far off.


@pytest.mark.parametrize('solver', ['cg', 'cholesky', 'dense'])
def test_padding_keeps_values_and_does_not_retrace(solver):
  meshes = [_open_sphere(2, cut=0.6), _open_sphere(2, cut=0.3, seed=3)]
  capacity = (700, 1400)
  traces = []

  @jax.jit
  def step(operators, jac):
    traces.append(1)
    return poisson.poisson_solve(operators, jac, solver, **CG)

  shapes = []
  for vertices, faces in meshes:
    assert len(vertices) < capacity[0] and len(faces) < capacity[1]
    plain = _for_solver(vertices, faces, solver)
    padded = _for_solver(vertices, faces, solver, *capacity)
    shapes.append(jax.tree.map(jnp.shape, padded))
    jac = 1.1 * operators_lib.jacobians(padded, padded.rest_vertices)
    assert np.all(np.asarray(jac[len(faces):]) == 0)
    solved = np.asarray(step(padded, jac))
    reference = np.asarray(_jitted_solve(plain, solver)(jac[:len(faces)]))
    np.testing.assert_allclose(solved[:len(vertices)], reference, atol=1e-5)
    np.testing.assert_array_equal(solved[len(vertices):],
                                  np.broadcast_to(solved[0], solved[len(vertices):].shape))
  assert shapes[0] == shapes[1]
  assert len(traces) == 1


def test_cholesky_refactors_unknown_topology():
  vertices, faces = _open_sphere(2)
  operators = operators_lib.build_operators(vertices, faces)
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  poisson.clear_factors()  # As in a fresh process restoring these operators.
  lazy = poisson.poisson_solve(operators, jac, 'cholesky')
  poisson.register_factor(vertices, faces, operators)
  exact = poisson.poisson_solve(operators, jac, 'cholesky')
  np.testing.assert_allclose(lazy, exact, atol=1e-5)
  np.testing.assert_allclose(exact, vertices, atol=1e-5)


def test_vmap_over_frames():
  vertices, faces = _open_sphere(1)
  operators = _for_solver(vertices, faces, 'dense')
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  batch = jnp.stack([jac, 1.2 * jac])
  for solver in ('cg', 'cholesky', 'dense'):
    solved = jax.jit(jax.vmap(lambda j: poisson.poisson_solve(operators, j, solver, **CG)))(batch)
    centroid = vertices.mean(axis=0)
    np.testing.assert_allclose(solved[1], 1.2 * (vertices - centroid) + centroid, atol=1e-5)


def test_resolve_solver_and_errors():
  vertices, faces = _open_sphere(1)
  with pytest.raises(ValueError, match='Capacities'):
    operators_lib.build_operators(vertices, faces, len(vertices) - 1)
  with pytest.raises(ValueError, match='outside'):
    operators_lib.build_operators(vertices, faces + len(vertices))
  operators = operators_lib.build_operators(vertices, faces)
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  with pytest.raises(ValueError, match='tol and maxiter'):
    poisson.poisson_solve(operators, jac, 'cg')
  with pytest.raises(ValueError, match='attach_dense_inverse'):
    poisson.poisson_solve(operators, jac, 'dense')
  with pytest.raises(ValueError, match='Unknown Poisson solver'):
    poisson.poisson_solve(operators, jac, 'lu')


def test_non_finite_dense_inverse_is_a_user_error(monkeypatch):
  """An inverse that is not finite in float32 names the solver key and the fix, as one line."""
  vertices, faces = _open_sphere(1)
  operators = operators_lib.build_operators(vertices, faces)
  singular = (jnp.full((len(vertices),) * 2, jnp.nan), False)  # What a non-definite float32 system gives.
  monkeypatch.setattr(poisson, '_dense_inverse', lambda *args: singular)
  with pytest.raises(errors.UserError, match=r'geometry.solver: .* not finite .*Fix: --config.geometry.solver=chol'):
    poisson.attach_dense_inverse(vertices, faces, operators)


def test_resolve_solver_by_backend_size_and_guard(caplog):
  resolve = poisson.resolve_solver
  with pytest.raises(ValueError, match='Unknown Poisson solver'):
    resolve('lu', 1024, 20000)
  with caplog.at_level(logging.WARNING):
    # Explicit names are kept; on CPU 'auto' is dense only up to the default capacity bucket.
    assert [resolve(name, 10**6, 0, 'cpu') for name in ('cg', 'cholesky', 'dense')] == [
        'cg', 'cholesky', 'dense']
    assert resolve('auto', poisson.CPU_DENSE_MAX_VERTICES, 20000, 'cpu') == 'dense'
    assert resolve('auto', 2 * poisson.CPU_DENSE_MAX_VERTICES, 20000, 'cpu') == 'cholesky'
    assert resolve('auto', 20000, 20000, 'gpu') == 'dense'
    assert resolve('auto', 2048, 20000) == 'cholesky'  # Tests run on CPU.
    assert not caplog.records  # Only the memory guard logs.
    assert resolve('auto', 20480, 20000, 'gpu') == 'cg'
    assert resolve('auto', 512, 256, 'cpu') == 'cholesky'
  lines = [record.getMessage() for record in caplog.records]
  assert len(lines) == 2, lines
  assert "uses 'cg', not 'dense'" in lines[0] and '20480 vertices' in lines[0], lines[0]
  assert '1.68 GB' in lines[0] and 'dense_max_vertices = 20000' in lines[0], lines[0]
  assert "uses 'cholesky', not 'dense'" in lines[1], lines[1]


def _loss_and_gradient(operators, solver, jac, target):
  solve = _jitted_solve(operators, solver)
  loss = lambda j: jnp.sum((solve(j) - target)**2)
  return solve(jac), jax.jit(jax.grad(loss))(jac)


def _relative(value, reference):
  value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
  return np.linalg.norm(value - reference) / np.linalg.norm(reference)


@pytest.mark.parametrize('capacity', [None, (6144, 12288)])  # Padded past 5120: two steps.
def test_dense_matches_float64_cholesky_in_value_and_gradient(capacity):
  vertices, faces = _open_sphere(4)  # 2.1k vertices; without the refinement step the gradient is 3e-5 off.
  operators = _for_solver(vertices, faces, 'dense', *(capacity or ()))
  poisson.register_factor(vertices, faces, operators)
  rng = np.random.default_rng(2)
  face_mask = np.asarray(operators.face_mask)[:, None, None]
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  jac = jac + jnp.asarray(0.2 * rng.normal(size=jac.shape) * face_mask, jnp.float32)
  target = jnp.asarray(rng.normal(size=operators.rest_vertices.shape), jnp.float32)
  dense = _loss_and_gradient(operators, 'dense', jac, target)
  cholesky = _loss_and_gradient(operators, 'cholesky', jac, target)
  assert _relative(dense[0], cholesky[0]) < 1e-5
  assert _relative(dense[1], cholesky[1]) < 1e-5
  # 'auto' follows the operators: dense when they carry the inverse.
  np.testing.assert_array_equal(_jitted_solve(operators, 'auto')(jac), dense[0])


def _has_host_callback(fn, *args) -> tuple[bool, bool]:
  """(in the jaxpr, in the lowered StableHLO): pure_callback lowers to a custom_call whose target
  names a Python callback."""
  jaxpr = str(jax.make_jaxpr(fn)(*args))
  hlo = jax.jit(fn).lower(*args).as_text()
  return 'callback' in jaxpr, 'callback' in hlo.lower()


def test_dense_step_has_no_host_callback():
  vertices, faces = _open_sphere(1)
  operators = _for_solver(vertices, faces, 'dense')
  jac = operators_lib.jacobians(operators, operators.rest_vertices)

  def step(solver):
    loss = lambda ops, j: jnp.sum(poisson.poisson_solve(ops, j, solver)**2)
    return jax.value_and_grad(loss, argnums=1)

  assert _has_host_callback(step('cholesky'), operators, jac) == (True, True)  # The check works.
  assert _has_host_callback(step('dense'), operators, jac) == (False, False)
  assert _has_host_callback(step('auto'), operators, jac) == (False, False)


def test_cg_reports_iterations_and_residual_on_known_systems():
  # A diagonal system with 3 distinct eigenvalues: CG converges in exactly 3 iterations.
  rng = np.random.default_rng(3)
  diagonal = jnp.asarray(np.repeat([1.0, 2.0, 4.0], 10)[:, None], jnp.float32)
  rhs = jnp.asarray(rng.normal(size=(30, 3)), jnp.float32)
  x, iterations = poisson._cg(None, lambda v: diagonal * v, rhs, None, 1e-5, 100, False)  # pylint: disable=protected-access
  assert int(iterations) == 3
  np.testing.assert_allclose(x, rhs / diagonal, rtol=1e-5)
  # One iteration on the mesh system from 0: x = (b.b / b.Ab) b, residual in closed form (float64).
  vertices, faces = _open_sphere(2)
  operators = operators_lib.build_operators(vertices, faces)
  jac = operators_lib.jacobians(operators, operators.rest_vertices) * 1.1
  system = operators_lib.pinned_system(vertices, faces, len(vertices)).matrix
  b = np.where(np.asarray(operators.pinned)[:, None], 0.0,
               np.asarray(operators_lib.poisson_rhs(operators, jac), np.float64))
  b = b + np.asarray(operators.pin_rhs, np.float64)
  ab = system @ b
  residual = b - (np.sum(b * b) / np.sum(b * ab)) * ab
  solve = jax.jit(lambda j, maxiter: poisson.poisson_solve_with_info(
      operators, j, 'cg', tol=1e-6, maxiter=maxiter), static_argnums=1)
  _, info = solve(jac, 1)
  assert int(info.iterations) == 1
  np.testing.assert_allclose(info.residual, np.linalg.norm(residual) / np.linalg.norm(b), rtol=1e-4)
  solution, info = solve(jac, 500)
  assert 1 < int(info.iterations) < 500 and float(info.residual) < 1e-4
  # Warm-started from the solution, nothing is left to do.
  _, info = jax.jit(lambda j, x0: poisson.poisson_solve_with_info(
      operators, j, 'cg', x0=x0, tol=1e-4, maxiter=500))(jac, solution)
  assert int(info.iterations) == 0
  # The direct solvers report 0 iterations and their residual.
  dense = _for_solver(vertices, faces, 'dense')
  _, info = jax.jit(lambda j: poisson.poisson_solve_with_info(dense, j, 'dense'))(jac)
  assert int(info.iterations) == 0 and float(info.residual) < 1e-5


def test_warn_if_capped(caplog):
  with caplog.at_level(logging.WARNING):
    assert not poisson.warn_if_capped(np.array([3, 9]), np.array([1e-7, 2e-7]), 10)
    assert not caplog.records
    assert poisson.warn_if_capped(np.array([3, 10]), np.array([1e-7, 2.5e-3]), 10)
  assert len(caplog.records) == 1
  line = caplog.records[0].getMessage()
  assert 'iteration cap (geometry.cg_maxiter = 10)' in line and '2.50e-03' in line, line


def test_cg_warm_start_flag_of_the_model():
  vertices, faces = _open_sphere(2)
  operators = operators_lib.build_operators(vertices, faces)
  mesh = model_lib.GarmentMesh(operators, None, None, None, None)
  jac = operators_lib.jacobians(operators, operators.rest_vertices) * 1.2
  solved = _jitted_solve(operators, 'cg')(jac)
  results = {}
  for warm in (True, False):
    model = model_lib.GarmentModel(None, 'cg', 1e-7, 2, (8, 8), 'jax', False, cg_warm_start=warm)
    results[warm] = np.asarray(jax.jit(model.solve)(mesh, jac, solved))
  np.testing.assert_allclose(results[True], solved, atol=1e-5)
  assert np.abs(results[False] - np.asarray(solved)).max() > 1e-3  # x0 ignored: 2 cold iterations.
