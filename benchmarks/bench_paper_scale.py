"""Paper-size benchmark (issue 14): the training step and its costly pieces at the paper's sizes,
and the paper's whole schedule extrapolated from them, on whatever backend JAX has (CPU or GPU).

Sizes are configs/default.py's (the paper's): 1080x1080 images, hash tables 2^19, a 1024^2
texture; garment templates of about 5k and 14k vertices (the paper's meshes grow to ~14k by
remeshing): the demo sequence's template, midpoint-subdivided as bench_train.subdivide_to does
while it stays under the target, then grown to it by the remesher's edge splits on its lowest
faces (grow_template). Per template, each jitted on its own:
  rasterize         render.rasterize forward (the posed template seen by the frame's camera);
  shading           render_garment (rasterize, normals, interpolate, antialias) forward + backward
                    w.r.t. the posed vertices;
  poisson <solver>  every solver of poisson.SOLVERS but 'auto', forward + backward w.r.t. J, CG
                    warm-started from the solution before one optimizer-sized change of J (as in
                    training), with the host time of the mesh build (factor included); a solver
                    whose factor would not fit in memory is skipped with the reason;
  geometry warm-up, geometry dynamic and appearance steps, as the training loops call them
                    (bench_train.step_args, geometry_step_fn, appearance_setup), without their
                    donation of the state (the same arguments serve every repeat).
Timing as bench_train.timed: trace + lower and XLA compile apart, then the median of --repeats
runs after one warm-up run. The schedule (configs/default.py): train.warmup_epochs x --frames
warm-up steps, the remaining geometry epochs at the dynamic step, appearance.num_epochs x --frames
appearance steps, plus the compiles and the len(remesh.epochs) remeshes (mesh build + recompile of
the dynamic step); the paper's meshes start smaller than they end, so its run lies between the
hours of the two templates.

  PYTHONPATH=. .venv/bin/python benchmarks/bench_paper_scale.py [--quick] [--json F] [--markdown F]
  PYTHONPATH=. .venv/bin/python benchmarks/bench_paper_scale.py --resolution 128 --vertices 1000 --repeats 1

--quick: 2 repeats and the 5k template only. The second line is the CI-size dry run (about a
minute on 2 CPU cores). --sequence: a demo sequence folder; by default the demo preset of the
cache (ngd_jax.data.synthetic, generated on first use).
"""

import argparse
import dataclasses
import datetime
import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from bench_train import appearance_setup
from bench_train import geometry_step_fn
from bench_train import report
from bench_train import step_args
from bench_train import subdivide_to
from bench_train import timed

from configs import default
from ngd_jax import data
from ngd_jax import frames as frames_lib
from ngd_jax import padding
from ngd_jax import pipeline
from ngd_jax import remesh
from ngd_jax import render
from ngd_jax import run as run_lib
from ngd_jax.geometry import poisson

# Frames decoded at the benchmark's resolution: a step reads one, so their number only sets the
# load time; the state's per-frame warm starts are sized for --frames (with_frames).
LOADED_FRAMES = 8
PAPER_VERTICES = (5000, 14000)


def paper_config(sequence: str, resolution: int) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.path = sequence
  config.data.resolution = resolution
  config.data.num_frames = LOADED_FRAMES
  return config


def grow_template(vertices: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
  """Host: the template grown to about target_vertices (at least that many; unchanged above it).

  Midpoint levels (bench_train.subdivide_to) while the finer level stays under the target, then
  remesh.refine_mesh's edge splits (docs/method.md section 6: how the paper's meshes grow) on the
  fewest lowest faces (the hem first) that reach the target, found by bisection.
  """
  vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int32)
  while True:
    finer = subdivide_to(vertices, faces, 4 * len(faces))  # One midpoint level.
    if len(finer[0]) > target_vertices:
      break
    vertices, faces = finer
  if len(vertices) >= target_vertices:
    return vertices, faces
  order = np.argsort(vertices[faces].mean(axis=1)[:, 1])

  def grown(count):
    selected = np.zeros(len(faces), bool)
    selected[order[:count]] = True
    result = remesh.refine_mesh(vertices, faces, selected, min_edge_length=0.0)
    return result.vertices, result.faces

  low, high = 1, len(faces)  # All faces split every edge: the finer level, above the target.
  while low < high:
    middle = (low + high) // 2
    if len(grown(middle)[0]) < target_vertices:
      low = middle + 1
    else:
      high = middle
  return grown(low)


