"""Tests of garment templates (ngd_jax.geometry.templates) on a procedural capsule body."""

import functools

import numpy as np
import pytest
import skimage.measure
import trimesh

from ngd_jax.geometry import templates

# A 1.7 m T-pose body (y up, soles at 0) as a smooth union of capsules, each skinned to the joint
# that owns it in SMPL (the thigh to the hip joint, the shin to the knee, ...).
_JOINTS = ('pelvis', 'left_hip', 'right_hip', 'spine1', 'left_knee', 'right_knee', 'spine2',
           'left_ankle', 'right_ankle', 'spine3', 'neck', 'left_collar', 'right_collar', 'head',
           'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow')
_CAPSULES = [  # (joint, start, end, radius)
    ('pelvis', (0, 0.86, 0), (0, 0.98, 0), 0.14),
    ('spine1', (0, 0.98, 0), (0, 1.10, 0), 0.135),
    ('spine2', (0, 1.10, 0), (0, 1.22, 0), 0.14),
    ('spine3', (0, 1.22, 0), (0, 1.33, 0), 0.14),
    ('neck', (0, 1.33, 0), (0, 1.50, 0), 0.05),
    ('head', (0, 1.60, 0), (0, 1.60, 0), 0.10),
    ('left_collar', (0.0, 1.36, 0), (0.12, 1.38, 0), 0.06),
    ('right_collar', (0.0, 1.36, 0), (-0.12, 1.38, 0), 0.06),
    ('left_shoulder', (0.14, 1.38, 0), (0.44, 1.38, 0), 0.05),
    ('right_shoulder', (-0.14, 1.38, 0), (-0.44, 1.38, 0), 0.05),
    ('left_elbow', (0.44, 1.38, 0), (0.72, 1.38, 0), 0.04),
    ('right_elbow', (-0.44, 1.38, 0), (-0.72, 1.38, 0), 0.04),
    ('left_hip', (0.09, 0.86, 0), (0.10, 0.48, 0), 0.075),
    ('right_hip', (-0.09, 0.86, 0), (-0.10, 0.48, 0), 0.075),
    ('left_knee', (0.10, 0.48, 0), (0.10, 0.09, 0), 0.05),
    ('right_knee', (-0.10, 0.48, 0), (-0.10, 0.09, 0), 0.05),
    ('left_ankle', (0.10, 0.05, 0), (0.10, 0.05, 0.12), 0.045),
    ('right_ankle', (-0.10, 0.05, 0), (-0.10, 0.05, 0.12), 0.045),
]
_SMOOTH = 0.02  # Smooth-union radius (m).
# A-pose arms: forearms hanging beside the hips, hands at hip height.
_A_POSE_ARMS = {
    'left_shoulder': ((0.14, 1.38, 0), (0.30, 1.14, 0)),
    'right_shoulder': ((-0.14, 1.38, 0), (-0.30, 1.14, 0)),
    'left_elbow': ((0.30, 1.14, 0), (0.36, 0.86, 0)),
    'right_elbow': ((-0.30, 1.14, 0), (-0.36, 0.86, 0)),
}


def _capsules(pose):
  return [(joint, *_A_POSE_ARMS[joint], radius) if pose == 'A' and joint in _A_POSE_ARMS else
          (joint, start, end, radius) for joint, start, end, radius in _CAPSULES]


def _capsule_distances(points, pose='T'):
  """Signed distance of points [N, 3] to each capsule: [N, C]."""
  out = []
  for _, start, end, radius in _capsules(pose):
    a, b = np.array(start, float), np.array(end, float)
    ab = b - a
    t = np.clip((points - a) @ ab / max(ab @ ab, 1e-12), 0, 1)
    out.append(np.linalg.norm(points - (a + t[:, None] * ab), axis=1) - radius)
  return np.stack(out, axis=1)


def _body_sdf(points, pose='T'):
  """Smooth union (log-sum-exp) of the capsules: <= the hard union, a true inside test."""
  d = _capsule_distances(points, pose)
  return -_SMOOTH * np.log(np.sum(np.exp(-d / _SMOOTH), axis=1))


