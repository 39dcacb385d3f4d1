"""Host: what a person watching a run sees: a progress bar with ETA, TensorBoard scalars and images."""

import numpy as np
import tensorboardX
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
    """`image` float [H, W, 3] in [0, 1]."""
    self._writer.add_image(name, np.clip(image, 0.0, 1.0), step, dataformats='HWC')

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
