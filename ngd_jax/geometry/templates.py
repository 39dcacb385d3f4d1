"""Garment templates in the body's rest space (docs/method.md section 2, configs/default.py template).

load_template reads the sequence's template.obj. body_template builds one from the body's rest
mesh (y up, metres, as SMPL) for common garments:
  skirt, dress: a tube around the vertical body axis that does not follow the legs, with a
    star-shaped cross-section: per height and angle, the body's largest radial extent plus the
    offset; below the hips the radius only grows (cumulative maximum), so the hem hangs over
    both legs. Skirt: waist to mid-thigh (halfway from the hips to the knee); dress
    (strapless tube): chest to the knee.
  tshirt, trousers: the surface at distance `offset` outside the body (marching cubes of the
    signed distance), cut by planes (waist, neck, sleeves at mid upper arm, hems above the
    ankles), largest piece kept, remeshed (gpytoolbox remesh_botsch, Botsch-Kobbelt) to the
    target edge length.
Arms never shape the tubes: only the body piece around the hips between the tube's heights is
measured (hands hanging by the hips in an A-pose form separate pieces). Sleeves are cut by
planes across the x axis, i.e. at mid upper arm for a T-pose (SMPL's rest pose); an A-pose gets
longer sleeves. Cut heights come from the skinning: the dominant-joint regions of SMPL joint
names (pelvis, spine1, spine3, knees, ankles, neck, shoulders = upper arms); without those names,
or when the regions they name lie out of order (another model's joint order), from fractions of
the body height (Drillis and Contini anthropometric proportions). Nothing is closed: the result
is an open, edge-manifold, outward-oriented surface.
"""

import logging
import pathlib
from typing import NamedTuple, Sequence

import gpytoolbox
import numpy as np
import scipy.ndimage
import scipy.sparse.csgraph
import skimage.measure
import trimesh

from ngd_jax.geometry import orientation

GARMENTS = ('skirt', 'dress', 'tshirt', 'trousers')

# Landmark heights as fractions of stature above the soles (Drillis and Contini, 1966), used when
# the body has no joint names. The trouser hem is a design choice of the template.
_HEIGHT_FRACTIONS = {
    'ankle_hem': 0.07,  # Trouser hem, just above the ankle (0.039).
    'knee': 0.285,
    'hip': 0.53,  # Greater trochanter: widest part of the hips.
    'waist': 0.60,  # Navel height.
    'chest': 0.70,  # Just under the armpits.
    'neck': 0.83,  # Base of the neck (shoulder line 0.818).
}
# Landmarks from the soles up: the joint-name parts of their region and the height quantile of it.
_LANDMARKS = {'ankle_hem': (('ankle',), 0.98), 'knee': (('knee',), 0.98), 'hip': (('pelvis',), 0.1),
              'waist': (('spine1',), 0.25), 'chest': (('spine3',), 0.1), 'neck': (('neck',), 0.1)}
_UPPER_ARM_FRACTION = 0.21  # Sleeve end: lateral distance from the axis (mid upper arm in T-pose).


class TemplateMesh(NamedTuple):
  """A garment template: vertices float32 [V, 3] (metres), faces int32 [F, 3] (CCW outside)."""

  vertices: np.ndarray
  faces: np.ndarray


