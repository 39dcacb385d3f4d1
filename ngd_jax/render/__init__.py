"""Differentiable renderer (docs/design.md section 4, docs/method.md section 3)."""

from ngd_jax.render.antialiasing import antialias
from ngd_jax.render.antialiasing import build_topology
from ngd_jax.render.antialiasing import Topology
from ngd_jax.render.camera import camera_to_clip
from ngd_jax.render.rasterizer import interpolate
from ngd_jax.render.rasterizer import rasterize
from ngd_jax.render.sampling import bilinear_sample
from ngd_jax.render.shading import ColorRender
from ngd_jax.render.shading import GarmentRender
from ngd_jax.render.shading import render_colors
from ngd_jax.render.shading import render_garment
from ngd_jax.render.shading import to_clip

__all__ = [
    'antialias', 'bilinear_sample', 'build_topology', 'camera_to_clip', 'ColorRender', 'GarmentRender',
    'interpolate', 'rasterize', 'render_colors', 'render_garment', 'to_clip',
    'Topology',
]
