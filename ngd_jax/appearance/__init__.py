"""appearance: the static + dynamic texture (its hash grid is ngd_jax/hash_encoding.py, shared with the dynamic Jacobian field)."""