def load_template(path: str | pathlib.Path) -> TemplateMesh:
  """Host: reads a template mesh (.obj, .ply, ...) and validates it."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise orientation.TemplateError(f'{path}: template file not found; give the garment template .obj of the '
                                    'sequence, or set config.template.source = "body".')
  try:
    mesh = trimesh.load(path, process=False, force='mesh')
  except Exception as error:  # trimesh raises many types for unreadable files.
    raise orientation.TemplateError(f'{path}: cannot read as a triangle mesh ({error}).') from error
  vertices = np.asarray(getattr(mesh, 'vertices', np.zeros((0, 3))), np.float64)
  faces = np.asarray(getattr(mesh, 'faces', np.zeros((0, 3))))
  if len(vertices) == 0 or faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
    raise orientation.TemplateError(f'{path}: no triangles found; the template must be a triangle mesh.')
  if not np.all(np.isfinite(vertices)):
    raise orientation.TemplateError(f'{path}: non-finite vertex coordinates.')
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise orientation.TemplateError(f'{path}: face indices outside [0, {len(vertices)}).')
  area = np.linalg.norm(np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                                 vertices[faces[:, 2]] - vertices[faces[:, 0]]), axis=1)
  degenerate = area <= 1e-12 * max(float(np.ptp(vertices, axis=0).max()), 1.0)**2
  if degenerate.any():
    raise orientation.TemplateError(f'{path}: {int(degenerate.sum())} degenerate (zero-area) faces; '
                                    'clean the mesh (merge duplicate vertices, remove degenerate faces).')
  return TemplateMesh(vertices.astype(np.float32), faces.astype(np.int32))


class _Body(NamedTuple):
  vertices: np.ndarray  # [Vb, 3] float64
  faces: np.ndarray  # [Fb, 3] int64
  labels: np.ndarray | None  # [Vb] dominant joint name per vertex, or None
  height: float
  floor: float


def _dominant_joints(weights: np.ndarray, names: Sequence[str] | None) -> np.ndarray | None:
  """Host: the name of each vertex's largest skinning weight, or None without names."""
  if names is None or len(names) == 0:
    return None
  if len(names) != weights.shape[1]:
    raise ValueError(f'{len(names)} joint names for {weights.shape[1]} skinning weight columns.')
  return np.asarray(list(names))[np.argmax(weights, axis=1)]


def _in_group(labels: np.ndarray, group: Sequence[str]) -> np.ndarray:
  """Host: labels containing any of the group's name parts ('knee' matches both knees)."""
  return np.array([any(part in label for part in group) for label in labels])


def _landmark(body: _Body, name: str) -> float:
  """Host: height of a landmark: a quantile of the heights of a joint region, else a fraction."""
  joints, quantile = _LANDMARKS[name]
  if body.labels is not None:
    region = _in_group(body.labels, joints)
    if region.any():
      return float(np.quantile(body.vertices[region, 1], quantile))
  return body.floor + _HEIGHT_FRACTIONS[name] * body.height


def _with_fitting_labels(body: _Body) -> _Body:
  """Host: the body, without its joint labels when they do not describe it.

  Names of another model's joint order (SMPL names on a body whose joints come in another order)
  put the landmark regions out of order, and cuts between them would select nothing.
  """
  if body.labels is None:
    return body
  heights = [_landmark(body, name) for name in _LANDMARKS]
  if np.all(np.diff(heights) > 0):
    return body
  logging.warning('Body template: the joint regions put the landmarks out of order (%s m above the soles); the '
                  'joint names do not describe this body, so fractions of its height are used.',
                  ', '.join(f'{name} {height - body.floor:.2f}' for name, height in zip(_LANDMARKS, heights)))
  return body._replace(labels=None)


def _sleeve_extent(body: _Body) -> float:
  """Host: lateral distance from the body axis to the sleeve ends (mid upper arm)."""
  if body.labels is not None:
    upper_arm = np.array([label.endswith('shoulder') for label in body.labels])
    if upper_arm.any():
      return float(np.median(np.abs(body.vertices[upper_arm, 0] - _axis(body)[0])))
  return _UPPER_ARM_FRACTION * body.height


def _axis(body: _Body) -> np.ndarray:
  """Host: (x, z) of the vertical body axis: area-weighted centre of a thin slab at hip height.

  Area-weighted (dense finger vertices weigh little) and thin (hands of an A-pose hang just
  above it), so that only the pelvis and thighs place the axis.
  """
  hip = body.floor + _HEIGHT_FRACTIONS['hip'] * body.height
  corners = body.vertices[body.faces]
  centres = corners.mean(axis=1)
  area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]),
                        axis=1)
  near = np.abs(centres[:, 1] - hip) < 0.02 * body.height
  if not near.any():
    near = np.ones(len(centres), bool)
  return np.average(centres[near][:, [0, 2]], axis=0, weights=area[near] + 1e-12)


def _signed_distance(points: np.ndarray, body: _Body) -> np.ndarray:
  """Host: signed distance to the body surface (negative inside, by the winding number)."""
  squared, _, _ = gpytoolbox.squared_distance(points, body.vertices, body.faces, use_cpp=True)
  inside = gpytoolbox.fast_winding_number(points, body.vertices, body.faces) > 0.5
  return np.where(inside, -1.0, 1.0) * np.sqrt(squared)


