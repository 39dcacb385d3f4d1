"""Renderer benchmark: C++ and portable kernels against pytinyrenderer, in one run.

Scenes: a UV sphere of about 5k, 20k and 100k faces filling about half of a square image, at
256^2, 512^2 and 1080^2. Times are medians over repeats after a warm-up (compile excluded):
- kernel: the id/depth kernel alone (C++ through jax.ffi, or portable JAX), jitted;
- rasterize: kernel + JAX barycentrics (render.rasterize);
- shade fwd / fwd+bwd: render_garment (rasterize, normals, interpolate, antialias) and a scalar
  loss, forward only and forward + backward to the vertices;
- reference: pytinyrenderer 0.0.14 (CPU, rgb + depth + segmentation) on the same scene.
Usage: python benchmarks/bench_render.py [--quick] [--repeats N]
"""

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from timing import median_time

from ngd_jax import render
from ngd_jax.render import ffi
from ngd_jax.render import portable


def uv_sphere(target_faces: int, radius: float = 1.0):
  """Host: UV sphere with about target_faces faces (n_lat x 2 n_lat quads, two triangles each)."""
  n_lat = max(3, int(round(np.sqrt(target_faces / 4))))
  n_lon = 2 * n_lat
  theta = np.linspace(0, np.pi, n_lat + 1)
  phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
  t, p = np.meshgrid(theta, phi, indexing='ij')
  verts = radius * np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1)
  idx = np.arange((n_lat + 1) * n_lon).reshape(n_lat + 1, n_lon)
  a, b = idx[:-1], np.roll(idx[:-1], -1, axis=1)
  c, d = idx[1:], np.roll(idx[1:], -1, axis=1)
  faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3),
                          np.stack([b, c, d], -1).reshape(-1, 3)])
  return verts.reshape(-1, 3).astype(np.float32), faces.astype(np.int32)


def camera(res: int):
  focal = 0.6 * res
  K = np.array([[focal, 0, (res - 1) / 2], [0, focal, (res - 1) / 2], [0, 0, 1]], np.float32)
  world_to_camera = np.eye(4, dtype=np.float32)
  world_to_camera[2, 3] = 3.0
  return K, world_to_camera, render.camera_to_clip(K, world_to_camera, (res, res), 0.05, 20.0)


def tinyrenderer_time(verts, faces, res, repeats):
  """pytinyrenderer on the same scene (OpenGL-style camera at the same place and field of view)."""
  import pytinyrenderer  # pylint: disable=g-import-not-at-top

  scene = pytinyrenderer.TinySceneRenderer()
  normals = verts / np.linalg.norm(verts, axis=1, keepdims=True)
  mesh = scene.create_mesh(verts.ravel().tolist(), normals.ravel().tolist(),
                           np.zeros(2 * len(verts)).tolist(), faces.ravel().tolist(),
                           [255, 255, 255], 1, 1, 1.0)
  instance = scene.create_object_instance(mesh)
  fov = float(np.degrees(2 * np.arctan(0.5 / 0.6)))
  cam = pytinyrenderer.TinyRenderCamera(viewWidth=res, viewHeight=res, near=0.05, far=20.0,
                                        hfov=fov, vfov=fov, position=[0.0, 0.0, -3.0],
                                        target=[0.0, 0.0, 0.0], up=[0.0, 1.0, 0.0])
  light = pytinyrenderer.TinyRenderLight()
  times = []
  buffers = scene.get_camera_image([instance], light, cam)
  for _ in range(repeats):
    start = time.perf_counter()
    buffers = scene.get_camera_image([instance], light, cam)
    times.append(time.perf_counter() - start)
  coverage = float(np.mean(np.asarray(buffers.segmentation_mask) >= 0))
  return statistics.median(times), coverage


def run(face_counts, resolutions, repeats, backends):
  rows = []
  for target in face_counts:
    verts, faces = uv_sphere(target)
    topology = render.build_topology(faces)
    for res in resolutions:
      _, world_to_camera, world_to_clip = camera(res)
      clip = render.to_clip(jnp.asarray(verts), world_to_clip)
      ref_t, ref_cov = tinyrenderer_time(verts, faces, res, repeats)
      row = {'faces': len(faces), 'res': res, 'tiny': ref_t, 'tiny_cov': ref_cov}
      for backend in backends:
        kernel = ffi.rasterize_ffi if backend == 'ffi' else portable.rasterize_portable
        kernel_fn = jax.jit(lambda c, k=kernel, r=res: k(c, faces, (r, r)))
        raster_fn = jax.jit(lambda c, b=backend, r=res: render.rasterize(c, faces, (r, r), b))

        def loss(v, b=backend, r=res, w2c=world_to_camera, w2clip=world_to_clip):
          out = render.render_garment(v, faces, topology, w2clip, w2c, (r, r), b)
          return jnp.sum(out.diffuse) + jnp.sum(out.alpha) + jnp.sum(out.depth)

        fwd = jax.jit(loss)
        fwd_bwd = jax.jit(jax.value_and_grad(loss))
        v = jnp.asarray(verts)
        row[f'{backend}_kernel'] = median_time(lambda f=kernel_fn: f(clip), repeats)
        row[f'{backend}_raster'] = median_time(lambda f=raster_fn: f(clip), repeats)
        row[f'{backend}_fwd'] = median_time(lambda f=fwd: f(v), repeats)
        row[f'{backend}_fwdbwd'] = median_time(lambda f=fwd_bwd: f(v), repeats)
        cov = float(jnp.mean(raster_fn(clip)[..., 3] > 0))
        row[f'{backend}_cov'] = cov
      rows.append(row)
      print_row(row, backends)
  return rows


def print_header(backends):
  cols = ['faces', 'res', 'tiny ms']
  for b in backends:
    cols += [f'{b} kernel ms', f'{b} raster ms', f'{b} fwd ms', f'{b} fwd+bwd ms',
             f'{b} Mpix/s', f'tiny/{b} kernel']
  print('| ' + ' | '.join(cols) + ' |')
  print('|' + '---|' * len(cols))


def print_row(row, backends):
  pixels = row['res']**2
  cells = [str(row['faces']), f"{row['res']}^2", f"{1e3 * row['tiny']:.1f}"]
  for b in backends:
    cells += [f"{1e3 * row[f'{b}_kernel']:.1f}", f"{1e3 * row[f'{b}_raster']:.1f}",
              f"{1e3 * row[f'{b}_fwd']:.1f}", f"{1e3 * row[f'{b}_fwdbwd']:.1f}",
              f"{pixels / row[f'{b}_kernel'] / 1e6:.1f}", f"{row['tiny'] / row[f'{b}_kernel']:.2f}"]
  print('| ' + ' | '.join(cells) + ' |', flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true', help='5k and 20k faces at 256^2 and 512^2.')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--backends', default='ffi,jax')
  args = parser.parse_args()
  faces = [5_000, 20_000] if args.quick else [5_000, 20_000, 100_000]
  resolutions = [256, 512] if args.quick else [256, 512, 1080]
  backends = args.backends.split(',')
  print(f'jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs, '
        f'load average {os.getloadavg()[0]:.1f} at start')
  print_header(backends)
  run(faces, resolutions, args.repeats, backends)
  print(f'load average {os.getloadavg()[0]:.1f} at end')


if __name__ == '__main__':
  main()
