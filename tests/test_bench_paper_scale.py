"""benchmarks/bench_paper_scale.py's pieces at tiny size, and benchmarks/gpu_check.sh's command line.

The benchmark itself runs for minutes (CPU) and the GPU script for up to 8 (GPU): here each piece
is called once on the 'tiny' synthetic sequence with small hash tables, in seconds.
"""

import pathlib
import subprocess
import sys

import jax
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


def test_render_and_every_solver_are_timed(config):
  run = bench_paper_scale.make_run(config, 200)
  constants = run.fit_constants()
  state, mesh = run.init_state(constants, jax.random.PRNGKey(0))
  frame = pipeline.frame_inputs(run.bank, 0, run.pose_codes(constants)[0])
  timings = bench_paper_scale.measure_render(run, mesh, frame, repeats=1)
  timings.update(bench_paper_scale.measure_solvers(run, state, repeats=1))
  solvers = [f'poisson {name}' for name in poisson.SOLVERS if name != 'auto']
  assert sorted(timings) == sorted(['rasterize', 'shading'] + solvers)
  for name in solvers:
    assert timings[name]['ms'] > 0 and timings[name]['mesh_build_s'] > 0
  assert timings['shading']['ms'] > 0 and timings['rasterize']['compile_s'] > 0


def test_schedule_hours_and_tables(config):
  step = lambda ms: {'ms': ms, 'lower_s': 1.0, 'compile_s': 9.0, 'compile_cpu_s': 9.0}
  result = {'vertices': 5000, 'faces': 9600, 'resolution': [1080, 1080], 'step_solver': 'cholesky', 'mesh_build_s': 5.0,
            'timings': {'rasterize': step(2.0), 'poisson dense': {'skipped': 'too big'},
                        'geometry warm-up step': step(36.0), 'geometry dynamic step': step(72.0),
                        'appearance step': step(18.0)}}
  hours = bench_paper_scale.schedule(config, 100, result)
  # configs/default.py: 100 warm-up epochs, 1,100 more geometry epochs, 1,100 appearance epochs.
  assert hours['geometry warm-up'] == pytest.approx(100 * 100 * 0.036 / 3600)
  assert hours['geometry dynamic'] == pytest.approx(1100 * 100 * 0.072 / 3600)
  assert hours['appearance'] == pytest.approx(1100 * 100 * 0.018 / 3600)
  assert hours['compiles and remeshes'] == pytest.approx((10 + 3 * 10 + 10 + 2 * 5) / 3600)
  assert hours['total'] == pytest.approx(sum(v for k, v in hours.items() if k != 'total'))
  env = {'backend': 'cpu', 'device': 'cpu', 'jax': jax.__version__, 'cpus': 2, 'repeats': 1, 'load_start': 1.0,
         'load_end': 2.0, 'date': 'today'}
  tables = bench_paper_scale.markdown(config, 100, [result], env)
  assert '| geometry dynamic step | 72 |' in tables and 'skipped: too big' in tables
  assert f'| **total** | **{hours["total"]:.3g}** |' in tables


def test_gpu_check_parses_and_prints_its_usage():
  script = ROOT / 'benchmarks' / 'gpu_check.sh'
  subprocess.run(['bash', '-n', str(script)], check=True)
  usage = subprocess.run(['bash', str(script), '--dry-run', '--help'], capture_output=True, text=True, check=True)
  assert '--dry-run' in usage.stdout and '--full-tests' in usage.stdout
  wrong = subprocess.run(['bash', str(script), '--no-such-flag'], capture_output=True, text=True)
  assert wrong.returncode == 2 and 'unknown option' in wrong.stderr