def make_run(config: ml_collections.ConfigDict, target_vertices: int) -> run_lib.Run:
  """Host: the Run of config's sequence with its template grown to target_vertices."""
  seq = data.read_sequence(config.data.path)
  vertices, faces = pipeline.load_template(config, seq)
  vertices, faces = grow_template(vertices, faces, target_vertices)
  vertices = np.asarray(vertices, np.float32).astype(np.float64)  # As pipeline.load_inputs rounds it.
  return run_lib.Run(config, pipeline.RunInputs(seq, frames_lib.load_frames(seq, config), vertices, faces,
                                              pipeline.body_distance_grid(seq, vertices, config)))


def with_frames(state: run_lib.GeometryState, num_frames: int) -> run_lib.GeometryState:
  """The state's per-frame CG warm starts (kept for the cg solver only) sized for a run of
  num_frames frames, as the step reads and writes them."""
  if state.solutions is None:
    return state
  return state._replace(
      solutions=jnp.broadcast_to(state.solutions[:1], (num_frames,) + state.solutions.shape[1:]))


def _record(results: dict, name: str, timing, **extra) -> None:
  results[name] = dict(dataclasses.asdict(timing), **extra)
  report(name, results[name])


def measure_render(run: run_lib.Run, mesh, frame, repeats: int) -> dict[str, dict]:
  """Rasterize forward and render_garment forward + backward on the skinned template."""
  model = run.model
  posed = jax.jit(model.skin)(mesh, mesh.operators.rest_vertices, frame)

  def rasterize(mesh, posed, frame):
    clip = render.to_clip(posed, frame.world_to_clip)
    return render.rasterize(clip, mesh.operators.faces, model.resolution, model.backend)

  def channels(mesh, posed, frame):
    out = model.render(mesh, posed, frame)
    return jnp.concatenate([out.diffuse, out.alpha, out.depth], axis=-1)

  def shading(mesh, posed, frame, cotangent):
    image, pullback = jax.vjp(functools.partial(channels, mesh, frame=frame), posed)
    return image, pullback(cotangent)

  shape = jax.eval_shape(channels, mesh, posed, frame).shape
  cotangent = jax.random.normal(jax.random.PRNGKey(1), shape)
  results = {}
  _record(results, 'rasterize', timed(rasterize, (mesh, posed, frame), repeats))
  _record(results, 'shading', timed(shading, (mesh, posed, frame, cotangent), repeats))
  return results


def available_bytes() -> int:
  """Free memory of the default device (host memory on CPU)."""
  stats = jax.devices()[0].memory_stats() or {}
  if 'bytes_limit' in stats:
    return stats['bytes_limit'] - stats.get('bytes_in_use', 0)
  return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def skip_reason(solver: str, vertex_capacity: int) -> str | None:
  """Why a solver cannot run here: the dense one holds Vc^2 float32, twice while it is built."""
  if solver != 'dense':
    return None
  need, free = 8 * vertex_capacity**2, available_bytes()
  if need <= free // 2:
    return None
  return f'its {vertex_capacity}^2 matrix needs {need / 1e9:.1f} GB to build, {free / 1e9:.1f} GB free'


def measure_solvers(run: run_lib.Run, state: run_lib.GeometryState, repeats: int) -> dict[str, dict]:
  """Every solver of poisson.SOLVERS but 'auto': forward + backward w.r.t. J, and its mesh build."""
  vertices, faces = run.inputs.template_vertices, run.inputs.template_faces
  capacity = padding.capacity(len(vertices), run.config.remesh.capacity_multiple)
  rng = np.random.default_rng(0)
  static = state.params['static']
  jacobians = static + jnp.asarray(0.05 * rng.normal(size=static.shape), jnp.float32)
  change = jnp.asarray(1e-3 * rng.normal(size=static.shape), jnp.float32)  # One optimizer step.
  cotangent = jnp.asarray(rng.normal(size=(capacity, 3)), jnp.float32)
  results = {}
  for solver in poisson.SOLVERS:
    if solver == 'auto':
      continue
    name = f'poisson {solver}'
    reason = skip_reason(solver, capacity)
    if reason is not None:
      print(f'{name:32s} skipped: {reason}', flush=True)
      results[name] = {'skipped': reason}
      continue
    config = run.config.copy_and_resolve_references()
    config.geometry.solver = solver
    start = time.perf_counter()
    mesh = pipeline.build_mesh(vertices, faces, run.inputs, config)
    build_s = time.perf_counter() - start
    model = dataclasses.replace(run.model, solver=solver)
    previous = jax.jit(model.solve)(mesh, jacobians)

    def fwd_bwd(mesh, jacobians, x0, cotangent, model=model):
      return jax.value_and_grad(lambda j: jnp.vdot(model.solve(mesh, j, x0), cotangent))(jacobians)

    _record(results, name, timed(fwd_bwd, (mesh, jacobians + change, previous, cotangent), repeats),
            mesh_build_s=build_s)
  return results


