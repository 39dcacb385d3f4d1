"""The `ngd-jax` console script (pyproject.toml): `python -m ngd_jax.main`, always on the installed package.

A console script's sys.path starts at its bin/ folder, not the current one, so it runs the installed
ngd_jax (with its built rasterizer) and shipped configs from any folder, the repository root
included, where `python -m` would import the source tree instead.
"""

import runpy


def main() -> None:
  runpy.run_module('ngd_jax.main', run_name='__main__', alter_sys=True)
