"""What the render term compares: the target image made from a frame's normal map, and the rendered
counterpart (config.loss.supervision). Shared by the frame bank (targets, host) and the step (renders).
"""

import jax.numpy as jnp
from jaxtyping import Array, Float

SUPERVISION = ('diffuse', 'normals')


def target_diffuse(normal: Float[Array, 'H W 3'], mask: Float[Array, 'H W']) -> Float[Array, 'H W 1']:
  """Pseudo-GT diffuse: clip(n . towards-camera, 0, 1) x mask; OpenCV camera axes, so towards = -z."""
  return (jnp.clip(-normal[..., 2], 0.0, 1.0) * mask)[..., None]


def target_image(normal: Float[Array, 'H W 3'], mask: Float[Array, 'H W'], supervision: str) -> Array:
  """What the render term compares with (config.loss.supervision): the pseudo-GT diffuse [H, W, 1]
  (the paper), or its normals mapped to [0, 1], (n + 1) / 2 x mask [H, W, 3] (the paper's ablation)."""
  if supervision == 'diffuse':
    return target_diffuse(normal, mask)
  if supervision == 'normals':
    return 0.5 * (normal + 1.0) * mask[..., None]
  raise ValueError(f'supervision must be one of {SUPERVISION}, got {supervision!r}.')


def supervised_image(diffuse: Float[Array, 'H W 1'], normal: Float[Array, 'H W 3'], alpha: Float[Array, 'H W 1'],
                     supervision: str) -> Array:
  """The rendered counterpart of target_image (before the render term masks it): like the target, zero where
  no garment is drawn (the rendered channels are blended over a zero background by their coverage `alpha`,
  so the normals' map is (n + 1) / 2 x alpha = (normal + alpha) / 2)."""
  return diffuse if supervision == 'diffuse' else 0.5 * (normal + alpha)


