"""Binding of the C++ CPU rasterizer (csrc/rasterizer.cc) through jax.ffi.

The library is a plain C-ABI shared object built by setup.py next to this file and loaded with
ctypes (no CPython module init), so it does not depend on the Python version.
"""

import ctypes
import functools
import pathlib

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ngd_jax.render import screen

_TARGET = 'ngd_rasterize_cpu'
_BUILD_HINT = ('build it with `pip install -e . --no-build-isolation` or '
               '`python setup.py build_ext --inplace` in the repository root (needs g++)')


class NativeRasterizerMissing(RuntimeError):
  """The compiled rasterizer library is not next to this file."""


@functools.cache
def _library_path() -> pathlib.Path | None:
  found = sorted(pathlib.Path(__file__).parent.glob('_rasterizer_cpu*.so'))
  return found[0] if found else None


def available() -> bool:
  """Whether the compiled library exists (it is registered on first use)."""
  return _library_path() is not None


@functools.cache
def _register() -> None:
  path = _library_path()
  if path is None:
    raise NativeRasterizerMissing(
        f'The native rasterizer (ngd_jax/render/_rasterizer_cpu*.so) is not built: {_BUILD_HINT}; '
        "or use backend='jax' (portable kernel).")
  lib = ctypes.cdll.LoadLibrary(str(path))
  jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(lib.NgdRasterizeFfi), platform='cpu')


def rasterize_ffi(clip_pos: Float[Array, 'V 4'], faces: Int[Array, 'F 3'],
                  resolution: tuple[int, int]) -> screen.NearestTriangles:
  """Nearest triangle per pixel with the C++ kernel (CPU only; batch with jax.vmap).

  resolution (H, W) is static. The same numbers as portable.rasterize_portable.
  """
  _register()
  height, width = resolution
  call = jax.ffi.ffi_call(
      _TARGET,
      (jax.ShapeDtypeStruct((height, width), jnp.float32),
       jax.ShapeDtypeStruct((height, width), jnp.int32)),
      vmap_method='broadcast_all')
  return screen.NearestTriangles(*call(clip_pos.astype(jnp.float32), faces.astype(jnp.int32)))