def _no_surface(body: _Body, low: float, high: float) -> str:
  return (f'body template: the body has no surface between the cut heights {low - body.floor:.2f} and '
          f'{high - body.floor:.2f} m above its soles (it is {body.height:.2f} m tall); the builder needs a '
          'standing human body in metres, y up')


def _trunk_between(body: _Body, low: float, high: float, hip: float,
                   axis: np.ndarray) -> trimesh.Trimesh:
  """Host: the body's surface between two heights, without the arms.

  Keeps the connected piece nearest the body axis at hip height (torso and legs, joined at the
  pelvis). Arms reach this band only from above (hands of an A-pose hang by the hips), so they
  form separate pieces and are dropped, with or without joint names.
  """
  heights = body.vertices[body.faces, 1]
  faces = body.faces[(heights.min(axis=1) >= low) & (heights.max(axis=1) <= high)]
  if not len(faces):
    raise orientation.TemplateError(_no_surface(body, low, high))
  band = trimesh.Trimesh(body.vertices, faces, process=False)
  band.remove_unreferenced_vertices()
  _, labels = scipy.sparse.csgraph.connected_components(band.edges_sparse, directed=False)
  centre = np.array([axis[0], hip, axis[1]])
  torso = labels[np.argmin(np.linalg.norm(band.vertices - centre, axis=1))]
  return band.submesh([labels[band.faces[:, 0]] == torso], append=True)


def _revolution_tube(body: _Body, top: float, hem: float, hip: float, offset: float,
                     edge_length: float) -> TemplateMesh:
  """Host: a star-shaped tube from `top` down to `hem` around the body axis (skirt, dress)."""
  axis = _axis(body)
  trunk = _trunk_between(body, hem - edge_length, top + edge_length, hip, axis)
  # Dense surface samples (spacing a quarter edge) so that every angle bin of every ring sees
  # the body's outermost point.
  sample_count = max(20000, int(trunk.area / (0.25 * edge_length)**2))
  samples, _ = trimesh.sample.sample_surface(trunk, sample_count, seed=0)
  samples = np.concatenate([samples, trunk.vertices])
  radial = samples[:, [0, 2]] - axis
  radius = np.linalg.norm(radial, axis=1)
  angle = np.arctan2(radial[:, 1], radial[:, 0])
  ring_step = edge_length * np.sqrt(3) / 2
  num_rings = max(2, int(np.ceil((top - hem) / ring_step)) + 1)
  heights = np.linspace(top, hem, num_rings)
  max_radius = radius[(samples[:, 1] <= top) & (samples[:, 1] >= hem)].max()
  around = max(8, int(np.ceil(2 * np.pi * (max_radius + offset) / edge_length)))
  bins = np.floor((angle + np.pi) / (2 * np.pi) * around).astype(int) % around
  profile = np.zeros((num_rings, around))
  half_band = ring_step
  for ring, height in enumerate(heights):
    near = np.abs(samples[:, 1] - height) < half_band
    np.maximum.at(profile[ring], bins[near], radius[near])
  # Neighbouring angles cover bins without samples and the facet between ring vertices.
  profile = scipy.ndimage.maximum_filter1d(profile, size=5, axis=1, mode='wrap')
  profile = np.where(profile > 0, profile, profile.max(axis=1, keepdims=True))
  # From the last ring above the hips down, the radius only grows: the tube skips the legs.
  start = max(int(np.sum(heights >= hip)) - 1, 0)
  profile[start:] = np.maximum.accumulate(profile[start:], axis=0)
  profile += offset
  theta = (np.arange(around)[None, :] + 0.5 * (np.arange(num_rings)[:, None] % 2)) / around
  theta = theta * 2 * np.pi - np.pi
  vertices = np.stack([axis[0] + profile * np.cos(theta),
                       np.broadcast_to(heights[:, None], theta.shape),
                       axis[1] + profile * np.sin(theta)], axis=-1).reshape(-1, 3)
  faces = []
  for ring in range(num_rings - 1):
    a = ring * around + np.arange(around)
    b = ring * around + (np.arange(around) + 1) % around
    c, d = a + around, b + around
    if ring % 2 == 0:  # Lower ring shifted by +half a step.
      faces += [np.stack([a, b, c], 1), np.stack([b, d, c], 1)]
    else:
      faces += [np.stack([a, b, d], 1), np.stack([a, d, c], 1)]
  return _push_outside(body, TemplateMesh(vertices, np.concatenate(faces)), offset)