@functools.lru_cache(maxsize=2)
def _body(pose='T'):
  spacing = 0.012
  axes = [np.arange(-0.8, 0.8, spacing), np.arange(-0.02, 1.74, spacing),
          np.arange(-0.2, 0.25, spacing)]
  grid = np.stack(np.meshgrid(*axes, indexing='ij'), -1).reshape(-1, 3)
  field = _body_sdf(grid, pose).reshape([len(a) for a in axes])
  vertices, faces, _, _ = skimage.measure.marching_cubes(field, 0.0, spacing=(spacing,) * 3)
  vertices += np.array([a[0] for a in axes])
  mesh = trimesh.Trimesh(vertices, faces, process=True)
  if mesh.volume < 0:
    mesh.invert()
  assert mesh.is_watertight
  distances = _capsule_distances(np.asarray(mesh.vertices), pose)
  logits = -(distances / 0.02)**2
  weights = np.exp(logits - logits.max(axis=1, keepdims=True))
  weights /= weights.sum(axis=1, keepdims=True)
  columns = np.zeros((len(mesh.vertices), len(_JOINTS)))
  for c, (joint, *_) in enumerate(_CAPSULES):
    columns[:, _JOINTS.index(joint)] += weights[:, c]
  return np.asarray(mesh.vertices), np.asarray(mesh.faces), columns


def _edges_directed(faces):
  return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def _check_open_manifold(mesh, expected_boundaries):
  faces = mesh.faces
  directed = _edges_directed(faces)
  undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
  assert counts.max() <= 2, 'non-manifold edge'
  # Consistent orientation: no directed edge twice.
  assert len(np.unique(directed, axis=0)) == len(directed), 'inconsistent orientation'
  boundary = undirected[counts == 1]
  # Clean boundaries: every boundary vertex has exactly two boundary edges (no bow-ties).
  per_vertex = np.bincount(boundary.ravel(), minlength=len(mesh.vertices))
  assert set(np.unique(per_vertex[per_vertex > 0])) == {2}
  graph = trimesh.graph.connected_components(boundary, min_len=1)
  assert len(graph) == expected_boundaries, f'{len(graph)} boundary loops'
  assert len(trimesh.graph.connected_components(
      mesh.edges_unique, min_len=1, nodes=np.arange(len(mesh.vertices)))) == 1
  return boundary


def _check_outside_and_outward(mesh, offset, pose='T'):
  vertices = np.asarray(mesh.vertices, np.float64)
  corners = vertices[mesh.faces]
  samples = np.concatenate([vertices, corners.mean(axis=1)])
  # Outside the body: the smooth union is a lower bound of the distance to the capsules.
  assert _body_sdf(samples, pose).min() > 0.3 * offset
  # Outward: normals point up the body's distance field (finite-difference gradient).
  centres = corners.mean(axis=1)
  normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  step = 1e-3
  gradient = np.stack([(_body_sdf(centres + step * e, pose) - _body_sdf(centres - step * e, pose))
                       / (2 * step) for e in np.eye(3)], axis=1)
  outward = np.einsum('nd,nd->n', normals, gradient) > 0
  assert outward.mean() > 0.97, outward.mean()


@pytest.mark.parametrize('garment,boundaries', [('skirt', 2), ('dress', 2), ('tshirt', 4),
                                                ('trousers', 3)])
def test_body_template_is_open_manifold_outside_and_outward(garment, boundaries):
  vertices, faces, weights = _body()
  offset, edge = 0.02, 0.04
  mesh = templates.body_template(vertices, faces, weights, _JOINTS, garment, offset, edge)
  assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
  mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
  _check_open_manifold(mesh, boundaries)
  _check_outside_and_outward(mesh, offset)
  lengths = mesh.edges_unique_length
  assert 0.5 * edge < np.median(lengths) < 1.5 * edge, np.median(lengths)
  if garment == 'skirt':
    # Does not follow the legs: one hem loop (2 boundaries in all), around both legs: at the
    # angle of every leg vertex near the hem height, the hem is farther from the axis.
    hem = mesh.vertices[mesh.vertices[:, 1] < mesh.vertices[:, 1].min() + 1e-4]
    legs = vertices[np.abs(vertices[:, 1] - hem[0, 1]) < 0.01]
    hem_angle = np.arctan2(hem[:, 2], hem[:, 0])
    leg_angle = np.arctan2(legs[:, 2], legs[:, 0])
    nearest = np.argmin(np.abs(np.angle(np.exp(1j * (leg_angle[:, None] - hem_angle[None])))), 1)
    assert np.all(np.linalg.norm(hem[nearest][:, [0, 2]], axis=1) >
                  np.linalg.norm(legs[:, [0, 2]], axis=1))
    assert mesh.vertices[:, 1].max() < 1.1 and mesh.vertices[:, 1].min() > 0.48
  if garment == 'tshirt':
    assert np.abs(mesh.vertices[:, 0]).max() < 0.44  # Sleeves end on the upper arms.
    assert mesh.vertices[:, 1].max() < 1.55  # Neck opening below the head (centre 1.6).
  if garment == 'trousers':
    assert mesh.vertices[:, 1].min() > 0.08 and mesh.vertices[:, 1].max() < 1.1


