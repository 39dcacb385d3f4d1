"""Training-step benchmark (issue 6, Benchmark): ms per step, compile time and a per-piece breakdown.

Per case (a: the demo sequence at 256^2 with its garment and configs/demo.py settings; b: the
same sequence at 512^2 with the template subdivided to ~10k faces):
  whole steps: the geometry warm-up step (J^S only), the full dynamic step (J^S + f_G) and the
    appearance step, each jitted as its loop runs it (train.geometry_step, appearance_phase.appearance_step);
  pieces of the dynamic geometry step, each its own jitted function on the same inputs:
    network   f_G forward + backward (face frames, normalisation, hash grids, MLP) w.r.t. its params;
    solve     the Poisson solve forward + backward w.r.t. J, per solver (cholesky; cg warm-started
              from the last solution as in training); the step also runs one forward-only solve of
              J^S (input of f_G), timed as solve_static;
    skin      linear blend skinning forward + backward;
    render    rasterize + shading + antialias forward + backward w.r.t. the posed vertices;
    losses    render loss (Huber, SSIM, mask), Jacobian term (visible faces), depth ranking with
              its pair sampling, forward + backward w.r.t. the images and J;
    optimizer optax update + apply_updates of the whole parameter tree;
    scores    remesh face statistics and their accumulation;
  and their sum next to the whole step (XLA fuses across pieces, so the sum is an estimate);
  pieces of the appearance step: static texture lookup, dynamic texture (hash grid + MLP), loss,
  optimizer, each forward + backward.
Timing: lower (trace) and compile are timed separately (jit(f).lower(...).compile()), then one
warm-up call and the median of --repeats calls, with jax.block_until_ready.

  PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py [--quick] [--case=a|b|both] [--sequence=/tmp/bench_seq]
  PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py --compile_only [--vectorized_hash] [--solver=cg]

The sequence: .venv/bin/python -m ngd_jax.data.synthetic --out=/tmp/bench_seq --preset=demo --seed=0.
--quick: case (a) only, 3 repeats. --compile_only: one JSON line with the lower and compile time
(wall and process CPU) and ms per step of the dynamic geometry step at the demo size, for comparing
XLA_FLAGS, JAX_COMPILATION_CACHE_DIR or code variants in separate processes.
A variant measured without editing the modules (benchmarks/README.md, proposals): --vectorized_hash
swaps in a hash grid computing all levels at once (same parameters; outputs checked equal here).
(The inverse-CDF depth pairs, covered-pixel dynamic texture and compact antialias proposals are now
in the library.) --solver sets config.geometry.solver ('cg' has no host callback, so the
persistent compilation cache can store its step; the Cholesky step is never cached).
"""

import argparse
import dataclasses
import functools
import itertools
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import trimesh

from configs import demo
from ngd_jax import appearance_phase
from ngd_jax import data
from ngd_jax import frames
from ngd_jax import hash_encoding
from ngd_jax import loop
from ngd_jax import losses
from ngd_jax import optimizers
from ngd_jax import pipeline
from ngd_jax import placement
from ngd_jax import remesh
from ngd_jax import run as run_lib
from ngd_jax import train
from ngd_jax.appearance import texture as texture_lib
from ngd_jax.geometry import poisson
from ngd_jax.geometry import templates
from ngd_jax.render import sampling


@dataclasses.dataclass
class Timing:
  lower_s: float
  compile_s: float
  compile_cpu_s: float  # Process CPU time of the compile (less sensitive to other users of the cores).
  ms: float


def timed(fn, args, repeats: int) -> Timing:
  """Host: trace/lower and compile time of jit(fn)(*args), then the median step in ms."""
  start = time.perf_counter()
  lowered = jax.jit(fn).lower(*args)
  lower_s = time.perf_counter() - start
  start, cpu_start = time.perf_counter(), time.process_time()
  compiled = lowered.compile()
  compile_s, compile_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return Timing(lower_s, compile_s, compile_cpu_s, 1e3 * statistics.median(times))


