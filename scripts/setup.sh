# Sourced by scripts/demo.sh and scripts/test.sh: creates (or reuses) the virtualenv and installs
# the pinned requirements and the package, building the native rasterizer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${NGD_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -r requirements.txt
# Packages whose declared dependencies we must not pull (see requirements-nodeps.txt for why).
"$PY" -m pip install -q --no-deps -r requirements-nodeps.txt
# Editable install compiles ngd_jax/render/csrc with the venv's jaxlib headers (setup.py).
"$PY" -m pip install -q --no-build-isolation --no-deps -e .
