"""Host: what a person watching a run sees: a progress bar with ETA, TensorBoard scalars and images."""

import glob
import io
import os
import struct
from typing import NamedTuple

import numpy as np
from PIL import Image
import tensorboardX
from tensorboardX import record_writer
from tensorboardX.proto import event_pb2
import tqdm


class Reporter:
  """One progress bar per phase and one TensorBoard event folder (workdir/tensorboard) per run."""

  def __init__(self, logdir: str):
    self._writer = tensorboardX.SummaryWriter(logdir)
    self._bar = None

  def start_phase(self, name: str, total_steps: int, done_steps: int) -> None:
    self.close_bar()
    self._bar = tqdm.tqdm(total=total_steps, initial=done_steps, desc=name, unit='step', dynamic_ncols=True)

  def advance(self, steps: int = 1) -> None:
    self._bar.update(steps)

  def scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
    """Writes `values` under `prefix/` and shows the main ones on the progress bar."""
    for name, value in values.items():
      self._writer.add_scalar(f'{prefix}/{name}', float(value), step)
    if self._bar is not None:
      self._bar.set_postfix({k: f'{float(v):.4g}' for k, v in values.items() if k in ('total', 'faces')})

  def image(self, step: int, name: str, image: np.ndarray) -> None:
    """`image` [H, W, 3]: float in [0, 1] (clipped) or uint8 (as the export's labelled rows are)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
      image = np.clip(image, 0.0, 1.0)
    self._writer.add_image(name, image, step, dataformats='HWC')

  def write(self, message: str) -> None:
    """Prints a line without breaking the progress bar."""
    tqdm.tqdm.write(message)

  def close_bar(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def close(self) -> None:
    self.close_bar()
    self._writer.close()


class Events(NamedTuple):
  """What a TensorBoard folder holds, by tag, in the order written."""

  scalars: dict[str, list[tuple[int, float]]]  # tag -> (step, value)
  images: dict[str, list[tuple[int, np.ndarray]]]  # tag -> (step, uint8 [H, W, 3])


def read_events(logdir: str) -> Events:
  """Host: the scalars and images of every events file in `logdir` (no TensorFlow needed).

  Lets tests and scripts check what a run logged. Files are read in name order (tensorboardX names
  them by creation time); each is a TFRecord stream: length (uint64), its masked CRC-32C, the
  Event protobuf, its masked CRC-32C. A truncated record or one whose CRC does not match raises
  ValueError.
  """
  events = Events({}, {})
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    offset = 0
    while offset < len(data):
      header = data[offset:offset + 8]
      length = struct.unpack('<Q', header)[0] if len(header) == 8 else len(data)
      if offset + 16 + length > len(data):
        raise ValueError(f'{path}: truncated record at byte {offset}.')
      header_crc, = struct.unpack('<I', data[offset + 8:offset + 12])
      record = data[offset + 12:offset + 12 + length]
      record_crc, = struct.unpack('<I', data[offset + 12 + length:offset + 16 + length])
      if header_crc != record_writer.masked_crc32c(header) or record_crc != record_writer.masked_crc32c(record):
        raise ValueError(f'{path}: corrupt record at byte {offset}.')
      offset += 16 + length
      event = event_pb2.Event.FromString(record)
      for value in event.summary.value:
        if value.HasField('simple_value'):
          events.scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
        elif value.HasField('image'):
          picture = np.asarray(Image.open(io.BytesIO(value.image.encoded_image_string)).convert('RGB'))
          events.images.setdefault(value.tag, []).append((event.step, picture))
  return events