def _push_outside(body: _Body, mesh: TemplateMesh, offset: float) -> TemplateMesh:
  """Host: moves vertices closer than `offset` to the body radially outward (a few passes)."""
  vertices = np.array(mesh.vertices, np.float64)
  axis = _axis(body)
  for _ in range(4):
    distance = _signed_distance(vertices, body)
    close = distance < offset
    if not close.any():
      break
    radial = vertices[close][:, [0, 2]] - axis
    radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    vertices[close, 0] += radial[:, 0] * (offset - distance[close])
    vertices[close, 2] += radial[:, 1] * (offset - distance[close])
  return TemplateMesh(vertices, mesh.faces)


def _offset_surface(body: _Body, low: float, high: float, offset: float,
                    spacing: float) -> trimesh.Trimesh:
  """Host: the surface at distance `offset` outside the body, between two heights (+ margin)."""
  margin = 2 * offset + 2 * spacing
  inside = (body.vertices[:, 1] > low - margin) & (body.vertices[:, 1] < high + margin)
  if not inside.any():
    raise orientation.TemplateError(_no_surface(body, low, high))
  lower = body.vertices[inside].min(axis=0) - margin
  upper = body.vertices[inside].max(axis=0) + margin
  lower[1], upper[1] = low - margin, high + margin
  counts = np.ceil((upper - lower) / spacing).astype(int) + 1
  axes = [lower[d] + spacing * np.arange(counts[d]) for d in range(3)]
  grid = np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1).reshape(-1, 3)
  field = (_signed_distance(grid, body) - offset).reshape(counts)
  vertices, faces, _, _ = skimage.measure.marching_cubes(field, 0.0, spacing=(spacing,) * 3)
  return trimesh.Trimesh(vertices + lower, faces, process=True)


def _slice(mesh: trimesh.Trimesh, normal: np.ndarray, origin: np.ndarray) -> trimesh.Trimesh:
  """Host: keeps the part of the mesh on the side of `normal` (faces split at the plane)."""
  vertices, faces = trimesh.intersections.slice_faces_plane(
      mesh.vertices, mesh.faces, plane_normal=normal, plane_origin=origin)[:2]
  sliced = trimesh.Trimesh(vertices, faces, process=True)
  sliced.merge_vertices()
  return sliced