def subdivide_to(vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
  """Host: midpoint (1 -> 4) subdivision while it brings the face count closer to target_faces."""
  while abs(4 * len(faces) - target_faces) < abs(len(faces) - target_faces):
    vertices, faces = trimesh.remesh.subdivide(vertices, faces)
  return np.asarray(vertices, np.float64), np.asarray(faces, np.int32)


class HashGridEncoding(hash_encoding.HashGridEncoding):
  """All levels in one vectorised computation (same parameters and outputs as the module's loop)."""

  @hash_encoding.nn.compact
  def __call__(self, inputs):
    dim = inputs.shape[-1]
    resolutions, offsets, dense = self._levels(dim)
    scale = self.init_scale
    table = self.param(
        'table', lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -scale, scale),
        (offsets[-1], self.features))
    points = jnp.clip(inputs.reshape(-1, dim).astype(jnp.float32), 0.0, 1.0)
    corner_offsets = np.array(list(itertools.product((0, 1), repeat=dim)), np.uint32)  # [C, D]
    res = np.array(resolutions, np.float32)  # [L]
    position = points[:, None, :] * res[None, :, None]  # [N, L, D]
    cell = jnp.clip(jnp.floor(position), 0, res[None, :, None] - 1)
    frac = position - cell
    corner = cell.astype(jnp.uint32)[:, :, None, :] + corner_offsets[None, None]  # [N, L, C, D]
    strides = np.array([[(r + 1)**d for d in range(dim)] for r in resolutions], np.uint64)
    strides = np.where(np.array(dense)[:, None], strides, 0).astype(np.uint32)  # [L, D]
    dense_index = jnp.sum(corner * strides[None, :, None, :], axis=-1)
    hashed = corner * np.array(hash_encoding._PRIMES[:dim], np.uint32)  # pylint: disable=protected-access
    hash_index = functools.reduce(jnp.bitwise_xor, [hashed[..., d] for d in range(dim)])
    hash_index = hash_index & np.uint32(2**self.log2_table_size - 1)
    index = jnp.where(np.array(dense)[None, :, None], dense_index, hash_index)
    index = index.astype(jnp.int32) + np.array(offsets[:-1], np.int32)[None, :, None]
    weight = jnp.prod(jnp.where(corner_offsets[None, None] == 1, frac[:, :, None, :], 1.0 - frac[:, :, None, :]),
                      axis=-1)  # [N, L, C]
    features = jnp.sum(table[index] * weight[..., None], axis=2)
    return features.reshape(*inputs.shape[:-1], self.num_levels * self.features)


def use_vectorized_hash() -> None:
  """Swaps the vectorised grid into the modules that build grids, after checking it matches."""
  reference = hash_encoding.HashGridEncoding(16, 2, 14, 16, 2.0)
  points = jax.random.uniform(jax.random.PRNGKey(0), (257, 3))
  params = reference.init(jax.random.PRNGKey(1), points)
  vectorized = HashGridEncoding(16, 2, 14, 16, 2.0)
  error = float(jnp.max(jnp.abs(reference.apply(params, points) - vectorized.apply(params, points))))
  if error > 1e-6:
    raise AssertionError(f'vectorised hash grid differs from the module by {error}')
  hash_encoding.HashGridEncoding = HashGridEncoding


SOLVER = 'auto'  # --solver: config.geometry.solver of every case.


def make_config(sequence: str, resolution: int):
  config = demo.get_config()
  config.data.path = sequence
  config.data.resolution = resolution
  config.geometry.solver = SOLVER
  return config


