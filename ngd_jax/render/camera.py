"""Cameras of the sequence format (OpenCV K and world_to_camera) to OpenGL clip space.

The one place where the conversion happens (WORKSPACE.md conventions). OpenCV image coordinates
put the centre of pixel (row r, column c) at (u, v) = (c, r); the rasterizer puts it at
x_ndc = 2(c + 0.5)/W - 1, y_ndc = 1 - 2(r + 0.5)/H (row 0 at the top). Clip w is the camera depth
z_cam, and z/w maps z_cam = near to -1 and z_cam = far to +1 (OpenGL).
"""

import jax.numpy as jnp
from jaxtyping import Array, Float


def camera_to_clip(K: Float[Array, '3 3'], world_to_camera: Float[Array, '4 4'],
                   image_size: tuple[int, int], near: float, far: float) -> Float[Array, '4 4']:
  """World -> clip matrix from K (pixels) and world_to_camera.

  Args:
    K: OpenCV intrinsics in pixels of an image of size image_size (skew K[0, 1] honoured).
    world_to_camera: OpenCV extrinsics (x right, y down, z forward).
    image_size: (H, W) of the rendered image.
    near, far: clip planes in metres, 0 < near < far.

  Returns:
    P with clip = P @ [X, Y, Z, 1]; differentiable w.r.t. K and world_to_camera.
  """
  if not 0 < near < far:
    raise ValueError(f'camera_to_clip: need 0 < near < far, got near={near}, far={far}.')
  height, width = image_size
  K = jnp.asarray(K, jnp.float32)
  zero = jnp.zeros((), jnp.float32)
  proj = jnp.stack([
      jnp.stack([2 * K[0, 0] / width, 2 * K[0, 1] / width, 2 * (K[0, 2] + 0.5) / width - 1, zero]),
      jnp.stack([zero, -2 * K[1, 1] / height, 1 - 2 * (K[1, 2] + 0.5) / height, zero]),
      jnp.asarray([0.0, 0.0, (far + near) / (far - near), -2 * far * near / (far - near)],
                  jnp.float32),
      jnp.asarray([0.0, 0.0, 1.0, 0.0], jnp.float32),
  ])
  return proj @ jnp.asarray(world_to_camera, jnp.float32)
