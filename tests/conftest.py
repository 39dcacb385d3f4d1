"""Global test switches, set once here.

JAX runs on the CPU in tests, with 2 simulated devices so that sharding code paths are exercised
on a machine without accelerators (must be set before jax is imported anywhere).
"""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