def load_run(sequence: str, resolution: int, target_faces: int) -> run_lib.Run:
  """Host: the Run of the benchmark case (template subdivided when target_faces > 0)."""
  config = make_config(sequence, resolution)
  seq = data.read_sequence(sequence)
  template = templates.load_template(seq.template_path)
  vertices, faces = np.asarray(template.vertices, np.float64), np.asarray(template.faces, np.int32)
  if target_faces > 0:
    vertices, faces = subdivide_to(vertices, faces, target_faces)
  return run_lib.Run(config, pipeline.RunInputs(seq, frames.load_frames(seq, config), vertices, faces,
                                              pipeline.body_distance_grid(seq, vertices, config)))


def geometry_pieces(run: run_lib.Run, state, mesh, constants, frames, batch, dynamic: bool):
  """Each piece of geometry_step as (name, fn, args): its own jittable function on the step's inputs
  (the step's first frame)."""
  t = batch.t[0]
  frame = pipeline.frame_inputs(frames, t, batch.pose_code[0])
  images = train.frame_images(frames, t)
  model, config = run.model, run.config
  params = state.params
  x0 = None if state.solutions is None else state.solutions[t]
  face_capacity = mesh.operators.faces.shape[0]
  deform = jax.jit(functools.partial(model.deform, dynamic=dynamic))
  deformation = deform(params, constants.field_bounds, mesh, frame, blend_target=run_lib.frame_blend_target(state, t),
                       blend_weight=batch.blend_weight, x0=x0)
  out = jax.jit(model.render)(mesh, deformation.posed, frame)
  key = jax.random.PRNGKey(1)
  image_cotangent = jax.random.normal(key, out.diffuse.shape[:2] + (3,))
  vertex_cotangent = jax.random.normal(key, deformation.posed.shape)

  def render_fwd_bwd(mesh, posed, frame, cotangent):
    def rendered(posed):
      out = model.render(mesh, posed, frame)
      return jnp.concatenate([out.diffuse, out.alpha, out.depth], axis=-1)
    image, pullback = jax.vjp(rendered, posed)
    return image, pullback(cotangent)

  def solve_fwd_bwd(solver, mesh, jacobians, x0, cotangent):
    solve = lambda j: jax.numpy.vdot(geometry_solve(mesh, j, x0, solver), cotangent)
    return jax.value_and_grad(solve)(jacobians)

  def geometry_solve(mesh, jacobians, x0, solver):
    return dataclasses.replace(model, solver=solver).solve(mesh, jacobians, x0)

  def skin_fwd_bwd(mesh, canonical, frame, cotangent):
    posed, pullback = jax.vjp(lambda c: model.skin(mesh, c, frame), canonical)
    return posed, pullback(cotangent)

  def network_fwd_bwd(field_params, mesh, static_posed, frame, cotangent):
    fn = lambda p: model.dynamic_jacobians(p, constants.field_bounds, mesh, static_posed, frame)
    jd, pullback = jax.vjp(fn, field_params)
    return jd, pullback(cotangent)

  def losses_fwd_bwd(out, deformation, batch):
    key = jax.random.fold_in(jax.random.PRNGKey(batch.seed), batch.step)
    pairs = losses.sample_depth_pairs(key, images.mask, config.loss.depth_pairs, config.loss.depth_box,
                                      config.loss.depth_pairs_in_mask)

    def total(out, deformation):
      terms = train.frame_losses(out, deformation, jnp.zeros_like(images.target), images, mesh, pairs,
                                 loss=train.LossSettings.from_config(config.loss), dynamic=dynamic,
                                 use_depth=run.use_depth)
      return sum(terms.values())
    return jax.value_and_grad(total, argnums=(0, 1))(out, deformation)

  def optimizer_update(grads, opt_state, params):
    updates, opt_state = optimizers.geometry_optimizer(run.optimizer_settings).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  def scores(grad_diffuse, mask, rast, accumulator):
    stats = remesh.frame_face_stats(grad_diffuse, mask[..., None], rast, face_capacity)
    return remesh.accumulate(accumulator, stats)

  grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), params)
  jac_cotangent = jax.random.normal(key, deformation.jacobians.shape)
  pieces = []
  if dynamic:
    static_posed = model.skin(mesh, jax.jit(model.solve)(mesh, params['static'], x0), frame)
    pieces.append(('network', network_fwd_bwd, (params['dynamic'], mesh, static_posed, frame, jac_cotangent)))
    pieces.append(('solve_static', functools.partial(geometry_solve, solver=model.solver),
                   (mesh, params['static'], x0)))
  in_step = poisson.concrete_solver(mesh.operators, model.solver)
  solvers = ('cholesky', 'cg') + (('dense',) if mesh.operators.dense_inverse is not None else ())
  for solver in solvers:
    name = f'solve_{solver}' + ('' if solver == in_step else ' (not in step)')
    pieces.append((name, functools.partial(solve_fwd_bwd, solver),
                   (mesh, deformation.jacobians, x0, vertex_cotangent)))
  pieces += [
      ('skin', skin_fwd_bwd, (mesh, deformation.canonical, frame, vertex_cotangent)),
      ('render', render_fwd_bwd, (mesh, deformation.posed, frame, image_cotangent)),
      ('losses', losses_fwd_bwd, (out, deformation._replace(solve=None), batch)),  # No int leaves to differentiate.
      ('optimizer', optimizer_update, (grads, state.opt_state, params)),
      ('scores', scores, (out.diffuse, images.mask, out.rast, state.scores)),
  ]
  return pieces


