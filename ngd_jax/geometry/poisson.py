"""Poisson solve: Jacobians -> vertices (docs/method.md section 2, docs/design.md section 5).

Three interchangeable solvers of the pinned system (operators.py), all differentiable by an
implicit solve through lax.custom_linear_solve (the system is symmetric, so the backward pass is
the same solve on the incoming gradient):
  'dense': the dense inverse of the padded system, computed in float32 on the device once per
    topology from its Cholesky factor (attach_dense_inverse, kept in operators.dense_inverse),
    applied by one matrix product plus one step (two above 5k vertices) of iterative refinement
    against the sparse system. No host callback, so it runs on any backend and JAX's persistent
    compilation cache can store the step; it takes Vc^2 floats (config.geometry.dense_max_vertices
    bounds what 'auto' builds). An explicit inverse rather than the factor: as accurate after the
    refinement and 2-3x faster on CPU than two triangular solves (benchmarks/README.md, Poisson
    section).
  'cholesky': a sparse Cholesky factor (cholespy / CHOLMOD) held on the host in float64 and
    called from jit through jax.pure_callback. Factors live in a small host registry keyed by
    the operators' topology_key; a missing factor (new topology, other process, evicted) is
    built from the operator arrays passed to the callback, so a remesh refactors without
    retracing the jitted step.
  'cg': conjugate gradient with a COO segment_sum matvec, written as a lax.while_loop so that
    poisson_solve_with_info can report its iterations; runs on any backend, warm-startable from
    the previous solution of the same frame.
Precision: the step is float32. The cholespy factor and its triangular solves are float64 (the
authors solve in float64), only the right-hand side and the result are float32. The dense
inverse is float32; its refinement residual b - A x is evaluated in edge-difference form,
A x = s x + sum_j A_ij (x_j - x_i) with s the float64 row sums (0 away from the pins): the
plain float32 product A x rounds terms of size |A| |x| (x are absolute positions) that cancel
down to b, and refining with it left the solve 1e-5 off the float64 one at 5k vertices, while
differences of neighbours round at the edge length's scale (2e-7 after one step; measured in
benchmarks/README.md, Poisson section).
"""

import collections
import functools
import logging
import threading
from typing import NamedTuple

import cholespy
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ngd_jax.geometry import operators as operators_lib
from ngd_jax.geometry import orientation

SOLVERS = ('auto', 'cg', 'cholesky', 'dense')
# Largest vertex capacity at which 'auto' picks the dense solve on CPU (benchmarks/README.md,
# Poisson section: 0.56-1.02x cholespy's forward + backward at 480 vertices, 1.4-1.5x at 990,
# i.e. ~0.3 ms more per solve, 2.5-3.6x at 2k). Up to the default capacity bucket (1024) the
# step then has no host callback, so JAX's persistent compilation cache stores it: a second
# process compiles the demo's dynamic step in 0.7 s instead of 15.2 s (benchmarks/README.md,
# "Compile once per machine").
CPU_DENSE_MAX_VERTICES = 1024
# Up to this capacity one refinement step brings the dense solve within 2e-7 of the float64 one;
# above, the float32 inverse is further off (1e-3 at 10k vertices, 1e-2 at 20k) and two steps
# are needed (1e-7 at 10k, 1e-6 at 20k; benchmarks/README.md, Poisson section).
_ONE_REFINEMENT_MAX_VERTICES = 5120
_REGISTRY_SIZE = 8  # Factors kept on the host (one per live topology; old buckets are evicted).
_registry: collections.OrderedDict = collections.OrderedDict()
_registry_lock = threading.Lock()


class SolveInfo(NamedTuple):
  """Diagnostics of one forward solve, for the caller to log (see warn_if_capped)."""

  iterations: jax.Array  # int32 []: CG iterations; 0 for the direct solvers.
  residual: jax.Array  # float32 []: ||b - A x|| / ||b|| of the pinned system (before place()).


def _without_dense(backend: str) -> str:
  """The solver of a backend when no dense inverse is used: a host callback costs two transfers
  per solve on accelerators, so CG there."""
  return 'cholesky' if backend == 'cpu' else 'cg'