def measure(run: run_lib.Run, repeats: int, num_frames: int) -> dict:
  """All timings of one template at one resolution."""
  state, mesh, constants, frames, batch, log = step_args(run)
  state = with_frames(state, num_frames)
  frame = pipeline.frame_inputs(frames, batch.t[0], batch.pose_code[0])
  vertices, faces = run.inputs.template_vertices, run.inputs.template_faces
  start = time.perf_counter()
  run.mesh_for(vertices, faces)  # What a remesh rebuilds, with the step's solver.
  result = {
      'vertices': len(vertices), 'faces': len(faces), 'vertex_capacity': int(state.rest_vertices.shape[0]),
      'face_capacity': int(state.faces.shape[0]), 'resolution': list(run.bank.resolution),
      'step_solver': poisson.resolve_solver(run.config.geometry.solver, int(state.rest_vertices.shape[0]),
                                            run.config.geometry.dense_max_vertices),
      'mesh_build_s': time.perf_counter() - start, 'timings': {},
  }
  print(f'\n{result["vertices"]} vertices / {result["faces"]} faces at {result["resolution"][0]}x'
        f'{result["resolution"][1]}, step solver {result["step_solver"]!r}', flush=True)
  timings = result['timings']
  timings.update(measure_render(run, mesh, frame, repeats))
  timings.update(measure_solvers(run, state, repeats))
  for dynamic in (False, True):
    label = 'geometry dynamic step' if dynamic else 'geometry warm-up step'
    _record(timings, label, timed(geometry_step_fn(run, dynamic), (state, mesh, constants, frames, batch, log),
                                  repeats))
  app_state, app_inputs, _, _, step = appearance_setup(run, state, mesh, constants)
  _record(timings, 'appearance step', timed(step, (app_state,) + app_inputs, repeats))
  return result


def schedule(config: ml_collections.ConfigDict, num_frames: int, result: dict) -> dict[str, float]:
  """Hours of the paper's schedule at one template's measured times (docs/method.md section 5)."""
  timings = result['timings']
  warmup, dynamic, appearance = (timings[k] for k in ('geometry warm-up step', 'geometry dynamic step',
                                                      'appearance step'))
  remeshes = len(config.remesh.epochs)
  compile_s = lambda t: t['lower_s'] + t['compile_s']
  overhead_s = (compile_s(warmup) + (1 + remeshes) * compile_s(dynamic) + compile_s(appearance) +
                remeshes * result['mesh_build_s'])
  hours = {
      'geometry warm-up': config.train.warmup_epochs * num_frames * warmup['ms'] / 3.6e6,
      'geometry dynamic': (config.train.num_epochs - config.train.warmup_epochs) * num_frames * dynamic['ms'] / 3.6e6,
      'appearance': config.appearance.num_epochs * num_frames * appearance['ms'] / 3.6e6,
      'compiles and remeshes': overhead_s / 3600,
  }
  hours['total'] = sum(hours.values())
  return hours


def _ms(value: float) -> str:
  return f'{value:,.0f}' if value >= 100 else f'{value:.3g}'


def _cell(timing: dict | None) -> str:
  if timing is None:
    return 'not measured'
  if 'skipped' in timing:
    return f'skipped: {timing["skipped"]}'
  cell = _ms(timing['ms'])
  return f'{cell} (build {timing["mesh_build_s"]:.2g} s)' if 'mesh_build_s' in timing else cell


