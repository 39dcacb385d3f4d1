"""Host: image composition for the pictures a person looks at (previews, TensorBoard): uint8
conversion, an error colour map, labelled rows of panels."""

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchor colours of the 'inferno' colour map at 0, 1/8, ..., 1 (black, purple, orange, yellow),
# linearly interpolated by error_colormap.
_INFERNO = np.array([
    [0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
    [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164]], np.float64) / 255.0

def to_uint8(image: np.ndarray) -> np.ndarray:
  """Host: an image as uint8 [H, W, 3]: float in [0, 1] (clipped) or uint8; gray [H, W(, 1)] too."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f'image must be [H, W], [H, W, 1] or [H, W, 3], got {image.shape}.')
  if image.dtype != np.uint8:
    image = np.round(np.clip(np.nan_to_num(image.astype(np.float64)), 0.0, 1.0) * 255.0)
    image = image.astype(np.uint8)
  return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def error_colormap(img_a: np.ndarray, img_b: np.ndarray, error_max: float = 1.0) -> np.ndarray:
  """Host: |img_a - img_b| (channel mean) coloured (inferno) on [0, error_max]: uint8 [H, W, 3]."""
  a = np.asarray(img_a, np.float64)
  b = np.asarray(img_b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f'error_colormap: images differ in shape: {a.shape} vs {b.shape}.')
  if not error_max > 0:
    raise ValueError(f'error_colormap: error_max must be positive, got {error_max}.')
  error = np.abs(a - b)
  error = error.mean(axis=-1) if error.ndim == 3 else error
  position = np.clip(np.nan_to_num(error) / error_max, 0.0, 1.0) * (len(_INFERNO) - 1)
  low = np.minimum(np.floor(position).astype(np.int64), len(_INFERNO) - 2)
  frac = (position - low)[..., None]
  colour = _INFERNO[low] * (1.0 - frac) + _INFERNO[low + 1] * frac
  return to_uint8(colour)


def side_by_side(images: Sequence[np.ndarray], labels: Sequence[str] | None = None,
                 gap: int = 2) -> np.ndarray:
  """Host: images of one height ([H, W(, C)], float in [0, 1] or uint8) in a row: uint8 [H', W', 3].

  With labels, a white strip with each image's label is added on top.
  """
  if not images:
    raise ValueError('side_by_side: no images.')
  images = [to_uint8(image) for image in images]
  height = images[0].shape[0]
  if any(image.shape[0] != height for image in images):
    raise ValueError(f'side_by_side: images must share a height, got '
                     f'{[image.shape[0] for image in images]}.')
  if labels is not None and len(labels) != len(images):
    raise ValueError(f'side_by_side: {len(labels)} labels for {len(images)} images.')
  spacer = np.full((height, gap, 3), 255, np.uint8)
  parts = [images[0]]
  for image in images[1:]:
    parts += [spacer, image]
  row = np.concatenate(parts, axis=1)
  if labels is None:
    return row
  font = ImageFont.load_default()
  strip_height = int(font.getbbox('Ag')[3]) + 4
  strip = Image.new('RGB', (row.shape[1], strip_height), (255, 255, 255))
  draw = ImageDraw.Draw(strip)
  x = 0
  for image, label in zip(images, labels):
    draw.text((x + 2, 2), label, fill=(0, 0, 0), font=font)
    x += image.shape[1] + gap
  return np.concatenate([np.asarray(strip), row], axis=0)


def training_panels(input_image: np.ndarray, render: np.ndarray, error_max: float = 1.0,
                    label: str = '') -> tuple[list[np.ndarray], list[str]]:
  """Host: the pictures (input, render, error colour map) of one frame and their labels."""
  prefix = f'{label} ' if label else ''
  return ([input_image, render, error_colormap(input_image, render, error_max)],
          [f'{prefix}input', 'render', f'|error| (0-{error_max:g})'])


def preview_row(input_image: np.ndarray, render: np.ndarray, error_max: float = 1.0,
                label: str = '') -> np.ndarray:
  """Host: input | render | error colour map of one frame, labelled: uint8 [H', W', 3]."""
  return side_by_side(*training_panels(input_image, render, error_max, label))
