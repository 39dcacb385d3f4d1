"""NGD shading of the posed garment (docs/method.md section 3) and a per-vertex colour renderer.

render_garment rasterizes the garment and returns the channels compared with the video:
- normal: area-weighted vertex normals, rotated into the camera frame (OpenCV: x right, y down,
  z forward), interpolated without renormalizing;
- diffuse = clamp(<n, towards camera>, 0, 1) on that interpolated normal, with the towards-camera
  axis (0, 0, -1) of the camera frame (not the per-pixel ray), as the paper's numbers used;
- front = diffuse > 0 (a binary mask, no gradient); alpha = coverage x front;
- depth = (1 - z/w) / 2 with z/w the OpenGL NDC depth (camera_to_clip: near -> 1, far -> 0),
  0 on background, so nearer is larger; perspective-correct and differentiable.
diffuse, alpha, depth and normal go through antialias (the only source of silhouette gradients);
front stays binary. Padded meshes need no mask: padding faces (0, 0, 0) are never rasterized
and have zero area, and padding vertices belong to no real face.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ngd_jax import meshes
from ngd_jax.render import antialiasing as antialias_lib
from ngd_jax.render import rasterizer as rasterize_lib


class GarmentRender(NamedTuple):
  """Rendered channels of one frame (shapes for resolution (H, W))."""
  diffuse: Float[Array, 'H W 1']
  alpha: Float[Array, 'H W 1']
  depth: Float[Array, 'H W 1']  # (1 - z_ndc) / 2, 0 background.
  normal: Float[Array, 'H W 3']  # Camera frame (OpenCV), interpolated vertex normals.
  front: Float[Array, 'H W 1']  # 1 where diffuse > 0.
  rast: Float[Array, 'H W 4']  # (u, v, z/w, id + 1).


class ColorRender(NamedTuple):
  """Per-vertex colours rendered for one frame."""
  rgb: Float[Array, 'H W C']  # 0 background.
  coverage: Float[Array, 'H W 1']
  rast: Float[Array, 'H W 4']


def to_clip(vertices: Float[Array, 'V 3'],
            world_to_clip: Float[Array, '4 4']) -> Float[Array, 'V 4']:
  """World points -> clip positions."""
  homogeneous = jnp.concatenate([vertices, jnp.ones_like(vertices[:, :1])], axis=-1)
  return homogeneous @ world_to_clip.T


def render_garment(vertices: Float[Array, 'V 3'], faces: Int[Array, 'F 3'],
                   topology: antialias_lib.Topology, world_to_clip: Float[Array, '4 4'],
                   world_to_camera: Float[Array, '4 4'], resolution: tuple[int, int],
                   backend: str = 'auto', antialias: bool = True) -> GarmentRender:
  """Renders the NGD channels of one frame (docs/method.md section 3); jit and vmap friendly.

  Args:
    vertices: f32[V, 3] posed garment in world coordinates (padded meshes allowed).
    faces: i32[F, 3].
    topology: build_topology(faces).
    world_to_clip: f32[4, 4] from camera_to_clip.
    world_to_camera: f32[4, 4] OpenCV extrinsics (rotation part used for the normals).
    resolution: (H, W), static.
    backend: rasterizer kernel, see rasterize.
    antialias: False skips antialiasing (then no silhouette gradients).

  Returns:
    GarmentRender; every channel differentiable w.r.t. vertices except front and rast[..., 2:].
  """
  faces = jnp.asarray(faces, jnp.int32)
  clip = to_clip(vertices, world_to_clip)
  rast = rasterize_lib.rasterize(clip, faces, resolution, backend)
  normals_cam = meshes.vertex_normals(vertices, faces) @ world_to_camera[:3, :3].T
  attrs = jnp.concatenate([normals_cam, clip[:, 2:4]], axis=-1)
  pixel = rasterize_lib.interpolate(attrs, rast, faces)
  covered = rast[..., 3:4] > 0
  normal = pixel[..., 0:3]
  diffuse = jnp.clip(-normal[..., 2:3], 0.0, 1.0)
  front = jax.lax.stop_gradient((diffuse > 0).astype(jnp.float32))
  alpha = covered.astype(jnp.float32) * front
  z_ndc = pixel[..., 3:4] / jnp.where(covered, pixel[..., 4:5], 1.0)
  depth = jnp.where(covered, 0.5 * (1.0 - z_ndc), 0.0)
  image = jnp.concatenate([diffuse, alpha, depth, normal], axis=-1)
  if antialias:
    image = antialias_lib.antialias(image, rast, clip, faces, topology)
  return GarmentRender(diffuse=image[..., 0:1], alpha=image[..., 1:2], depth=image[..., 2:3],
                       normal=image[..., 3:6], front=front, rast=rast)


def render_colors(vertices: Float[Array, 'V 3'], faces: Int[Array, 'F 3'],
                  colors: Float[Array, 'V C'], world_to_clip: Float[Array, '4 4'],
                  resolution: tuple[int, int], topology: antialias_lib.Topology | None = None,
                  backend: str = 'auto') -> ColorRender:
  """Renders per-vertex colours (e.g. body + garment RGB for synthetic data).

  With a topology, colour and coverage are antialiased (soft silhouettes); without, they are
  hard-edged.
  """
  faces = jnp.asarray(faces, jnp.int32)
  clip = to_clip(vertices, world_to_clip)
  rast = rasterize_lib.rasterize(clip, faces, resolution, backend)
  coverage = (rast[..., 3:4] > 0).astype(jnp.float32)
  rgb = rasterize_lib.interpolate(colors, rast, faces)
  if topology is not None:
    both = antialias_lib.antialias(jnp.concatenate([rgb, coverage], axis=-1), rast, clip, faces,
                                   topology)
    rgb, coverage = both[..., :-1], both[..., -1:]
  return ColorRender(rgb=rgb, coverage=coverage, rast=rast)
