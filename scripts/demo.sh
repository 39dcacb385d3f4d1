#!/usr/bin/env bash
# Sets up the environment, generates the synthetic demo sequence (cached), trains geometry and
# appearance, evaluates against the ground truth and exports meshes, texture, animation, previews.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
WORKDIR="${1:-runs/demo}"
"$PY" -m ngd_jax.main --config=configs/demo.py --workdir="$WORKDIR" --mode=train
"$PY" -m ngd_jax.main --config=configs/demo.py --workdir="$WORKDIR" --mode=export