@pytest.mark.parametrize('garment,boundaries', [('skirt', 2), ('tshirt', 4)])
def test_body_template_height_fallback_without_joint_names(garment, boundaries):
  vertices, faces, weights = _body()
  mesh = templates.body_template(vertices, faces, weights, None, garment, 0.02, 0.04)
  mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
  _check_open_manifold(mesh, boundaries)
  _check_outside_and_outward(mesh, 0.02)


def test_joint_names_of_another_joint_order_fall_back_to_height_fractions(caplog):
  """SMPL names on a body whose joints come in another order (capture's SMPL-layout Anny model) put
  the knee above the waist: the builder ignores the names instead of cutting an empty band."""
  vertices, faces, weights = _body()
  shuffled = _JOINTS[::-1]
  mesh = templates.body_template(vertices, faces, weights, shuffled, 'skirt', 0.02, 0.04)
  fallback = templates.body_template(vertices, faces, weights, None, 'skirt', 0.02, 0.04)
  np.testing.assert_array_equal(mesh.vertices, fallback.vertices)
  np.testing.assert_array_equal(mesh.faces, fallback.faces)
  assert 'out of order' in caplog.text


@pytest.mark.parametrize('joint_names', [_JOINTS, None])
def test_skirt_ignores_hands_hanging_by_the_hips(joint_names):
  vertices, faces, weights = _body('A')
  mesh = templates.body_template(vertices, faces, weights, joint_names, 'skirt', 0.02, 0.04)
  mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
  _check_open_manifold(mesh, 2)
  _check_outside_and_outward(mesh, 0.02, 'A')
  # Hips and thighs reach 0.175 m from the axis, the forearms 0.32-0.40 m: the skirt wraps the
  # hips and legs only.
  assert np.linalg.norm(mesh.vertices[:, [0, 2]], axis=1).max() < 0.26


def test_body_template_errors():
  # A body that is no standing human (a thin spike) has no surface between the cut heights.
  spike = np.array([[0, 0, 0], [0.3, 0, 0], [0, 1.7, 0], [0, 0, 0.3]], np.float64)
  spike_faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
  for garment in ('skirt', 'tshirt'):
    with pytest.raises(templates.orientation.TemplateError, match='no surface between the cut heights'):
      templates.body_template(spike, spike_faces, np.ones((4, 1)), None, garment, 0.02, 0.04)
  vertices, faces, weights = _body()
  with pytest.raises(ValueError, match='Unknown garment'):
    templates.body_template(vertices, faces, weights, _JOINTS, 'hat', 0.02, 0.04)
  with pytest.raises(ValueError, match='joint names'):
    templates.body_template(vertices, faces, weights, _JOINTS[:3], 'skirt', 0.02, 0.04)


def test_load_template_round_trip_and_errors(tmp_path):
  mesh = trimesh.creation.icosphere(1)
  path = tmp_path / 'template.obj'
  mesh.export(path)
  loaded = templates.load_template(path)
  np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-6)
  np.testing.assert_array_equal(loaded.faces, mesh.faces)
  assert loaded.faces.dtype == np.int32 and loaded.vertices.dtype == np.float32
  with pytest.raises(ValueError, match='missing.obj: template file not found'):
    templates.load_template(tmp_path / 'missing.obj')
  bad = tmp_path / 'degenerate.obj'
  bad.write_text('v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n')
  with pytest.raises(ValueError, match='degenerate.obj: 1 degenerate'):
    templates.load_template(bad)
  empty = tmp_path / 'empty.obj'
  empty.write_text('v 0 0 0\n')
  with pytest.raises(ValueError, match='empty.obj'):
    templates.load_template(empty)
