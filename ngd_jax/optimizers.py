"""The two phases' optimizers (docs/method.md sections 5 and 7), built from hashable settings.

The settings hold only what the compiled step depends on, so they can be static jit arguments:
changing a logging or checkpoint interval does not recompile a step.
"""

from typing import NamedTuple

import jax
import ml_collections
import optax


class GeometryOptimizer(NamedTuple):
  """Adam on J^S (with norm clipping) and on the dynamic field, each with a log-linear decay; constant Adam on the
  cloth's colour field where the run has one."""

  static_lr: float
  static_lr_end: float
  static_lr_steps: int
  static_clip_norm: float
  network_lr: float
  network_lr_end: float
  network_lr_steps: int
  colour_lr: float
  adam_eps: float

  @classmethod
  def from_config(cls, train_config: ml_collections.ConfigDict) -> 'GeometryOptimizer':
    return cls(*(train_config[name] for name in cls._fields))


class AppearanceOptimizer(NamedTuple):
  """Adam on the static and dynamic texture, log-linear from lr to lr_end over the phase."""

  lr: float
  lr_end: float
  total_steps: int
  adam_eps: float

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, total_steps: int) -> 'AppearanceOptimizer':
    return cls(config.appearance.lr, config.appearance.lr_end, total_steps, config.train.adam_eps)


def log_linear(start: float, end: float, steps: int) -> optax.Schedule:
  """start -> end geometrically over `steps`, then constant at end."""
  return optax.exponential_decay(start, transition_steps=max(steps, 1), decay_rate=end / start, end_value=end)


def geometry_optimizer(settings: GeometryOptimizer) -> optax.GradientTransformation:
  """Adam (the paper's eps 1e-15) on params['static'] with norm clipping, on params['dynamic'] and on
  params['colour'] (the cloth's colour field, present where the photometric term is on)."""
  static = optax.chain(
      optax.clip_by_global_norm(settings.static_clip_norm),
      optax.adam(log_linear(settings.static_lr, settings.static_lr_end, settings.static_lr_steps),
                 eps=settings.adam_eps),
  )
  network = optax.adam(log_linear(settings.network_lr, settings.network_lr_end, settings.network_lr_steps),
                       eps=settings.adam_eps)
  colour = optax.adam(settings.colour_lr, eps=settings.adam_eps)

  def labels(params):  # Each leaf by the part it belongs to.
    return {name: jax.tree.map(lambda _: name, leaves) for name, leaves in params.items()}

  return optax.multi_transform({'static': static, 'dynamic': network, 'colour': colour}, labels)


def appearance_optimizer(settings: AppearanceOptimizer) -> optax.GradientTransformation:
  return optax.adam(log_linear(settings.lr, settings.lr_end, settings.total_steps), eps=settings.adam_eps)