def resolve_solver(name: str, num_vertices: int, dense_max_vertices: int,
                   backend: str | None = None) -> str:
  """Maps 'auto' to the fastest measured solver for the backend and vertex capacity.

  CPU: 'dense' up to CPU_DENSE_MAX_VERTICES (as fast as 'cholesky' there, and no host callback),
  else 'cholesky'. Accelerators: 'dense' (all on device), else 'cg'. 'auto' never picks 'dense'
  above dense_max_vertices (config.geometry.dense_max_vertices: its inverse takes 4 Vc^2 bytes)
  and logs one line when that guard decides. Other names are returned as they are.

  Args:
    name: config.geometry.solver, one of SOLVERS.
    num_vertices: the padded vertex count Vc the operators are built for.
    dense_max_vertices: the memory guard.
    backend: jax backend name; default jax.default_backend().
  """
  if name not in SOLVERS:
    raise ValueError(f'Unknown Poisson solver {name!r}; use one of {SOLVERS}.')
  if name != 'auto':
    return name
  backend = jax.default_backend() if backend is None else backend
  fallback = _without_dense(backend)
  if backend == 'cpu' and num_vertices > CPU_DENSE_MAX_VERTICES:
    return fallback
  if num_vertices > dense_max_vertices:
    logging.warning(
        "Poisson solver 'auto' uses %r, not 'dense': its inverse for %d vertices would take %.2f GB, "
        'above geometry.dense_max_vertices = %d.', fallback, num_vertices, 4e-9 * num_vertices**2,
        dense_max_vertices)
    return fallback
  return 'dense'


def concrete_solver(operators: operators_lib.PoissonOperators, name: str) -> str:
  """The solver poisson_solve runs: 'auto' follows the operators (dense when they carry an
  inverse, which pipeline.build_mesh attaches where resolve_solver picks 'dense')."""
  if name not in SOLVERS:
    raise ValueError(f'Unknown Poisson solver {name!r}; use one of {SOLVERS}.')
  if name == 'auto':
    return 'dense' if operators.dense_inverse is not None else _without_dense(jax.default_backend())
  if name == 'dense' and operators.dense_inverse is None:
    raise ValueError("The dense Poisson solver needs the operators' inverse: "
                     'operators = attach_dense_inverse(rest_vertices, faces, operators).')
  return name


def _factor(key: bytes, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
            size: int) -> cholespy.CholeskySolverD:
  """Host: the registry's float64 factor for key, built from the COO arrays if missing."""
  with _registry_lock:
    solver = _registry.get(key)
    if solver is not None:
      _registry.move_to_end(key)
      return solver
  keep = values != 0
  solver = cholespy.CholeskySolverD(
      size, np.ascontiguousarray(rows[keep], np.int32), np.ascontiguousarray(cols[keep], np.int32),
      np.ascontiguousarray(values[keep], np.float64), cholespy.MatrixType.COO)
  with _registry_lock:
    _registry[key] = solver
    while len(_registry) > _REGISTRY_SIZE:
      _registry.popitem(last=False)
  return solver


def register_factor(rest_vertices: np.ndarray, faces: np.ndarray,
                    operators: operators_lib.PoissonOperators) -> None:
  """Host: factors the operators' system from the float64 mesh (more accurate than float32).

  Optional: without it the first Cholesky solve factors the float32 operator values.
  """
  vertex_capacity = operators.vertex_mask.shape[0]
  system = operators_lib.pinned_system(rest_vertices, faces, vertex_capacity).matrix.tocoo()
  key = np.asarray(operators.topology_key).tobytes()
  with _registry_lock:
    _registry.pop(key, None)
  _factor(key, system.row, system.col, system.data, vertex_capacity)


@functools.partial(jax.jit, static_argnames='size')
def _dense_inverse(rows: jax.Array, cols: jax.Array, values: jax.Array,
                   size: int) -> tuple[jax.Array, jax.Array]:
  """A^-1 of the COO matrix from its float32 Cholesky factor, and whether it is finite (the
  factor is NaN where A is not numerically positive definite)."""
  lower = jnp.linalg.cholesky(jnp.zeros((size, size), values.dtype).at[rows, cols].add(values))
  inverse = jax.scipy.linalg.cho_solve((lower, True), jnp.eye(size, dtype=values.dtype))
  return inverse, jnp.all(jnp.isfinite(inverse))


def attach_dense_inverse(rest_vertices: np.ndarray, faces: np.ndarray,
                         operators: operators_lib.PoissonOperators) -> operators_lib.PoissonOperators:
  """Host: the operators with the 'dense' solver's inverse, computed on the default device.

  float32 (the refinement step recovers the float64 solve's accuracy); the row sums come from
  the float64 mesh, as register_factor's factor does.
  """
  size = operators.vertex_mask.shape[0]
  system = operators_lib.pinned_system(rest_vertices, faces, size).matrix
  inverse, finite = _dense_inverse(operators.rows, operators.cols, operators.values, size)
  if not finite:
    raise orientation.TemplateError(
        f'geometry.solver: the dense inverse of the template\'s Poisson system ({len(rest_vertices)} vertices) is '
        "not finite in float32 (the system is too ill-conditioned). Fix: --config.geometry.solver=cholesky.")
  row_sums = jnp.asarray(system @ np.ones(size), jnp.float32)
  return operators._replace(dense_inverse=operators_lib.DenseInverse(inverse, row_sums))


