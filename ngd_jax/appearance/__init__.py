"""appearance: the static + dynamic texture (its hash grid, ngd_jax/hash_encoding.py, is shared
with the dynamic Jacobian field)."""
