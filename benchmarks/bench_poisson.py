"""Benchmark of the Poisson solve (DESIGN.md section 5): 3 right-hand sides, float32 step.

Per mesh size: jitted CG cold, CG warm-started from the solution of a slightly different J (as
in training, where J changes by one optimizer step between visits of a frame), CG with a Jacobi
preconditioner, the prefactored Cholesky through jit (pure_callback), and scipy's splu solve of
the same system on the host; forward and forward + backward (gradient of a loss on the vertices
w.r.t. J). Medians over repeats.

  PYTHONPATH=. .venv/bin/python benchmarks/bench_poisson.py [--sizes 5000 20000 50000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
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


def bench(num_vertices: int, repeats: int, tol: float, maxiter: int) -> dict[str, float]:
  vertices, faces = tube(num_vertices)
  operators = operators_lib.build_operators(vertices, faces)
  start = time.perf_counter()
  poisson.register_factor(vertices, faces, operators)
  factor_time = time.perf_counter() - start
  rng = np.random.default_rng(0)
  jac = operators_lib.jacobians(operators, operators.rest_vertices)
  jac = jac + jnp.asarray(0.05 * rng.normal(size=jac.shape), jnp.float32)
  step = jnp.asarray(1e-3 * rng.normal(size=jac.shape), jnp.float32)  # One optimizer step.
  weights = jnp.asarray(rng.normal(size=(len(vertices), 3)), jnp.float32)

  variants = {
      'cg_cold': dict(solver='cg', tol=tol, maxiter=maxiter),
      'cg_warm': dict(solver='cg', tol=tol, maxiter=maxiter, warm=True),
      'cg_jacobi_warm': dict(solver='cg', tol=tol, maxiter=maxiter, warm=True, precondition=True),
      'cholesky': dict(solver='cholesky'),
  }
  previous = poisson.poisson_solve(operators, jac, 'cholesky')
  results = {'vertices': len(vertices), 'faces': len(faces), 'cholesky_factor': factor_time}
  for name, kwargs in variants.items():
    kwargs = dict(kwargs)
    warm = kwargs.pop('warm', False)

    # Operators are arguments (as in the training step), not constants folded into the program.
    def solve(ops, j, x0, kwargs=kwargs, warm=warm):
      return poisson.poisson_solve(ops, j, x0=x0 if warm else None, **kwargs)

    fwd = jax.jit(solve)
    fwd_bwd = jax.jit(jax.value_and_grad(
        lambda ops, j, x0, s=solve: jnp.sum(weights * s(ops, j, x0)), argnums=1))
    args = (operators, jac + step, previous)
    results[f'{name}_fwd'] = median_time(lambda f=fwd: f(*args), repeats)
    results[f'{name}_fwd_bwd'] = median_time(lambda f=fwd_bwd: f(*args), repeats)
    error = np.abs(np.asarray(fwd(*args)) -
                   np.asarray(poisson.poisson_solve(operators, jac + step, 'cholesky'))).max()
    results[f'{name}_maxerr_vs_cholesky'] = float(error)
  rhs = np.asarray(operators_lib.poisson_rhs(operators, jac + step), np.float64)
  start = time.perf_counter()
  lu = poisson.splu_reference(operators)
  results['splu_factor'] = time.perf_counter() - start
  results['splu_solve'] = median_time(lambda: lu.solve(rhs), repeats)
  matvec = jax.jit(operators_lib.system_matvec)
  results['matvec'] = median_time(lambda: matvec(operators, previous), repeats)
  return results


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--sizes', type=int, nargs='+', default=[5000, 20000, 50000])
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  geometry = default.get_config().geometry
  print(f'jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}); '
        f'cg tol {geometry.cg_tol}, maxiter {geometry.cg_maxiter}; times in ms (median of '
        f'{args.repeats}).')
  for size in args.sizes:
    r = bench(size, args.repeats, geometry.cg_tol, geometry.cg_maxiter)
    ms = {k: 1e3 * v for k, v in r.items() if not k.startswith(('vertices', 'faces', 'cg_cold_m',
                                                                  'cg_warm_m', 'cg_jacobi_warm_m',
                                                                  'cholesky_m'))}
    print(f"\n{r['vertices']} vertices, {r['faces']} faces")
    for key, value in ms.items():
      print(f'  {key:24s} {value:10.2f}')
    for key in ('cg_cold', 'cg_warm', 'cg_jacobi_warm', 'cholesky'):
      print(f"  {key + '_maxerr_vs_cholesky':24s} {r[key + '_maxerr_vs_cholesky']:10.2e}")
    for key in ('cg_cold', 'cg_warm', 'cg_jacobi_warm'):
      print(f"  ratio {key}/cholesky fwd+bwd: {r[key + '_fwd_bwd'] / r['cholesky_fwd_bwd']:.1f}")
    print(f"  ratio cholesky(jit)/splu fwd: {r['cholesky_fwd'] / r['splu_solve']:.1f}")


if __name__ == '__main__':
  main()