def _refinement_residual(operators: operators_lib.PoissonOperators, rhs: jax.Array,
                         x: jax.Array) -> jax.Array:
  """b - A x with A x = s x + sum_{j != i} A_ij (x_j - x_i): rounds differences of neighbours,
  not absolute positions (module docstring)."""
  off_diagonal = jnp.where(operators.rows != operators.cols, operators.values, 0.0)
  products = off_diagonal[:, None] * (x[operators.cols] - x[operators.rows])
  neighbours = jax.ops.segment_sum(
      products, operators.rows, num_segments=x.shape[0], indices_are_sorted=True)
  return rhs - operators.dense_inverse.row_sums[:, None] * x - neighbours


def _dense_solve(operators: operators_lib.PoissonOperators, rhs: jax.Array) -> jax.Array:
  inverse = operators.dense_inverse.inverse
  x = inverse @ rhs
  for _ in range(1 if inverse.shape[0] <= _ONE_REFINEMENT_MAX_VERTICES else 2):
    x = x + inverse @ _refinement_residual(operators, rhs, x)
  return x


def _host_cholesky_solve(key, rows, cols, values, rhs):
  """Host: float64 solve of one right-hand side block [Vc, C] -> float32 [Vc, C]."""
  solver = _factor(np.asarray(key).tobytes(), np.asarray(rows), np.asarray(cols),
                   np.asarray(values), rhs.shape[0])
  # cholespy wants writable C-contiguous buffers; JAX hands the callback read-only views.
  rhs64 = np.array(rhs, dtype=np.float64, order='C', copy=True)
  out = np.zeros_like(rhs64)
  solver.solve(rhs64, out)
  return out.astype(np.float32)


def _cholesky_solve(operators: operators_lib.PoissonOperators, rhs: jax.Array) -> jax.Array:
  return jax.pure_callback(
      _host_cholesky_solve, jax.ShapeDtypeStruct(rhs.shape, rhs.dtype), operators.topology_key,
      operators.rows, operators.cols, operators.values, rhs, vmap_method='sequential')


def _cg(operators, matvec, rhs, x0, tol, maxiter, precondition) -> tuple[jax.Array, jax.Array]:
  """(x, iterations): CG until ||r|| <= tol ||b|| or maxiter iterations; one inner product over
  all columns, as jax.scipy.sparse.linalg.cg (which does not report its iterations)."""
  scale = (lambda r: r / operators.diagonal[:, None]) if precondition else (lambda r: r)
  x = jnp.zeros_like(rhs) if x0 is None else x0
  r = rhs - matvec(x)
  z = scale(r)
  bound = tol**2 * jnp.vdot(rhs, rhs)

  def running(state):
    _, r, _, _, k = state
    return (jnp.vdot(r, r) > bound) & (k < maxiter)

  def iteration(state):
    x, r, p, rz, k = state
    ap = matvec(p)
    alpha = rz / jnp.vdot(p, ap)
    x, r = x + alpha * p, r - alpha * ap
    z = scale(r)
    rz_next = jnp.vdot(r, z)
    return x, r, z + (rz_next / rz) * p, rz_next, k + 1

  x, _, _, _, iterations = jax.lax.while_loop(running, iteration,
                                              (x, r, z, jnp.vdot(r, z), jnp.int32(0)))
  return x, iterations


def _info(matvec, rhs: jax.Array, x: jax.Array, iterations) -> SolveInfo:
  norm = jnp.linalg.norm(rhs)
  residual = jnp.linalg.norm(rhs - matvec(x)) / jnp.where(norm > 0, norm, 1.0)
  return SolveInfo(jnp.asarray(iterations, jnp.int32), residual)


def warm_start(operators: operators_lib.PoissonOperators, previous: jax.Array) -> jax.Array:
  """Shifts a previous poisson_solve output [Vc, 3] onto the pins (translation-free start)."""
  shift = operators.rest_vertices - previous
  return previous + shift[operators.pin_of_vertex]


def place(operators: operators_lib.PoissonOperators, solution: jax.Array) -> jax.Array:
  """Translates the solution so that its anchor (weighted mean) matches the template's; padding
  rows copy vertex 0."""
  placed = solution - operators.anchor_weights @ solution + operators.anchor
  return jnp.where(operators.vertex_mask[:, None], placed, placed[0])