def appearance_setup(run: run_lib.Run, state, mesh, constants):
  """Host: appearance state and step inputs (frames, batch of frame 0, log sums) as train_appearance
  builds them, on the template geometry."""
  config = run.config
  vertices, faces = run_lib.unpadded_template(state)
  uvs, uv_faces = appearance_phase.atlas(vertices, faces)
  total_steps = config.appearance.num_epochs * run.bank.num_frames
  settings = optimizers.AppearanceOptimizer.from_config(config, total_steps)
  optimizer = optimizers.appearance_optimizer(settings)
  app_state = appearance_phase.init_state(config, uvs, uv_faces, run.bank.pose, settings, jax.random.PRNGKey(1))
  frames = appearance_phase.appearance_frames(run, run_lib.GeometryResult(constants, state, mesh, {}), app_state)
  batch = jax.device_put(appearance_phase.AppearanceBatch(t=np.int32(0), noise_std=np.float32(0.0),
                                                          dynamic_weight=np.float32(1.0), seed=np.int32(1),
                                                          step=np.int32(0)))
  log = jax.device_put(loop.LogSums.zeros(appearance_phase.METRICS))
  module = texture_lib.dynamic_texture_from_config(config.appearance)
  step = functools.partial(appearance_phase.appearance_step, module=module, settings=settings)
  return app_state, (frames, batch, log), module, optimizer, step


def appearance_pieces(app_state, frames, module, optimizer):
  """Each piece of appearance_step on frame 0, as (name, fn, args)."""
  params = app_state.params
  frame = jax.tree.map(lambda values: values[0], frames)
  height, width = frame.uv.shape[:2]
  cotangent = jax.random.normal(jax.random.PRNGKey(2), (height, width, 3))

  def static_fwd_bwd(texture, uv, cotangent):
    image, pullback = jax.vjp(lambda t: sampling.bilinear_sample(t, uv), texture)
    return image, pullback(cotangent)

  def dynamic_fwd_bwd(dynamic_params, uv, code, pixels, cotangent):
    # As texture.shade evaluates it: on the covered pixels only.
    fn = lambda p: module.apply(p, jnp.clip(uv.reshape(-1, 2), 0.0, 1.0)[jnp.maximum(pixels, 0)], code)
    out, pullback = jax.vjp(fn, dynamic_params)
    return out, pullback(cotangent.reshape(-1, 3)[jnp.maximum(pixels, 0)])

  def loss_fwd_bwd(rgb, frame):
    target = frame.rgb.astype(jnp.float32) / 255.0
    fn = lambda rgb: losses.texture_loss(rgb * frame.coverage[..., None], target, frame.mask)
    return jax.value_and_grad(fn)(rgb)

  def optimizer_update(grads, opt_state, params):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), params)
  rgb = jnp.full((height, width, 3), 0.2)
  return [
      ('static texture', static_fwd_bwd, (params['static'], frame.uv, cotangent)),
      ('dynamic texture', dynamic_fwd_bwd, (params['dynamic'], frame.uv, frame.code, frame.pixels, cotangent)),
      ('loss', loss_fwd_bwd, (rgb, frame)),
      ('optimizer', optimizer_update, (grads, app_state.opt_state, params)),
  ]


