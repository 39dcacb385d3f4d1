"""Global test switches, set once here.

JAX runs on the CPU in tests, with 2 simulated devices (set before jax is imported anywhere), so
that a step's frames spread over devices on a machine without accelerators
(tests/test_train_step.py; it also starts a process with 4).
"""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
