"""Checks a configuration before any work starts: one clear error per bad value.

Unknown keys are already rejected by the locked ConfigDict (`--config.trian.x=1` fails naming the
key); this module checks values: allowed choices, ranges and consistency between fields.
"""

import os

import ml_collections

from ngd_jax import errors

_CHOICES = {
    'template.source': ('sequence', 'body'),
    'template.garment': ('', 'skirt', 'dress', 'tshirt', 'trousers'),
    'skinning.method': ('exp', 'knn'),
    'geometry.solver': ('auto', 'cg', 'cholesky', 'dense'),
    'geometry.parameterization': ('jacobian', 'displacement'),
    'geometry.anchor': ('centroid', 'top'),
    'loss.supervision': ('diffuse', 'normals'),
    'loss.shading_region': ('mask', 'image'),
    'render.backend': ('auto', 'ffi', 'jax'),
    'export.video_format': ('gif', 'mp4'),
    'data.synthetic_preset': ('', 'tiny', 'demo', 'skirt', 'dress', 'tshirt', 'long_skirt', 'flared_skirt',
                              'dress_walk', 'tshirt_arms', 'tiny_tube'),
}

_POSITIVE = (
    'data.resolution', 'data.frame_stride', 'train.num_epochs', 'train.static_lr', 'train.static_lr_end',
    'train.static_lr_steps', 'train.network_lr', 'train.network_lr_end', 'train.network_lr_steps',
    'train.adam_eps', 'train.frames_per_step', 'train.checkpoint_every_steps', 'train.keep_checkpoints',
    'train.log_every_steps', 'train.image_every_steps', 'geometry.cg_tol', 'geometry.cg_maxiter',
    'geometry.pose_components',
    'geometry.hash_levels', 'geometry.hash_features', 'geometry.hash_log2_table_size',
    'geometry.hash_base_resolution', 'geometry.mlp_width', 'render.near', 'render.far',
    'loss.huber_delta', 'loss.depth_pairs', 'loss.depth_box', 'remesh.capacity_multiple',
    'appearance.num_epochs', 'appearance.texture_size', 'appearance.lr', 'appearance.lr_end',
    'appearance.pose_components', 'appearance.hash_levels', 'appearance.hash_features',
    'appearance.hash_log2_table_size', 'appearance.hash_base_resolution', 'appearance.mlp_width',
    'eval.chamfer_samples', 'skinning.sigma', 'skinning.knn', 'geometry.anchor_width',
    'loss.penetration_margin', 'loss.penetration_grid_margin',
)

# Weights and noise levels: 0 turns a term off; a negative one would train towards its opposite.
_NON_NEGATIVE = (
    'loss.render_weight', 'loss.huber_weight', 'loss.ssim_weight', 'loss.mask_weight', 'loss.jacobian_weight',
    'loss.smoothness_weight', 'loss.penetration_weight', 'loss.depth_weight', 'loss.depth_margin',
    'loss.depth_correlation_weight', 'loss.posed_penetration_weight', 'loss.posed_penetration_samples',
    'train.vertex_noise_std', 'train.pose_noise_std', 'appearance.pose_noise_std', 'train.device_frames_max_gb',
)


class ConfigError(errors.UserError, ValueError):
  """A configuration value that cannot work; the message names the key and the fix."""


def _get(config: ml_collections.ConfigDict, dotted: str):
  value = config
  for part in dotted.split('.'):
    value = value[part]
  return value


def check_loaded(config: ml_collections.ConfigDict) -> None:
  """ConfigError if the --config file failed to load (config_flags reports it at the config's first use)."""
  try:
    _get(config, 'seed')
  except OSError as e:
    raise ConfigError(f'--config: {e} Fix: pass an existing configuration file, or a shipped one by name: '
                      '--config=demo.') from e


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first bad value found."""
  check_loaded(config)
  for key, allowed in _CHOICES.items():
    value = _get(config, key)
    if value not in allowed:
      raise ConfigError(f'--config.{key}={value!r} is not one of {allowed}.')
  for key in _POSITIVE:
    value = _get(config, key)
    if not value > 0:
      raise ConfigError(f'--config.{key}={value!r} must be > 0.')
  for key in _NON_NEGATIVE:
    value = _get(config, key)
    if not value >= 0:
      raise ConfigError(f'--config.{key}={value!r} must be >= 0 (0 turns it off).')
  if not (config.data.num_frames == -1 or config.data.num_frames > 0):
    raise ConfigError(f'--config.data.num_frames={config.data.num_frames!r} must be -1 (all frames) or > 0.')
  if not config.loss.penetration_grid_resolution >= 2:
    raise ConfigError(f'--config.loss.penetration_grid_resolution={config.loss.penetration_grid_resolution!r} '
                      'must be >= 2 (samples per axis of the distance grid).')
  if not 0 <= config.train.warmup_epochs <= config.train.num_epochs:
    raise ConfigError(
        f'--config.train.warmup_epochs={config.train.warmup_epochs} must lie in [0, train.num_epochs='
        f'{config.train.num_epochs}].'
    )
  if not config.geometry.dense_max_vertices >= 0:
    raise ConfigError(f'--config.geometry.dense_max_vertices={config.geometry.dense_max_vertices} must be >= 0 '
                      "(0: 'auto' never uses the dense solver).")
  if config.render.far <= config.render.near:
    raise ConfigError('--config.render.far must be larger than --config.render.near.')
  if not 0.0 < config.remesh.quantile < 1.0:
    raise ConfigError(f'--config.remesh.quantile={config.remesh.quantile} must lie in (0, 1).')
  epochs = tuple(config.remesh.epochs)
  if config.remesh.enabled and (list(epochs) != sorted(set(epochs)) or any(
      not 0 < e < config.train.num_epochs for e in epochs)):
    raise ConfigError(
        f'--config.remesh.epochs={epochs} must be increasing epochs inside (0, train.num_epochs='
        f'{config.train.num_epochs}); set --config.remesh.enabled=False to turn remeshing off.'
    )
  if config.data.path:
    if not os.path.isdir(config.data.path):
      raise ConfigError(f'--config.data.path={config.data.path!r} is not a folder: point it at a sequence folder.')
  elif not config.data.synthetic_preset:
    raise ConfigError(
        'No input sequence: pass --config.data.path=DIR (a sequence folder, see docs/design.md section 3) '
        'or --config.data.synthetic_preset=demo.'
    )
