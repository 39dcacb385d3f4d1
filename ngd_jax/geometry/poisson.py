"""Poisson solve: Jacobians -> vertices (METHOD.md section 2, DESIGN.md section 5).

Two interchangeable solvers of the pinned system (operators.py), both differentiable by an
implicit solve through lax.custom_linear_solve (the system is symmetric, so the backward pass is
the same solve on the incoming gradient):
  'cg': jax.scipy.sparse.linalg.cg with a COO segment_sum matvec; runs on any backend,
    warm-startable from the previous solution of the same frame.
  'cholesky': a sparse Cholesky factor (cholespy / CHOLMOD) held on the host in float64 and
    called from jit through jax.pure_callback. Factors live in a small host registry keyed by
    the operators' topology_key; a missing factor (new topology, other process, evicted) is
    built from the operator arrays passed to the callback, so a remesh refactors without
    retracing the jitted step.
Precision: the step is float32. The Cholesky factor and the triangular solves are float64 (the
authors solve in float64), only the right-hand side and the result are float32.
"""

import collections
import functools
import threading

import cholespy
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ngd_jax.geometry import operators as operators_lib

SOLVERS = ('auto', 'cg', 'cholesky')
_REGISTRY_SIZE = 8  # Factors kept on the host (one per live topology; old buckets are evicted).
_registry: collections.OrderedDict = collections.OrderedDict()
_registry_lock = threading.Lock()


def resolve_solver(name: str) -> str:
  """Maps 'auto' to the faster solver of the platform (benchmarks/POISSON.md).

  On CPU the prefactored Cholesky is faster by one to two orders of magnitude; on accelerators a
  host callback costs two transfers per solve, so CG (all on device) is used.
  """
  if name not in SOLVERS:
    raise ValueError(f'Unknown Poisson solver {name!r}; use one of {SOLVERS}.')
  if name != 'auto':
    return name
  return 'cholesky' if jax.default_backend() == 'cpu' else 'cg'


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
  system = operators_lib.pinned_system(rest_vertices, faces, vertex_capacity)[0].tocoo()
  key = np.asarray(operators.topology_key).tobytes()
  with _registry_lock:
    _registry.pop(key, None)
  _factor(key, system.row, system.col, system.data, vertex_capacity)


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


def _cg(operators, matvec, rhs, x0, tol, maxiter, precondition):
  preconditioner = (lambda r: r / operators.diagonal[:, None]) if precondition else None
  x, _ = jax.scipy.sparse.linalg.cg(
      matvec, rhs, x0=x0, tol=tol, atol=0.0, maxiter=maxiter, M=preconditioner)
  return x


def warm_start(operators: operators_lib.PoissonOperators, previous: jax.Array) -> jax.Array:
  """Shifts a previous poisson_solve output [Vc, 3] onto the pins (translation-free start)."""
  shift = operators.rest_vertices - previous
  return previous + shift[operators.pin_of_vertex]


def place(operators: operators_lib.PoissonOperators, solution: jax.Array) -> jax.Array:
  """Translates the solution so that its anchor (weighted mean) matches the template's; padding
  rows copy vertex 0."""
  placed = solution - operators.anchor_weights @ solution + operators.anchor
  return jnp.where(operators.vertex_mask[:, None], placed, placed[0])


def poisson_solve(operators: operators_lib.PoissonOperators,
                  jacobians: jax.Array,
                  solver: str,
                  x0: jax.Array | None = None,
                  tol: float | None = None,
                  maxiter: int | None = None,
                  precondition: bool = False) -> jax.Array:
  """Vertices whose per-face Jacobians best match `jacobians` (least squares weighted by 2A).

  Args:
    operators: PoissonOperators of the topology.
    jacobians: float32 [Fc, 3, 3], J[f][i, j] = d x_i / d r_j (padding faces are ignored).
    solver: 'cg', 'cholesky' or 'auto' (resolve_solver); static.
    x0: 'cg' only: warm start, a previous output [Vc, 3] of this function (gradient stopped).
    tol: 'cg' only: relative residual tolerance (config.geometry.cg_tol).
    maxiter: 'cg' only: iteration cap (config.geometry.cg_maxiter).
    precondition: 'cg' only: Jacobi preconditioner (diagonal of the system).

  Returns:
    float32 [Vc, 3], its anchor (operators.anchor_weights) where the template's is; padding
    rows copy vertex 0.
    Differentiable w.r.t. jacobians (implicit solve; the backward pass is one more solve).
  """
  solver = resolve_solver(solver)
  rhs = jnp.where(operators.pinned[:, None], 0.0, operators_lib.poisson_rhs(operators, jacobians))
  rhs = rhs + operators.pin_rhs
  matvec = functools.partial(operators_lib.system_matvec, operators)
  if solver == 'cg':
    if tol is None or maxiter is None:
      raise ValueError('The cg solver needs tol and maxiter (config.geometry.cg_tol, cg_maxiter).')
    start = None if x0 is None else warm_start(operators, jax.lax.stop_gradient(x0))
    # The warm start only helps the forward solve; the backward (cotangent) solve starts at 0.
    solve = lambda mv, b: _cg(operators, mv, b, start, tol, maxiter, precondition)
    transpose_solve = lambda mv, b: _cg(operators, mv, b, None, tol, maxiter, precondition)
  else:
    solve = transpose_solve = lambda _, b: _cholesky_solve(operators, b)
  solution = jax.lax.custom_linear_solve(matvec, rhs, solve, transpose_solve, symmetric=True)
  return place(operators, solution)


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
