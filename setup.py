"""Builds the native CPU rasterizer (a plain C-ABI shared library loaded with ctypes) on install.

The library is compiled as a setuptools Extension so that `pip install .` and editable installs
both place it next to ngd_jax/render/ffi.py; it has no Python module init and is never imported.
"""

import setuptools
from setuptools.command import build_ext


class BuildRasterizer(build_ext.build_ext):
  """Adds the XLA FFI include dir and turns a missing compiler into one clear message."""

  def build_extensions(self):
    import jax.ffi  # pylint: disable=g-import-not-at-top

    for ext in self.extensions:
      ext.include_dirs.append(jax.ffi.include_dir())
    try:
      super().build_extensions()
    except Exception as e:  # CompileError, LinkError, missing compiler.
      raise SystemExit(
          'ngd_jax: building the native rasterizer (ngd_jax/render/csrc) failed: '
          f'{e}\nInstall a C++17 compiler (Debian: apt-get install g++) and run the install again.'
      ) from e


setuptools.setup(
    packages=setuptools.find_packages(include=['ngd_jax*']) + ['smplx_jax', 'configs'],
    ext_modules=[
        setuptools.Extension(
            'ngd_jax.render._rasterizer_cpu',
            sources=['ngd_jax/render/csrc/rasterizer.cc'],
            language='c++',
            extra_compile_args=['-O3', '-std=c++17', '-fvisibility=hidden'],
            extra_link_args=['-pthread'],
        )
    ],
    cmdclass={'build_ext': BuildRasterizer},
)