def _largest_piece(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
  """Host: the connected piece of largest area."""
  pieces = mesh.split(only_watertight=False)
  return max(pieces, key=lambda piece: piece.area)


def _clean_boundary(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: removes ears (faces with two boundary edges), faces on non-manifold edges and
  faces around bow-tie vertices (more than two boundary edges), until none is left."""
  for _ in range(20):
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    edges = np.sort(mesh.edges, axis=1)
    unique, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    per_face = counts[inverse.reshape(-1)].reshape(-1, 3)
    boundary_valence = np.bincount(unique[counts == 1].ravel(), minlength=len(vertices))
    bad = ((np.sum(per_face == 1, axis=1) >= 2) | np.any(per_face > 2, axis=1) |
           np.any(boundary_valence[faces] > 2, axis=1))  # Bow-tie vertices.
    if not bad.any():
      break
    faces = faces[~bad]
  used = np.unique(faces)
  remap = np.full(len(vertices), -1)
  remap[used] = np.arange(len(used))
  return vertices[used], remap[faces]


def _remesh(mesh: trimesh.Trimesh, edge_length: float) -> trimesh.Trimesh:
  """Host: Botsch-Kobbelt remeshing (10 iterations) with boundary clean-up before and after."""
  vertices, faces = _clean_boundary(np.asarray(mesh.vertices), np.asarray(mesh.faces))
  vertices, faces = gpytoolbox.remesh_botsch(vertices, faces.astype(np.int32), 10, edge_length,
                                             True)
  vertices, faces = _clean_boundary(vertices, faces)
  return _largest_piece(trimesh.Trimesh(vertices, faces, process=True))


def _cut_garment(body: _Body, garment: str, offset: float, edge_length: float) -> TemplateMesh:
  """Host: tshirt and trousers from the body's offset surface cut by planes."""
  up = np.array([0.0, 1.0, 0.0])
  axis = _axis(body)
  if garment == 'trousers':
    low = _landmark(body, 'ankle_hem')
    high = _landmark(body, 'waist')
  else:
    low = _landmark(body, 'waist')
    # The neck cut must clear the upper arms' offset surface, or it would open the sleeves.
    lateral = np.abs(body.vertices[:, 0] - axis[0])
    sleeve = _sleeve_extent(body)
    arm = (lateral > 0.5 * sleeve) & (lateral < sleeve)
    arm_top = body.vertices[arm, 1].max() + offset + edge_length if arm.any() else -np.inf
    high = max(_landmark(body, 'neck'), arm_top)
  surface = _offset_surface(body, low, high, offset, 0.5 * edge_length)
  surface = _slice(surface, up, np.array([0.0, low, 0.0]))
  surface = _slice(surface, -up, np.array([0.0, high, 0.0]))
  if garment == 'tshirt':
    for side in (1.0, -1.0):
      surface = _slice(surface, np.array([-side, 0.0, 0.0]),
                       np.array([axis[0] + side * sleeve, 0.0, 0.0]))
  surface = _remesh(_largest_piece(surface), edge_length)
  return TemplateMesh(np.asarray(surface.vertices), np.asarray(surface.faces))


def body_template(rest_vertices: np.ndarray,
                  faces: np.ndarray,
                  skinning_weights: np.ndarray,
                  joint_names: Sequence[str] | None,
                  garment: str,
                  offset: float,
                  edge_length: float) -> TemplateMesh:
  """Host: builds a garment template around the body's rest mesh (see the module docstring).

  Args:
    rest_vertices: [Vb, 3] body rest surface, y up, metres; a closed mesh.
    faces: int [Fb, 3] body faces.
    skinning_weights: [Vb, K] body skinning weights (dominant joint per vertex).
    joint_names: K joint names (SMPL names), or None for the height-fraction fallback.
    garment: one of GARMENTS.
    offset: distance outside the body surface (config.template.offset, metres).
    edge_length: target edge length (config.template.edge_length, metres).

  Returns:
    TemplateMesh (float32, int32): open, edge-manifold, oriented with normals outward.
  """
  if garment not in GARMENTS:
    raise ValueError(f'Unknown garment {garment!r}; config.template.garment must be one of '
                     f'{GARMENTS}.')
  if offset <= 0 or edge_length <= 0:
    raise ValueError(f'offset ({offset}) and edge_length ({edge_length}) must be positive.')
  vertices = np.asarray(rest_vertices, np.float64)
  weights = np.asarray(skinning_weights, np.float64)
  if vertices.ndim != 2 or vertices.shape[1] != 3 or weights.shape[0] != len(vertices):
    raise ValueError(f'Body rest vertices [Vb, 3] and weights [Vb, K] disagree: '
                     f'{vertices.shape} and {weights.shape}.')
  floor, top = vertices[:, 1].min(), vertices[:, 1].max()
  body = _with_fitting_labels(_Body(vertices, np.asarray(faces, np.int64), _dominant_joints(weights, joint_names),
                                    float(top - floor), float(floor)))
  if garment in ('skirt', 'dress'):
    hip = _landmark(body, 'hip')
    knee = _landmark(body, 'knee')
    if garment == 'skirt':
      top_height, hem = _landmark(body, 'waist'), 0.5 * (hip + knee)
    else:
      top_height, hem = _landmark(body, 'chest'), knee
    mesh = _revolution_tube(body, top_height, hem, hip, offset, edge_length)
  else:
    mesh = _cut_garment(body, garment, offset, edge_length)
  oriented = orientation.orient_outward(mesh.vertices, mesh.faces, body.vertices, body.faces, 'body template')
  return TemplateMesh(np.asarray(mesh.vertices, np.float32), oriented.faces)