def poisson_solve_with_info(operators: operators_lib.PoissonOperators,
                            jacobians: jax.Array,
                            solver: str,
                            x0: jax.Array | None = None,
                            tol: float | None = None,
                            maxiter: int | None = None,
                            precondition: bool = False) -> tuple[jax.Array, SolveInfo]:
  """poisson_solve and the SolveInfo of its forward solve (not differentiated)."""
  solver = concrete_solver(operators, solver)
  rhs = jnp.where(operators.pinned[:, None], 0.0, operators_lib.poisson_rhs(operators, jacobians))
  rhs = rhs + operators.pin_rhs
  matvec = functools.partial(operators_lib.system_matvec, operators)
  if solver == 'cg':
    if tol is None or maxiter is None:
      raise ValueError('The cg solver needs tol and maxiter (config.geometry.cg_tol, cg_maxiter).')
    start = None if x0 is None else warm_start(operators, jax.lax.stop_gradient(x0))

    def cg(mv, b, start):
      x, iterations = _cg(operators, mv, b, start, tol, maxiter, precondition)
      return x, _info(mv, b, x, iterations)

    # The warm start only helps the forward solve; the backward (cotangent) solve starts at 0.
    solve = functools.partial(cg, start=start)
    transpose_solve = functools.partial(cg, start=None)
  else:
    direct = _dense_solve if solver == 'dense' else _cholesky_solve

    def solve(mv, b):
      x = direct(operators, b)
      return x, _info(mv, b, x, 0)

    transpose_solve = solve
  solution, info = jax.lax.custom_linear_solve(
      matvec, rhs, solve, transpose_solve, symmetric=True, has_aux=True)
  return place(operators, solution), info


def poisson_solve(operators: operators_lib.PoissonOperators,
                  jacobians: jax.Array,
                  solver: str,
                  x0: jax.Array | None = None,
                  tol: float | None = None,
                  maxiter: int | None = None,
                  precondition: bool = False) -> jax.Array:
  """Vertices whose per-face Jacobians best match `jacobians` (least squares weighted by 2A).

  Args:
    operators: PoissonOperators of the topology ('dense' needs operators.dense_inverse).
    jacobians: float32 [Fc, 3, 3], J[f][i, j] = d x_i / d r_j (padding faces are ignored).
    solver: 'dense', 'cholesky', 'cg', or 'auto': 'dense' when the operators carry a dense
      inverse, else 'cholesky' on CPU and 'cg' elsewhere (resolve_solver decides, per mesh, which
      operators get one); static.
    x0: 'cg' only: warm start, a previous output [Vc, 3] of this function (gradient stopped).
    tol: 'cg' only: relative residual tolerance (config.geometry.cg_tol).
    maxiter: 'cg' only: iteration cap (config.geometry.cg_maxiter).
    precondition: 'cg' only: Jacobi preconditioner (diagonal of the system).

  Returns:
    float32 [Vc, 3], its anchor (operators.anchor_weights) where the template's is; padding
    rows copy vertex 0.
    Differentiable w.r.t. jacobians (implicit solve; the backward pass is one more solve).
  """
  return poisson_solve_with_info(operators, jacobians, solver, x0, tol, maxiter, precondition)[0]


def warn_if_capped(iterations: np.ndarray | int, residual: np.ndarray | float, maxiter: int) -> bool:
  """Host: logs a warning when a CG solve stopped at its iteration cap; True if it did.

  iterations and residual: SolveInfo fields fetched to the host (scalars, or arrays over
  frames or steps: the worst one is reported).
  """
  iterations, residual = np.asarray(iterations), np.asarray(residual)
  if not np.any(iterations >= maxiter):
    return False
  logging.warning(
      'Poisson CG stopped at its iteration cap (geometry.cg_maxiter = %d) with relative residual '
      "%.2e; raise geometry.cg_maxiter or use geometry.solver='dense' or 'cholesky'.", maxiter,
      float(np.max(residual)))
  return True


def clear_factors() -> None:
  """Host: drops every cached factor (tests, or to free memory after many remeshes)."""
  with _registry_lock:
    _registry.clear()


def splu_reference(operators: operators_lib.PoissonOperators) -> scipy.sparse.linalg.SuperLU:
  """Host: scipy sparse LU of the pinned system (float64), for benchmarks and tests."""
  size = operators.vertex_mask.shape[0]
  matrix = scipy.sparse.csc_matrix(
      (np.asarray(operators.values, np.float64),
       (np.asarray(operators.rows), np.asarray(operators.cols))), shape=(size, size))
  return scipy.sparse.linalg.splu(matrix)
