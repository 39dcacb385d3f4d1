"""benchmarks/bench_paper_scale.py's pieces at tiny size, and benchmarks/gpu_check.sh's command line.

The benchmark itself runs for minutes (CPU) and the GPU script for up to 8 (GPU): here each piece
is called once on the 'tiny' synthetic sequence with small hash tables, in seconds.
"""

import pathlib
import re
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngd_jax import data
from ngd_jax import pipeline
from ngd_jax.data import synthetic
from ngd_jax.geometry import poisson
from ngd_jax.remesh import check_mesh

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'benchmarks'))
import bench_paper_scale  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='module')
def config(tmp_path_factory):
  path = tmp_path_factory.mktemp('data') / 'tiny'
  synthetic.generate(path, 'tiny', seed=0)
  config = bench_paper_scale.paper_config(str(path), 48)
  config.data.num_frames = -1  # The tiny sequence's 4 frames (the benchmark loads 8 of the demo's).
  config.geometry.hash_levels = config.appearance.hash_levels = 4
  config.geometry.hash_log2_table_size = config.appearance.hash_log2_table_size = 10
  config.appearance.texture_size = 32
  config.remesh.capacity_multiple = 256
  config.render.antialias = False  # Its compile is most of this file's time.
  return config


def test_grow_template_reaches_the_target_with_a_valid_mesh(config):
  vertices, faces = pipeline.load_template(config, data.read_sequence(config.data.path))
  grown, grown_faces = bench_paper_scale.grow_template(vertices, faces, 500)
  assert 500 <= len(grown) <= 510
  parent = np.zeros(len(grown_faces), np.int32)  # One parent: every normal against the first face's.
  check = check_mesh(grown, grown_faces, parent, np.zeros((1, 3)), 1e-2)
  assert check.nonmanifold_edges == 0 and check.degenerate_faces == 0
  same = bench_paper_scale.grow_template(vertices, faces, 10)
  assert len(same[0]) == len(vertices) and len(same[1]) == len(faces)


def test_timed_reports_the_median_run_in_milliseconds():
  """bench_train.timed (every timing of the benchmark): compile apart, and the run itself in ms."""
  sleep = lambda x: (time.sleep(0.05), x)[1]
  timing = bench_paper_scale.timed(lambda x: jax.pure_callback(sleep, jax.ShapeDtypeStruct((), jnp.float32), x),
                                   (jnp.float32(1.0),), repeats=3)
  assert 50 <= timing.ms < 1000  # The 50 ms sleep of each run, not the compile.


def test_render_is_timed_and_a_solver_that_does_not_fit_is_skipped(config, monkeypatch):
  """Every solver but 'auto' is measured, except the dense one when its matrix does not fit: that
  one is skipped with the memory it needs."""
  run = bench_paper_scale.make_run(config, 200)
  constants = run.fit_constants()
  state, mesh = run.init_state(constants, jax.random.PRNGKey(0))
  frame = pipeline.frame_inputs(run.bank, 0, run.pose_codes(constants)[0])
  assert sorted(bench_paper_scale.measure_render(run, mesh, frame, repeats=1)) == ['rasterize', 'shading']
  monkeypatch.setattr(bench_paper_scale, 'available_bytes', lambda: 10**5)  # 0.1 MB free.
  timings = bench_paper_scale.measure_solvers(run, state, repeats=1)
  measured = [f'poisson {name}' for name in poisson.SOLVERS if name not in ('auto', 'dense')]
  assert sorted(timings) == sorted(measured + ['poisson dense'])
  assert re.fullmatch(r'its \d+\^2 matrix needs 0\.\d GB to build, 0\.0 GB free', timings['poisson dense']['skipped'])
  for name in measured:
    assert {'ms', 'compile_s', 'mesh_build_s'} <= set(timings[name])


def test_schedule_hours_and_tables(config):
  """Each phase's hours are its steps times its step's time, and each remesh adds one mesh build
  and one compile of the dynamic step."""
  def step(ms, compile_s=0.0):
    return {'ms': ms, 'lower_s': 0.0, 'compile_s': compile_s, 'compile_cpu_s': compile_s}

  hour = 3.6e6  # ms.
  result = {'vertices': 5000, 'faces': 9600, 'resolution': [1080, 1080], 'step_solver': 'cholesky', 'mesh_build_s': 0.0,
            'timings': {'rasterize': step(2.0), 'poisson dense': {'skipped': 'too big'},
                        'geometry warm-up step': step(hour), 'geometry dynamic step': step(2 * hour),
                        'appearance step': step(3 * hour)}}
  # configs/default.py: 100 warm-up epochs, 1,100 more geometry epochs, 1,100 appearance epochs; 1 frame.
  hours = bench_paper_scale.schedule(config, 1, result)
  assert hours == pytest.approx({'geometry warm-up': 100, 'geometry dynamic': 2 * 1100, 'appearance': 3 * 1100,
                                 'compiles and remeshes': 0, 'total': 100 + 2200 + 3300}, rel=1e-12)
  assert bench_paper_scale.schedule(config, 7, result)['total'] == pytest.approx(7 * hours['total'], rel=1e-12)
  result['mesh_build_s'] = 1800.0
  result['timings']['geometry dynamic step'] = step(2 * hour, compile_s=3600.0)
  fewer = config.copy_and_resolve_references()
  fewer.remesh.epochs = tuple(config.remesh.epochs)[:-1]
  extra = (bench_paper_scale.schedule(config, 1, result)['compiles and remeshes'] -
           bench_paper_scale.schedule(fewer, 1, result)['compiles and remeshes'])
  assert extra == pytest.approx(1.5, rel=1e-12)  # One mesh build (0.5 h) and one compile (1 h).
  env = {'backend': 'cpu', 'device': 'cpu', 'jax': jax.__version__, 'cpus': 2, 'repeats': 1, 'load_start': 1.0,
         'load_end': 2.0, 'date': 'today'}
  tables = bench_paper_scale.markdown(config, 1, [result], env)
  assert '| geometry dynamic step | 7,200,000 |' in tables and 'skipped: too big' in tables
  assert f'| **total** | **{bench_paper_scale.schedule(config, 1, result)["total"]:.3g}** |' in tables


def test_gpu_check_parses_and_prints_its_usage():
  script = ROOT / 'benchmarks' / 'gpu_check.sh'
  subprocess.run(['bash', '-n', str(script)], check=True)
  usage = subprocess.run(['bash', str(script), '--dry-run', '--help'], capture_output=True, text=True, check=True)
  assert '--dry-run' in usage.stdout and '--full-tests' in usage.stdout
  wrong = subprocess.run(['bash', str(script), '--no-such-flag'], capture_output=True, text=True)
  assert wrong.returncode == 2 and 'unknown option' in wrong.stderr
