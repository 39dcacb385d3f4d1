"""The shipped configs, installed with ngd_jax as the top-level package `configs` (pyproject.toml).

`ngd-jax --config=demo` runs configs/demo.py from any folder. A config file imports the default as
`from configs import default` (nothing else from this folder), which works from a source checkout,
an editable install and an installed package alike.
"""
