"""Degraded and re-templated sequences (ngd_jax/data/degrade.py) and their cache (synthetic.DERIVED)."""

import filecmp
import types

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import transform
import trimesh

from configs import demo
from ngd_jax import body as body_lib
from ngd_jax import pipeline
from ngd_jax.body import anny
from ngd_jax.data import degrade
from ngd_jax.data import read_sequence
from ngd_jax.data import synthetic

CROSS = ndimage.generate_binary_structure(2, 1)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  """The tiny preset and every DERIVED sequence made from it (as from the long skirt), through the cache."""
  root = tmp_path_factory.mktemp('degrade')
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(synthetic.PRESETS, 'long_skirt', synthetic.PRESETS['tiny'])
    for name in synthetic.DERIVED:
      synthetic.ensure_sequence(name, 0, root)
  return root


def _angles(a, b):
  return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1.0, 1.0)))


def _same_files(a, b, folder):
  files = sorted(p.relative_to(a) for p in (a / folder).rglob('*') if p.is_file())
  assert files and files == sorted(p.relative_to(b) for p in (b / folder).rglob('*') if p.is_file())
  return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def test_blurred_and_tilted_normals_are_unit_and_within_the_tilt():
  rng = np.random.default_rng(0)
  normal = degrade._unit(rng.normal(size=(2, 40, 40, 3)) + [0.0, 0.0, -2.0])
  mask = np.zeros((40, 40), bool)
  mask[8:30, 10:32] = True
  blurred = np.stack([degrade.blur_normals(n, mask, 1.5) for n in normal])
  ring = ndimage.binary_dilation(mask, CROSS)
  np.testing.assert_allclose(np.linalg.norm(blurred[:, ring], axis=-1), 1.0, atol=1e-9)
  field = degrade.rotation_field((2, 40, 40), 12.0, rng, 5.0, 2.0)
  tilted = degrade.rotate(blurred, field)
  angles = _angles(tilted[:, ring], blurred[:, ring])
  np.testing.assert_allclose(np.linalg.norm(tilted[:, ring], axis=-1), 1.0, atol=1e-9)
  assert angles.max() <= 12.0 + 1e-6 and np.degrees(np.linalg.norm(field, axis=-1)).max() == pytest.approx(12.0)
  # Smooth: neighbouring pixels' rotations differ by a small share of the largest.
  assert np.degrees(np.linalg.norm(np.diff(field, axis=2), axis=-1)).max() < 2.0


def test_masks_differ_by_exactly_their_one_pixel_ring():
  rng = np.random.default_rng(1)
  yy, xx = np.mgrid[:48, :48]
  masks = np.stack([(yy - 24) ** 2 + (xx - 20 - k) ** 2 < 150 for k in range(12)])
  jittered, grown = degrade.jitter_masks(masks, rng)
  assert grown.any() and (~grown).any()
  for old, new, g in zip(masks, jittered, grown):
    ring = ndimage.binary_dilation(old, CROSS) & ~old if g else old & ~ndimage.binary_erosion(old, CROSS)
    assert ring.any()
    np.testing.assert_array_equal(new ^ old, ring)


def test_estimator_inputs(cache):
  base, estimated = cache / 'long_skirt-seed0', cache / 'long_estimated-seed0'
  seq, clean = read_sequence(estimated), read_sequence(base)
  assert 'depth' not in seq.channels and not (estimated / 'depth').exists()
  assert _same_files(base, estimated, 'rgb') and _same_files(base, estimated, 'gt')
  for i in range(seq.num_frames):
    frame, before = seq.load_frame(i), clean.load_frame(i)
    mask, old = frame.mask > 0.5, before.mask > 0.5
    assert (np.array_equal(mask, ndimage.binary_dilation(old, CROSS)) or
            np.array_equal(mask, ndimage.binary_erosion(old, CROSS)))
    np.testing.assert_allclose(np.linalg.norm(frame.normal[mask], axis=-1), 1.0, atol=1e-5)
    assert np.all(frame.normal[~mask] == 0)
    angles = _angles(frame.normal[mask & old], before.normal[mask & old])
    assert 0.5 < np.median(angles) < 12.0


