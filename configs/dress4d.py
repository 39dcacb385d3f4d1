"""What the paper's 4D-Dress settings (configs/seq123.py ... seq187.py) share.

Each sequence config calls get_config with its garment's template; everything else is default.py.
"""

from configs import default


def get_config(garment: str):
  config = default.get_config()
  config.data.path = ''  # Pass --config.data.path=DIR (the imported sequence folder); required.
  config.data.resolution = 1080  # The paper trains at 1080 pixels.
  config.template.source = 'body'  # 4D-Dress ships no template usable here: build one from the body.
  config.template.garment = garment  # Template built from the body's rest mesh.
  return config
