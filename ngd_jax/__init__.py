"""ngd_jax."""
