"""The `ngd-jax` console script (pyproject.toml): exactly `python -m ngd_jax.main`."""

import runpy


def main() -> None:
  runpy.run_module('ngd_jax.main', run_name='__main__', alter_sys=True)
