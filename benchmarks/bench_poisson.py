"""Benchmark of the Poisson solvers (docs/design.md section 5): 3 right-hand sides, float32 step.

Per mesh size, side by side: 'dense' (float32 inverse on the device, one product and one
refinement step; also the same with two triangular solves of the factor in place of the product),
'cholesky' (float64 cholespy factor on the host, through jax.pure_callback),
'cg' cold and 'cg' warm-started from the solution of a slightly different J (as in training,
where J changes by one optimizer step between visits of a frame), and scipy's splu solve of the
same system on the host as a reference; forward and forward + backward (gradient of a loss on the
vertices w.r.t. J), factorisation times, and each solver's relative error against the float64
cholesky solve, in value and in gradient. Medians over repeats; prints a markdown table.

  PYTHONPATH=. .venv/bin/python benchmarks/bench_poisson.py [--sizes 1000 5000 20000]
  PYTHONPATH=. .venv/bin/python benchmarks/bench_poisson.py --precision --sizes 1000 5000

--dense_max_vertices skips the dense solver above that size (its inverse takes 4 V^2 bytes, and
three times that while it is computed).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg
from timing import median_time

from configs import default
from ngd_jax.geometry import operators as operators_lib
from ngd_jax.geometry import poisson


def tube(num_vertices: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """An open, jittered cylinder (skirt-like: radius 0.2 m, length 0.6 m, two boundary loops) of
  about num_vertices, with near-isotropic triangles (equal spacing around and along)."""
  radius, length = 0.2, 0.6
  around = int(np.sqrt(num_vertices * 2 * np.pi * radius / length))
  height = num_vertices // around
  spacing = length / (height - 1)
  theta = 2 * np.pi * np.arange(around) / around
  y = np.linspace(0.0, length, height)
  ring = np.stack([radius * np.cos(theta), np.zeros(around), radius * np.sin(theta)], axis=1)
  vertices = (ring[None] + y[:, None, None] * np.array([0, 1, 0])).reshape(-1, 3)
  vertices += np.random.default_rng(seed).normal(scale=0.1 * spacing, size=vertices.shape)
  i, j = np.meshgrid(np.arange(height - 1), np.arange(around), indexing='ij')
  a, b = i * around + j, i * around + (j + 1) % around
  c, d = a + around, b + around
  faces = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)]).reshape(-1, 3)
  return vertices, faces


def _relative(value, reference) -> float:
  value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
  return float(np.linalg.norm(value - reference) / np.linalg.norm(reference))


def bench(num_vertices: int, repeats: int, tol: float, maxiter: int,
          dense_max_vertices: int) -> dict[str, float | str]:
  vertices, faces = tube(num_vertices)
  operators = operators_lib.build_operators(vertices, faces)
  results = {'vertices': len(vertices)}
  start = time.perf_counter()
  poisson.register_factor(vertices, faces, operators)
  results['cholesky_factor'] = time.perf_counter() - start
  if len(vertices) <= dense_max_vertices:
    start = time.perf_counter()  # One call (minutes at 20k on CPU), its compile included.
    dense_operators = jax.block_until_ready(
        poisson.attach_dense_inverse(vertices, faces, operators))
    results['dense_inverse'] = time.perf_counter() - start
  else:
    skipped = f'skipped ({4e-9 * len(vertices)**2:.1f} GB)'
    results.update(dense_inverse=skipped, triangular_fwd=skipped, triangular_error=skipped)
    dense_operators = None
  rng = np.random.default_rng(0)
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  jac = jac + jnp.asarray(0.05 * rng.normal(size=jac.shape), jnp.float32)
  step = jnp.asarray(1e-3 * rng.normal(size=jac.shape), jnp.float32)  # One optimizer step.
  weights = jnp.asarray(rng.normal(size=(len(vertices), 3)), jnp.float32)
  previous = poisson.poisson_solve(operators, jac, 'cholesky')

  variants = {
      'dense': (dense_operators, dict(solver='dense')),
      'cholesky': (operators, dict(solver='cholesky')),
      'cg_cold': (operators, dict(solver='cg', tol=tol, maxiter=maxiter)),
      'cg_warm': (operators, dict(solver='cg', tol=tol, maxiter=maxiter, warm=True)),
  }
  reference = None
  for name, (ops, kwargs) in variants.items():
    if ops is None:
      for key in ('fwd', 'fwd_bwd', 'error', 'grad_error'):
        results[f'{name}_{key}'] = 'skipped'
      continue
    kwargs = dict(kwargs)
    warm = kwargs.pop('warm', False)

    # Operators are arguments (as in the training step), not constants folded into the program.
    def solve(ops, j, x0, kwargs=kwargs, warm=warm):
      return poisson.poisson_solve(ops, j, x0=x0 if warm else None, **kwargs)

    fwd = jax.jit(solve)
    fwd_bwd = jax.jit(jax.value_and_grad(
        lambda ops, j, x0, s=solve: jnp.sum(weights * s(ops, j, x0)), argnums=1))
    args = (ops, jac + step, previous)
    results[f'{name}_fwd'] = median_time(lambda f=fwd: f(*args), repeats)
    results[f'{name}_fwd_bwd'] = median_time(lambda f=fwd_bwd: f(*args), repeats)
    outputs = (fwd(*args), fwd_bwd(*args)[1])
    reference = outputs if name == 'cholesky' else reference
    results[f'{name}_outputs'] = outputs
  for name in variants:
    outputs = results.pop(f'{name}_outputs', None)
    if outputs is not None:
      results[f'{name}_error'] = _relative(outputs[0], reference[0])
      results[f'{name}_grad_error'] = _relative(outputs[1], reference[1])
  if dense_operators is not None:
    results['triangular_fwd'], output = _triangular(dense_operators, jac + step, repeats)
    results['triangular_error'] = _relative(output, reference[0])
  rhs = np.asarray(operators_lib.poisson_rhs(operators, jac + step), np.float64)
  start = time.perf_counter()
  lu = poisson.splu_reference(operators)
  results['splu_factor'] = time.perf_counter() - start
  results['splu_solve'] = median_time(lambda: lu.solve(rhs), repeats)
  return results


def _triangular(operators, jacobians, repeats: int) -> tuple[float, jax.Array]:
  """Time and output of the dense forward solve with the Cholesky factor's two triangular solves
  in place of the inverse's product (the alternative poisson.py's docstring compares against),
  with the same refinement steps."""
  size = operators.vertex_mask.shape[0]
  matrix = jnp.zeros((size, size)).at[operators.rows, operators.cols].add(operators.values)
  # The factor stored transposed: LAPACK reads it column-major, so L.T is then a free bitcast
  # (stored as L, XLA copies all V^2 entries into LAPACK's layout on every solve).
  upper = jnp.linalg.cholesky(matrix).T.copy()
  solve_triangular = jax.lax.linalg.triangular_solve
  steps = 1 if size <= poisson._ONE_REFINEMENT_MAX_VERTICES else 2  # pylint: disable=protected-access

  def apply(upper, b):
    y = solve_triangular(upper.T, b, left_side=True, lower=True)
    return solve_triangular(upper.T, y, left_side=True, lower=True, transpose_a=True)

  @jax.jit
  def solve(ops, upper, j):
    rhs = jnp.where(ops.pinned[:, None], 0.0, operators_lib.poisson_rhs(ops, j)) + ops.pin_rhs
    x = apply(upper, rhs)
    for _ in range(steps):
      x = x + apply(upper, poisson._refinement_residual(ops, rhs, x))  # pylint: disable=protected-access
    return poisson.place(ops, x)

  return (median_time(lambda: solve(operators, upper, jacobians), repeats),
          solve(operators, upper, jacobians))


def refinement_errors(num_vertices: int) -> dict[str, tuple[float, float]]:
  """Relative errors of the dense solve against scipy's float64 spsolve, per refinement
  residual (none, the plain float32 product A x of operators.system_matvec, and poisson.py's
  edge-difference form) and step count, for two right-hand sides: the forward solve's of a
  perturbed template J, and a random one (as the backward solve's cotangent)."""
  vertices, faces = tube(num_vertices)
  operators = poisson.attach_dense_inverse(vertices, faces,
                                           operators_lib.build_operators(vertices, faces))
  system = operators_lib.pinned_system(vertices, faces, len(vertices)).matrix.tocsc()
  rng = np.random.default_rng(0)
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  jac = jac + jnp.asarray(0.05 * rng.normal(size=jac.shape), jnp.float32)
  forward = jnp.where(operators.pinned[:, None], 0.0, operators_lib.poisson_rhs(operators, jac))
  cotangent = jnp.asarray(rng.normal(size=forward.shape), jnp.float32)
  inverse = operators.dense_inverse.inverse
  errors = {}
  for rhs in (forward + operators.pin_rhs, cotangent):
    exact = scipy.sparse.linalg.spsolve(system, np.asarray(rhs, np.float64))
    residuals = {
        'plain': lambda x, b=rhs: b - operators_lib.system_matvec(operators, x),
        'difference': lambda x, b=rhs: poisson._refinement_residual(operators, b, x),  # pylint: disable=protected-access
    }
    errors.setdefault('none', []).append(_relative(inverse @ rhs, exact))
    for name, residual in residuals.items():
      x = inverse @ rhs
      for steps in (1, 2):
        x = x + inverse @ residual(x)
        errors.setdefault(f'{name}_{steps}', []).append(_relative(x, exact))
  return {key: tuple(value) for key, value in errors.items()}


ROWS = (
    ('dense_fwd', 'dense, fwd'),
    ('dense_fwd_bwd', 'dense, fwd+bwd'),
    ('cholesky_fwd', 'cholesky (pure_callback), fwd'),
    ('cholesky_fwd_bwd', 'cholesky (pure_callback), fwd+bwd'),
    ('cg_cold_fwd', 'CG cold, fwd'),
    ('cg_cold_fwd_bwd', 'CG cold, fwd+bwd'),
    ('cg_warm_fwd', 'CG warm, fwd'),
    ('cg_warm_fwd_bwd', 'CG warm, fwd+bwd'),
    ('splu_solve', 'scipy splu solve (host, float64), fwd'),
    ('triangular_fwd', 'dense via two triangular solves of the factor, fwd'),
    ('dense_inverse', 'dense inverse (float32, on device, once per topology; first call)'),
    ('cholesky_factor', 'cholespy factor (float64, host, once per topology)'),
    ('splu_factor', 'splu factor'),
)
ERRORS = (('dense', 'dense'), ('cg_cold', 'CG cold'), ('cg_warm', 'CG warm'))


def _ms(value) -> str:
  return value if isinstance(value, str) else f'{1e3 * value:.3g}'


def _error(value) -> str:
  return value if isinstance(value, str) else f'{value:.1e}'


def _ratio(results, name) -> str:
  value = results[f'{name}_fwd_bwd']
  return value if isinstance(value, str) else f"{value / results['cholesky_fwd_bwd']:.2f}x"


def table(all_results: list[dict]) -> str:
  header = '| ms (median) | ' + ' | '.join(f"{r['vertices']} V" for r in all_results) + ' |'
  lines = [header, '|---' + '|---:' * len(all_results) + '|']
  for key, label in ROWS:
    lines.append(f'| {label} | ' + ' | '.join(_ms(r[key]) for r in all_results) + ' |')
  for name, label in ERRORS:
    lines.append(f'| {label} / cholesky, fwd+bwd | ' +
                 ' | '.join(_ratio(r, name) for r in all_results) + ' |')
  for name, label in ERRORS:
    lines.append(f'| {label}: relative error vs cholesky, value / gradient | ' + ' | '.join(
        f"{_error(r[f'{name}_error'])} / {_error(r[f'{name}_grad_error'])}" for r in all_results) +
                 ' |')
  lines.append('| dense via triangular solves: relative error vs cholesky, value | ' +
               ' | '.join(_error(r['triangular_error']) for r in all_results) + ' |')
  return '\n'.join(lines)


def precision_table(sizes: list[int]) -> str:
  all_errors = [refinement_errors(size) for size in sizes]
  lines = ['| refinement residual: error forward / random rhs | ' +
           ' | '.join(f'{size} V' for size in sizes) + ' |',
           '|---' + '|---:' * len(sizes) + '|']
  for key, label in (('none', 'no refinement'), ('plain_1', 'float32 A x, 1 step'),
                     ('plain_2', 'float32 A x, 2 steps'), ('difference_1', 'edge differences, 1 step'),
                     ('difference_2', 'edge differences, 2 steps')):
    lines.append(f'| {label} | ' + ' | '.join(' / '.join(_error(v) for v in e[key])
                                            for e in all_errors) + ' |')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--sizes', type=int, nargs='+', default=[1000, 5000, 20000])
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--dense_max_vertices', type=int, default=25000)
  parser.add_argument('--precision', action='store_true',
                      help="only the dense solve's error against float64 per refinement residual")
  args = parser.parse_args()
  if args.precision:
    print(precision_table(args.sizes))
    return
  geometry = default.get_config().geometry
  print(f'jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}); '
        f'cg tol {geometry.cg_tol}, maxiter {geometry.cg_maxiter}; median of {args.repeats}.\n')
  all_results = []
  for size in args.sizes:
    all_results.append(
        bench(size, args.repeats, geometry.cg_tol, geometry.cg_maxiter, args.dense_max_vertices))
    print(f"measured {all_results[-1]['vertices']} vertices", flush=True)
  print()
  print(table(all_results))


if __name__ == '__main__':
  main()
