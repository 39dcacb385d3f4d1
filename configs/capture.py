"""Your own clip, imported by ngd_jax.data.capture or ngd_jax.data.people_snapshot, trained on CPU.

Such a clip has no ground truth: evaluation reports the training-view PSNR / SSIM / LPIPS (README
"Your own clip"). Sizes are the demo's (configs/demo.py) at a somewhat higher resolution; the
schedule is counted in epochs (one epoch = every frame once), so its length grows with the clip:
150 frames x 30 epochs is 4,500 geometry steps, about half an hour on 2 CPU cores at 384 pixels
(estimated from the demo's step time at 256 pixels, not measured).
The method and every loss stay as in default.py.

    ngd-jax --config=capture --workdir=runs/mine --config.data.path=sequences/mine
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.path = ''  # Pass --config.data.path=DIR (the imported sequence folder); required.
  config.data.resolution = 384  # Longer image side for training; import at this size or larger (--resolution).
  config.template.source = 'sequence'  # The importer's template.obj (--template, or built from the body there).
  config.geometry.hash_log2_table_size = 14  # As the demo: dense Adam state over 2^19 entries is slow on CPU.
  config.appearance.hash_log2_table_size = 14
  config.appearance.texture_size = 512
  # A few thousand steps instead of the paper's 120,000: J^S needs the demo's larger rate to move as far.
  config.train.static_lr = 5e-3
  config.train.num_epochs = 30
  config.train.warmup_epochs = 5
  config.remesh.epochs = (15,)
  config.remesh.blend_epochs = 2
  config.appearance.num_epochs = 10
  config.appearance.dynamic_start_epoch = 3
  config.train.checkpoint_every_steps = 500  # A killed run loses at most a few minutes.
  config.train.log_every_steps = 20
  config.train.image_every_steps = 300
  return config
