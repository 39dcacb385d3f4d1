#!/usr/bin/env bash
# GPU check (issue 14): one script for a machine with an NVIDIA GPU, from a fresh checkout to the
# measured tables. Stages, each under `timeout` (budgets in seconds below, 8 minutes in all):
#   setup   scripts/setup.sh: the venv ($NGD_VENV, default .venv), requirements, native build;
#   cuda    the CUDA jaxlib, jax[cuda12] pinned to requirements.txt's jax, and a check that JAX
#           sees the GPU;
#   sequence  the demo sequence the benchmarks read (ngd_jax.data.synthetic, cached after);
#   tests   the device-facing tests on the GPU (JAX_PLATFORMS=cuda: tests/conftest.py only sets
#           cpu by default); --full-tests runs all of tests/. Tests that call the C++ rasterizer
#           (a CPU kernel) explicitly may fail there: the outcome is recorded and the script goes on;
#   paper   benchmarks/bench_paper_scale.py at 1080^2 with 5k and 14k vertices;
#   poisson benchmarks/bench_poisson.py at 5k and 14k vertices.
# Results (gpu_check.md for benchmarks/README.md, the JSON, one log per stage) go to $OUT if set,
# else to the folder benchmarks/gpu_results. --dry-run: every stage but cuda, on the CPU, at CI size
# (128^2, 1k vertices, 1 repeat, two test files), into a temporary folder unless $OUT is set.
# No network on the machine: point pip at a wheel folder (PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash benchmarks/gpu_check.sh [--dry-run] [--full-tests] [--help]
  --dry-run     all stages but the CUDA install, on the CPU, at CI size (a few minutes on 2 cores)
  --full-tests  run all of tests/ on the GPU, not only the device-facing files
Environment: NGD_VENV (venv, default .venv), OUT (results folder, default benchmarks/gpu_results).
EOF
}

DRY_RUN=0
FULL_TESTS=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --full-tests) FULL_TESTS=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${NGD_VENV:-.venv}/bin/python"
if [ "$DRY_RUN" = 1 ]; then
  RESULTS="${OUT:-$(mktemp -d /tmp/gpu_check_dry.XXXXXX)}"
  PLATFORM=cpu
  TESTS=(tests/test_geometry_poisson.py tests/test_render_kernels.py)
  WORKERS=2
  PAPER_ARGS=(--resolution 128 --vertices 1000 --repeats 1)
  POISSON_ARGS=(--sizes 1000 --repeats 1)
else
  RESULTS="${OUT:-benchmarks/gpu_results}"
  PLATFORM=cuda
  TESTS=(tests/test_geometry_poisson.py tests/test_render_kernels.py tests/test_render_grad.py
         tests/test_render_shading.py tests/test_render_antialias.py tests/test_hash_encoding.py
         tests/test_model.py tests/test_texture.py)
  WORKERS=4
  PAPER_ARGS=(--repeats 3)
  POISSON_ARGS=(--sizes 5000 14000 --repeats 3)
fi
if [ "$FULL_TESTS" = 1 ]; then
  TESTS=(tests)
fi
BUDGET_SETUP=90 BUDGET_CUDA=60 BUDGET_SEQUENCE=60 BUDGET_TESTS=45 BUDGET_PAPER=180 BUDGET_POISSON=45
if [ "$DRY_RUN" = 1 ]; then  # 2 CPU cores: compiles take longer than on the GPU machine's 16.
  BUDGET_SETUP=180 BUDGET_SEQUENCE=300 BUDGET_TESTS=240 BUDGET_PAPER=240 BUDGET_POISSON=120
fi
mkdir -p "$RESULTS"
SCRATCH=$(mktemp -d)  # The benchmark's markdown, copied into gpu_check.md (results: at most 8 files).
export JAX_PLATFORMS="$PLATFORM" PYTHONPATH=. PYTHONUNBUFFERED=1