def step_args(run: run_lib.Run):
  """The geometry step's positional arguments on the template, frame 0, placed as the loop places them."""
  constants = run.fit_constants()
  state, mesh = run.init_state(constants, jax.random.PRNGKey(0))
  settings = train.step_settings(run)
  devices = settings.devices
  state, mesh, constants = placement.place((state, mesh, constants), devices)
  ts = np.arange(run.config.train.frames_per_step)
  frames, slots = placement.step_frames_on_device(run, ts, settings.devices, settings.streamed)
  batch = placement.place(run.batch(ts, 0, 1.0, run.pose_codes(constants), slots), devices, placement.batch_specs())
  return state, mesh, constants, frames, batch, placement.place(loop.LogSums.zeros(train.METRICS), devices)


def geometry_step_fn(run: run_lib.Run, dynamic: bool):
  """The step exactly as the training loop calls it, unjitted (timed() jits it)."""
  return functools.partial(train.geometry_step, settings=train.step_settings(run), dynamic=dynamic)


def bench_case(name: str, run: run_lib.Run, repeats: int) -> dict:
  args = step_args(run)
  state, mesh, constants, frames, batch, _ = args
  result = {'case': name, 'resolution': list(run.bank.resolution), 'faces': int(state.num_faces),
            'vertices': int(state.num_vertices), 'face_capacity': int(state.faces.shape[0]),
            'solver': run.model.solver, 'use_depth': run.use_depth, 'steps': {}, 'pieces': {}}
  for dynamic in (False, True):
    label = 'geometry_dynamic' if dynamic else 'geometry_warmup'
    result['steps'][label] = dataclasses.asdict(
        timed(geometry_step_fn(run, dynamic), args, repeats))
    report(label, result['steps'][label])
    result['pieces'][label] = {}
    for piece, fn, piece_args in geometry_pieces(run, state, mesh, constants, frames, batch, dynamic):
      result['pieces'][label][piece] = dataclasses.asdict(timed(fn, piece_args, repeats))
      report(f'  {piece}', result['pieces'][label][piece])
  app_state, app_inputs, module, optimizer, step = appearance_setup(run, state, mesh, constants)
  result['steps']['appearance'] = dataclasses.asdict(timed(step, (app_state,) + app_inputs, repeats))
  report('appearance', result['steps']['appearance'])
  result['pieces']['appearance'] = {}
  for piece, fn, args in appearance_pieces(app_state, app_inputs[0], module, optimizer):
    result['pieces']['appearance'][piece] = dataclasses.asdict(timed(fn, args, repeats))
    report(f'  {piece}', result['pieces']['appearance'][piece])
  return result


def report(label: str, timing: dict) -> None:
  print(f'{label:32s} {timing["ms"]:9.1f} ms   lower {timing["lower_s"]:6.2f} s   compile {timing["compile_s"]:6.2f} s'
        f'   compile CPU {timing["compile_cpu_s"]:6.2f} s', flush=True)