def markdown(config: ml_collections.ConfigDict, num_frames: int, results: list[dict], environment: dict) -> str:
  """The measured table and the schedule table."""
  columns = [f'{r["vertices"]} V / {r["faces"]} F, {r["resolution"][0]}^2, {r["step_solver"]} in the step'
             for r in results]
  header = lambda first: [f'| {first} | ' + ' | '.join(columns) + ' |', '|---' + '|---:' * len(columns) + '|']
  lines = [f'{environment["backend"]} ({environment["device"]}), jax {environment["jax"]}, '
           f'{environment["cpus"]} CPUs, {environment["date"]}, load average {environment["load_start"]:.1f} '
           f'-> {environment["load_end"]:.1f}; median of {environment["repeats"]}; hash tables '
           f'2^{config.geometry.hash_log2_table_size}, texture {config.appearance.texture_size}^2, '
           f"geometry.solver '{config.geometry.solver}'.", '']
  lines += header('ms (median)')
  names = list(dict.fromkeys(name for r in results for name in r['timings']))
  for name in names:
    label = name + ('' if name.endswith('step') else ' forward' if name == 'rasterize' else ' forward + backward')
    lines.append(f'| {label} | ' + ' | '.join(_cell(r['timings'].get(name)) for r in results) + ' |')
  compiles = lambda r: ' / '.join(f'{r["timings"][k]["compile_s"]:.0f}' for k in (
      'geometry warm-up step', 'geometry dynamic step', 'appearance step'))
  lines.append('| XLA compile, warm-up / dynamic / appearance step (s) | ' +
               ' | '.join(compiles(r) for r in results) + ' |')
  lines += ['', f'Paper schedule ({config.train.num_epochs} geometry epochs, {config.train.warmup_epochs} of them '
            f'warm-up, {config.appearance.num_epochs} appearance epochs, {num_frames} frames, '
            f'{len(config.remesh.epochs)} remeshes), hours if every step ran at that size:', '']
  lines += header('hours')
  hours = [schedule(config, num_frames, r) for r in results]
  for name in hours[0]:
    cells = [f'{h[name]:.3g}' if h[name] >= 0.01 else '< 0.01' for h in hours]
    label = f'**{name}**' if name == 'total' else name
    lines.append(f'| {label} | ' + ' | '.join(f'**{c}**' if name == 'total' else c for c in cells) + ' |')
  return '\n'.join(lines)


def environment(repeats: int, load_start: float) -> dict:
  device = jax.devices()[0]
  return {'backend': jax.default_backend(), 'device': device.device_kind, 'jax': jax.__version__,
          'cpus': os.cpu_count(), 'repeats': repeats, 'load_start': load_start, 'load_end': os.getloadavg()[0],
          'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
          'command': ' '.join(sys.argv)}


def demo_sequence(path: str) -> str:
  if path:
    return path
  from ngd_jax.data import synthetic  # pylint: disable=g-import-not-at-top  (MuJoCo only when generating)

  print('Sequence: the demo preset in the cache (generated on first use: a minute or two).', flush=True)
  return str(synthetic.ensure_sequence('demo', seed=0))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sequence', default='', help='demo sequence folder (default: the cached demo preset)')
  parser.add_argument('--resolution', type=int, default=1080, help='image side (pixels)')
  parser.add_argument('--vertices', type=int, nargs='+', help=f'template sizes (default {PAPER_VERTICES})')
  parser.add_argument('--frames', type=int, default=100, help='training frames of the schedule')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--quick', action='store_true', help='2 repeats, the 5k template only')
  parser.add_argument('--json', default='', help='also write the results here')
  parser.add_argument('--markdown', default='', help='also write the tables here')
  args = parser.parse_args(argv)
  load_start = os.getloadavg()[0]
  repeats = 2 if args.quick else args.repeats
  sizes = args.vertices or (PAPER_VERTICES[:1] if args.quick else PAPER_VERTICES)
  config = paper_config(demo_sequence(args.sequence), args.resolution)
  print(f'jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}), {os.cpu_count()} CPUs, '
        f'load average {load_start:.1f}', flush=True)
  results = []
  for size in sizes:  # The outputs are rewritten after each template, so a run cut short keeps the first.
    results.append(measure(make_run(config, size), repeats, args.frames))
    env = environment(repeats, load_start)
    tables = markdown(config, args.frames, results, env)
    if args.markdown:
      with open(args.markdown, 'w') as f:
        f.write(tables + '\n')
    if args.json:
      with open(args.json, 'w') as f:
        json.dump({'environment': env, 'frames': args.frames,
                   'results': [dict(r, schedule_hours=schedule(config, args.frames, r)) for r in results]}, f,
                  indent=1)
  print('\n' + tables)


if __name__ == '__main__':
  main()