START=$SECONDS
STAGES=()
FAILED=0
# stage NAME BUDGET COMMAND...: runs COMMAND under timeout, its output to the terminal and to
# RESULTS/NAME.log; records the outcome and returns COMMAND's status.
stage() {
  local name=$1 budget=$2 begin=$SECONDS status=0 outcome=ok
  shift 2
  echo "== [$((SECONDS - START)) s] $name: $* (budget $budget s)"
  timeout --kill-after=10 "$budget" "$@" 2>&1 | tee "$RESULTS/$name.log" || status=$?
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    outcome="timed out"
  elif [ "$status" != 0 ]; then
    outcome="failed (exit $status)"
  fi
  [ "$status" = 0 ] || FAILED=1
  STAGES+=("| $name | $budget | $((SECONDS - begin)) | $outcome |")
  echo "== [$((SECONDS - START)) s] $name: $outcome in $((SECONDS - begin)) s"
  return "$status"
}

summary() {
  local file="$RESULTS/gpu_check.md" mode="GPU"
  [ "$DRY_RUN" = 1 ] && mode="DRY RUN on the CPU (not GPU numbers)"
  {
    echo "### GPU check: $mode, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    if command -v nvidia-smi > /dev/null; then
      echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)."
      echo
    fi
    echo "    bash benchmarks/gpu_check.sh $*"
    echo
    echo "| stage | budget (s) | took (s) | outcome |"
    echo "|---|---:|---:|---|"
    printf '%s\n' "${STAGES[@]}"
    echo
    if [ -f "$RESULTS/tests.log" ]; then
      echo "Tests (${TESTS[*]}): $(grep -E '(passed|failed|error)' "$RESULTS/tests.log" | tail -n 1)"
      echo
    fi
    if [ -f "$SCRATCH/paper_scale.md" ]; then
      echo "#### Paper-size step and schedule (benchmarks/bench_paper_scale.py ${PAPER_ARGS[*]})"
      echo
      cat "$SCRATCH/paper_scale.md"
      echo
    fi
    if [ -f "$RESULTS/poisson.log" ]; then
      echo "#### Poisson solvers (benchmarks/bench_poisson.py ${POISSON_ARGS[*]})"
      echo
      grep -E '^jax' "$RESULTS/poisson.log"
      echo
      grep -E '^\|' "$RESULTS/poisson.log"
    fi
  } > "$file"
  echo "== [$((SECONDS - START)) s] results in $RESULTS (summary: $file)"
}

stage setup "$BUDGET_SETUP" bash scripts/setup.sh || { summary "$@"; exit 1; }
if [ "$DRY_RUN" = 0 ]; then
  JAX_VERSION=$(sed -n 's/^jax==\([0-9.]*\).*/\1/p' requirements.txt)
  stage cuda "$BUDGET_CUDA" bash -c "'$PY' -m pip install -q 'jax[cuda12]==$JAX_VERSION' && '$PY' -c \
    'import jax; print(jax.devices()); assert jax.default_backend() == \"gpu\", jax.default_backend()'" \
    || { summary "$@"; exit 1; }
fi
stage sequence "$BUDGET_SEQUENCE" "$PY" -c \
  'from ngd_jax.data import synthetic; print(synthetic.ensure_sequence("demo", seed=0))' || { summary "$@"; exit 1; }
# The test workers share the GPU: none takes JAX's default 75% of its memory up front.
stage tests "$BUDGET_TESTS" env XLA_PYTHON_CLIENT_PREALLOCATE=false "$PY" -m pytest -q -n "$WORKERS" "${TESTS[@]}" \
  || true
stage paper_scale "$BUDGET_PAPER" "$PY" benchmarks/bench_paper_scale.py "${PAPER_ARGS[@]}" \
  --json "$RESULTS/paper_scale.json" --markdown "$SCRATCH/paper_scale.md" || true
stage poisson "$BUDGET_POISSON" "$PY" benchmarks/bench_poisson.py "${POISSON_ARGS[@]}" || true
summary "$@"
exit "$FAILED"