def table(results: list[dict]) -> str:
  """Markdown tables: whole steps, then pieces with their sum next to the whole step."""
  lines = []
  for result in results:
    lines.append(f'\n### {result["case"]}: {result["resolution"][0]}x{result["resolution"][1]}, '
                 f'{result["faces"]} faces / {result["vertices"]} vertices (capacity {result["face_capacity"]}), '
                 f'solver {result["solver"]}, depth loss {"on" if result["use_depth"] else "off"}\n')
    lines.append('| step | ms / step (median) | trace + lower (s) | XLA compile wall (s) | XLA compile CPU (s) |')
    lines.append('|---|---:|---:|---:|---:|')
    for step, t in result['steps'].items():
      lines.append(f'| {step} | {t["ms"]:.1f} | {t["lower_s"]:.2f} | {t["compile_s"]:.2f} | {t["compile_cpu_s"]:.2f} |')
    for step, pieces in result['pieces'].items():
      lines.append(f'\n{step} breakdown (each piece jitted alone, forward + backward):\n')
      lines.append('| piece | ms | compile wall (s) | compile CPU (s) |')
      lines.append('|---|---:|---:|---:|')
      in_step = {k: v for k, v in pieces.items() if 'not in step' not in k}
      for piece, t in pieces.items():
        lines.append(f'| {piece} | {t["ms"]:.1f} | {t["compile_s"]:.2f} | {t["compile_cpu_s"]:.2f} |')
      whole = result['steps'][step]
      total = lambda key: sum(t[key] for t in in_step.values())
      lines.append(f'| **sum of pieces in the step** | **{total("ms"):.1f}** | **{total("compile_s"):.2f}** | '
                   f'**{total("compile_cpu_s"):.2f}** |')
      lines.append(f'| **whole step** | **{whole["ms"]:.1f}** | **{whole["compile_s"]:.2f}** | '
                   f'**{whole["compile_cpu_s"]:.2f}** |')
  return '\n'.join(lines)


def compile_only(run: run_lib.Run) -> None:
  """Prints one JSON line: lower and compile seconds of the dynamic geometry step, and ms per step."""
  timing = timed(geometry_step_fn(run, True), step_args(run), 3)
  print(json.dumps(dict(dataclasses.asdict(timing), xla_flags=os.environ.get('XLA_FLAGS', ''),
                        cache=os.environ.get('JAX_COMPILATION_CACHE_DIR', ''))), flush=True)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sequence', default='/tmp/bench_seq', help='demo sequence folder (data.synthetic preset demo)')
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--target_faces', type=int, default=10_000, help='garment faces of case (b)')
  parser.add_argument('--quick', action='store_true', help='case (a) only, 3 repeats')
  parser.add_argument('--case', choices=('a', 'b', 'both'), default='both')
  parser.add_argument('--compile_only', action='store_true')
  parser.add_argument('--vectorized_hash', action='store_true')
  parser.add_argument('--solver', default='auto', help="config.geometry.solver ('cg' has no host callback, so the "
                      'persistent compilation cache can store its step)')
  parser.add_argument('--json', default='', help='also write the results here')
  args = parser.parse_args(argv)
  if not os.path.exists(os.path.join(args.sequence, 'sequence.json')):
    sys.exit(f'No sequence at {args.sequence}: generate it with\n'
             f'  .venv/bin/python -m ngd_jax.data.synthetic --out={args.sequence} --preset=demo --seed=0')
  global SOLVER
  SOLVER = args.solver
  if args.vectorized_hash:
    use_vectorized_hash()
  if args.compile_only:
    compile_only(load_run(args.sequence, 256, 0))
    return
  repeats = 3 if args.quick else args.repeats
  results = []
  if args.quick or args.case in ('a', 'both'):
    results.append(bench_case('(a) demo', load_run(args.sequence, 256, 0), repeats))
  if not args.quick and args.case in ('b', 'both'):
    results.append(bench_case('(b) 512^2, ~10k faces', load_run(args.sequence, 512, args.target_faces), repeats))
  print(table(results))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  main()