def test_estimator_depth_is_relative_bent_and_changes_nothing_else(cache):
  """Depth known where it was, in [0, 1] up to the error, ordered like the true depth but not an affine map of it."""
  base, estimated = cache / 'long_skirt-seed0', cache / 'long_estimated_depth-seed0'
  for folder in ('rgb', 'gt', 'mask', 'normal', 'hands'):
    assert _same_files(base, estimated, folder), folder
  seq, clean = read_sequence(estimated), read_sequence(base)
  residuals = []
  for i in range(seq.num_frames):
    depth, true = seq.load_frame(i).depth, clean.load_frame(i).depth
    known = np.isfinite(true)
    np.testing.assert_array_equal(np.isfinite(depth), known)
    ours, theirs = depth[known], true[known]
    assert -0.05 - 1e-6 <= ours.min() and ours.max() <= 1.05 + 1e-6
    ranks = [np.argsort(np.argsort(v)) for v in (ours, theirs)]
    assert np.corrcoef(*ranks)[0, 1] > 0.8  # Ordered alike (Spearman).
    affine = np.polyval(np.polyfit(theirs, ours, 1), theirs)
    residuals.append(np.sqrt(np.mean((ours - affine) ** 2)))
  assert max(residuals) > 0.01  # Not the true depth rescaled.


def test_tracked_body_stays_within_its_bounds_and_changes_nothing_else(cache):
  base, tracked = cache / 'long_skirt-seed0', cache / 'long_tracked-seed0'
  noise = degrade.TrackerNoise()
  for folder in ('rgb', 'gt', 'mask', 'normal', 'depth', 'hands'):
    assert _same_files(base, tracked, folder), folder
  assert filecmp.cmp(base / 'template.obj', tracked / 'template.obj', shallow=False)
  true, ours = (read_sequence(p).body for p in (base, tracked))
  frames, joints = true.num_frames, anny.load_anny().joints
  local = [transform.Rotation.from_rotvec(b.pose.reshape(-1, 3).astype(np.float64)) for b in (true, ours)]
  change = np.degrees((local[0].inv() * local[1]).magnitude()).reshape(frames, -1)
  assert change[:, 1:].max() <= noise.joint_drift + noise.joint_jitter + 1e-3 and change[:, 1:].mean() > 0.3
  assert 0.3 < change[:, 0].max() <= noise.global_drift + noise.global_jitter + 1e-3
  shift = degrade.root_translation(ours, joints) - degrade.root_translation(true, joints)
  depth_axis = read_sequence(base).world_to_camera[0, 2, :3]
  along = shift @ depth_axis
  across = np.linalg.norm(shift - along[:, None] * depth_axis, axis=-1)
  assert 0.005 < np.abs(along).max() <= noise.depth_drift + noise.depth_jitter + 1e-5
  assert across.max() <= noise.lateral_drift + noise.lateral_jitter + 1e-5
  # The transforms, pose and body meshes agree with each other (one forward kinematics, one LBS).
  posed = body_lib.lbs_frames(jnp.asarray(ours.rest_vertices), jnp.asarray(ours.skinning_weights),
                              jnp.asarray(ours.transforms))
  np.testing.assert_allclose(ours.posed_vertices, posed, atol=1e-5)
  np.testing.assert_allclose(ours.transforms, anny.forward_kinematics(
      joints, ours.parents, ours.pose.reshape(frames, -1, 3), degrade.root_translation(ours, joints)), atol=1e-5)


def test_zero_tracker_noise_gives_the_body_back(cache):
  true = read_sequence(cache / 'long_skirt-seed0').body
  zero = degrade.TrackerNoise(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
  same = degrade.tracked_body(true, anny.load_anny().joints, np.array([0.0, 0.0, -1.0]), np.random.default_rng(0),
                              zero)
  np.testing.assert_allclose(same.transforms, true.transforms, atol=1e-5)
  np.testing.assert_allclose(same.posed_vertices, true.posed_vertices, atol=1e-5)


def test_first_frame_template_reskinned_by_the_pipeline_gives_frame_zero(cache):
  seq = read_sequence(cache / 'long_first_frame-seed0')
  template = trimesh.load(seq.template_path, process=False)
  truth = seq.gt_mesh(0)
  np.testing.assert_array_equal(template.faces, truth.faces)
  config = demo.get_config()
  config.skinning.contact_distance = -1.0  # The paper's rule, which degrade.first_frame_template inverts.
  inputs = types.SimpleNamespace(sequence=seq)
  weights = pipeline.skinning_weights(template.vertices, np.asarray(template.faces), inputs, config)
  posed = np.asarray(body_lib.lbs(jnp.asarray(template.vertices, jnp.float32), jnp.asarray(weights),
                                  jnp.asarray(seq.body.transforms[0])))
  assert np.linalg.norm(posed - truth.vertices, axis=-1).max() < 1e-3
  # Not the rest shape the cloth was simulated from: the first frame has already moved.
  rest = trimesh.load(cache / 'long_skirt-seed0' / 'gt' / synthetic.REST_GARMENT, process=False)
  assert np.linalg.norm(template.vertices - rest.vertices, axis=-1).mean() > 1e-3
