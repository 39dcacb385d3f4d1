"""appearance: hash encoding (shared with the dynamic Jacobian field)."""

from ngd_jax.appearance.hash_encoding import HashGridEncoding
