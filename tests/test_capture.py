"""Capture import (ngd_jax.data.capture): the synthetic tiny clip re-expressed in the file layouts
of 4DHumans/PHALP, SAM, SCHP, Sapiens and a plain per-frame format imports to a valid sequence that
matches the generator's; each refused input gives one message naming the file and the fix."""

import importlib
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
import trimesh

from ngd_jax import body as body_lib
from ngd_jax import configuration
from ngd_jax import data
from ngd_jax.data import capture
from ngd_jax.data import importing
from tests import capture_fixtures

OPENGL = np.diag([1.0, -1.0, -1.0])  # x right, y up, z towards the viewer.
BODY_TOLERANCE = 2e-4  # m: float32 SMPL forward vs the generator's LBS.


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
  return capture_fixtures.Clip(tmp_path_factory.mktemp('capture'))


def _inputs(clip, tmp, **overrides):
  fields = {'masks': capture.MaskSource(clip.write_binary_masks(tmp / 'sam'))}
  fields.update(overrides)
  return capture.Inputs(**fields)


def _phalp(clip, tmp, **kwargs):
  frames = capture.open_frames(clip.frames_dir())
  return frames, capture.read_phalp(clip.write_phalp(tmp / 'demo_clip.pkl', **kwargs), frames,
                                    focal=clip.phalp_focal())


def test_phalp_video_import_matches_the_generator(clip, tmp_path):
  """4DHumans pickle + mp4 + SAM masks + OpenGL-axes normals + disparity + hand masks."""
  video = capture.open_video(clip.video())
  assert video.names == tuple(clip.names) and video.size == clip.size
  track = capture.read_phalp(clip.write_phalp(tmp_path / 'demo_clip.pkl'), video, focal=clip.phalp_focal())
  inputs = _inputs(clip, tmp_path, hands=capture.MaskSource(clip.write_binary_masks(tmp_path / 'hands', 'hands')),
                   normals=str(clip.write_normals(tmp_path / 'sapiens', OPENGL)),
                   depth=str(clip.write_disparity(tmp_path / 'midas')))
  report = capture.convert(video, track, inputs, str(clip.model), tmp_path / 'seq', 'lower',
                           template=str(clip.seq.template_path))
  assert data.validate_sequence(tmp_path / 'seq') == []
  seq = data.read_sequence(tmp_path / 'seq')
  assert report.normal_axes == 'x,-y,-z' and report.normal_agreement >= capture.MIN_NORMAL_AGREEMENT
  assert report.normal_encoding == 'signed' and 'decoded as signed (auto: 000000.npy has negative' in seq.source
  assert report.normal_agreement - report.normal_runner_up >= capture.MIN_NORMAL_MARGIN
  assert report.depth_kind == 'disparity' and report.depth_rank <= -capture.MIN_DEPTH_RANK
  np.testing.assert_allclose(seq.K[0], clip.camera.K, atol=1e-4)
  np.testing.assert_allclose(seq.world_to_camera[0], np.eye(4), atol=0)
  assert seq.fps == pytest.approx(clip.seq.fps, rel=1e-3)
  for t in range(seq.num_frames):
    np.testing.assert_allclose(capture_fixtures.posed_in_camera(seq, t),
                               capture_fixtures.posed_in_camera(clip.seq, t), atol=BODY_TOLERANCE)
    frame, original = seq.load_frame(t), clip.seq.load_frame(t)
    np.testing.assert_array_equal(frame.mask, original.mask)
    np.testing.assert_array_equal(frame.hands, original.hands)
    inside = original.mask > 0
    np.testing.assert_allclose(frame.normal[inside], original.normal[inside], atol=1e-5)
    # Depth from disparity: the order (larger = farther) is what the loss uses.
    d, d0 = frame.depth[inside], original.depth[inside]
    assert np.all(np.sign(d[:, None] - d[None]) == np.sign(d0[:, None] - d0[None]))
    assert np.abs(frame.rgb - original.rgb).mean() < 0.05  # H.264 at quality 10.
  assert 'mean of 4 per-frame betas' in seq.source and 'x,-y,-z' in seq.source


def test_param_folder_and_label_maps(clip, tmp_path):
  """Plain per-frame .json params + image folder + SCHP label maps (garment and hands by name)."""
  frames = capture.open_frames(clip.frames_dir())
  track = capture.read_param_folder(clip.write_param_folder(tmp_path / 'fits', '.json'), frames.names)
  labels = clip.write_label_maps(tmp_path / 'schp')
  inputs = capture.Inputs(masks=capture.MaskSource(labels, capture.parse_labels('skirt', 'lip', '--mask_labels')),
                          hands_from_masks=capture.parse_labels('glove', 'lip', '--hand_labels'),
                          normals=str(clip.write_normals(tmp_path / 'normals')))
  report = capture.convert(frames, track, inputs, str(clip.model), tmp_path / 'seq', 'lower',
                           template=str(clip.seq.template_path))
  seq = data.read_sequence(tmp_path / 'seq')
  assert data.validate_sequence(tmp_path / 'seq') == []
  assert report.normal_axes == 'x,y,z'
  assert report.min_overlap >= capture.MIN_BODY_IN_PERSON  # Measured on the person (label > 0).
  np.testing.assert_allclose(seq.world_to_camera[0], clip.camera.world_to_camera, atol=1e-6)
  for t in range(seq.num_frames):
    np.testing.assert_allclose(seq.body.posed_vertices[t], clip.seq.body.posed_vertices[t], atol=BODY_TOLERANCE)
    frame = seq.load_frame(t)
    np.testing.assert_array_equal(frame.mask > 0, clip.garment_mask(t))
    np.testing.assert_array_equal(frame.hands > 0, clip.hands_mask(t))
    np.testing.assert_array_equal(frame.rgb, clip.seq.load_frame(t).rgb)


def test_npz_params_resolution_and_stride(clip, tmp_path):
  """.npz params, a smaller output resolution, frame stride."""
  frames = capture.open_frames(clip.frames_dir())
  track = capture.read_param_folder(clip.write_param_folder(tmp_path / 'fits'), frames.names)
  capture.convert(frames, track, _inputs(clip, tmp_path, resolution=48), str(clip.model), tmp_path / 'seq',
                  'lower', stride=2, template=str(clip.seq.template_path), fps=clip.seq.fps)
  seq = data.read_sequence(tmp_path / 'seq')
  assert data.validate_sequence(tmp_path / 'seq') == []
  assert seq.frames == ('000000', '000001') and seq.image_size == (48, 48)
  np.testing.assert_allclose(seq.K[0], data.scale_camera(clip.camera, clip.size, (48, 48)).K, atol=1e-5)
  assert seq.fps == pytest.approx(clip.seq.fps / 2)
  np.testing.assert_allclose(seq.body.posed_vertices[1], clip.seq.body.posed_vertices[2], atol=BODY_TOLERANCE)


def test_template_built_from_the_body(clip):
  """The generator's body (with its own joint names, which the builder's landmarks need; the SMPL-
  layout fixture model would carry SMPL's names on Anny's joints) gives a valid skirt template."""
  vertices, faces = capture.build_template(clip.seq.body, 'skirt')
  assert faces.shape[1] == 3 and len(faces) > 100 and np.all(np.isfinite(vertices))
  rest = np.asarray(clip.seq.body.rest_vertices)
  assert rest[:, 1].min() < vertices[:, 1].min() < vertices[:, 1].max() < rest[:, 1].max()


def test_template_built_from_an_smpl_layout_body(clip, tmp_path):
  """No --template: the skirt is built around the SMPL-layout fixture body (SMPL joint names on a
  body of another joint order: the builder falls back to height fractions) and lies inside its height."""
  frames, track = _phalp(clip, tmp_path)
  capture.convert(frames, track, _inputs(clip, tmp_path), str(clip.model), tmp_path / 'seq', 'lower')
  seq = data.read_sequence(tmp_path / 'seq')
  assert 'template: built from the body, skirt' in seq.source
  template = trimesh.load(seq.template_path, force='mesh', process=False)
  rest = np.asarray(seq.body.rest_vertices)
  assert len(template.faces) > 100
  assert rest[:, 1].min() < template.vertices[:, 1].min() < template.vertices[:, 1].max() < rest[:, 1].max()


def test_a_body_no_template_fits_is_refused_naming_template():
  """A body around which no template fits (a thin spike): one message naming --template."""
  spike = body_lib.BodyData(
      rest_vertices=np.array([[0, 0, 0], [0.3, 0, 0], [0, 1.7, 0], [0, 0, 0.3]], np.float32),
      faces=np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32),
      skinning_weights=np.ones((4, 1), np.float32), transforms=np.tile(np.eye(4, dtype=np.float32), (1, 1, 1, 1)),
      pose=np.zeros((1, 3), np.float32))
  message = _refusal(capture.build_template, spike, 'skirt')
  assert message.startswith('--template_garment: no skirt template') and '--template=PATH' in message


def _refusal(fn, *args, **kwargs) -> str:
  with pytest.raises(capture.CaptureError) as e:
    fn(*args, **kwargs)
  return str(e.value)


def test_several_people_need_a_person_id(clip, tmp_path):
  frames = capture.open_frames(clip.frames_dir())
  pkl = clip.write_phalp(tmp_path / 'demo_clip.pkl', others={7: np.array([0.8, 0.0, 0.0])})
  message = _refusal(capture.read_phalp, pkl, frames)
  assert str(pkl) in message and '2 people' in message and '--person_id' in message
  message = _refusal(capture.read_phalp, pkl, frames, person_id=3)
  assert 'no person with track id 3' in message and '1 (4 frames), 7 (4 frames)' in message
  one, seven = (capture.read_phalp(pkl, frames, person_id=i) for i in (1, 7))
  for t in range(len(clip.names)):  # Each id gives its own person's fit in every frame.
    orient, transl = clip.camera_frame_params(t)
    np.testing.assert_allclose(Rotation.from_rotvec(one.poses[t][:3]).as_matrix(), orient, atol=1e-5)
    np.testing.assert_allclose(one.poses[t][3:], clip.poses[t, 3:], atol=1e-4)
    np.testing.assert_allclose(one.transl[t], transl, atol=1e-5)
    np.testing.assert_allclose(seven.transl[t] - one.transl[t], [0.8, 0.0, 0.0], atol=1e-5)


def test_wrong_person_fails_the_body_check(clip, tmp_path):
  """Person 7 stands 0.8 m to the side: its body misses the masks; the failing frames are listed."""
  frames = capture.open_frames(clip.frames_dir())
  pkl = clip.write_phalp(tmp_path / 'demo_clip.pkl', others={7: np.array([0.8, 0.0, 0.0])})
  track = capture.read_phalp(pkl, frames, person_id=7, focal=clip.phalp_focal())
  message = _refusal(capture.convert, frames, track, _inputs(clip, tmp_path), str(clip.model), tmp_path / 'seq',
                     'lower', template=str(clip.seq.template_path))
  assert str(pkl) in message and 'in 4 of 4 frames' in message and '000000 (0.' in message
  assert '--person_id' in message and not (tmp_path / 'seq').exists()


def test_frames_missing(clip, tmp_path):
  frames, track = _phalp(clip, tmp_path, absent=(1, 2))
  message = _refusal(capture.convert, frames, track, _inputs(clip, tmp_path), str(clip.model), tmp_path / 'seq',
                     'lower')
  assert 'demo_clip.pkl' in message and 'no body fit for 2 of 4 frames' in message and '000001, 000002' in message
  masks = clip.write_binary_masks(tmp_path / 'sparse')
  (masks / '000003.png').unlink()
  (tmp_path / 'other').mkdir()
  frames, track = _phalp(clip, tmp_path / 'other')
  message = _refusal(capture.convert, frames, track, capture.Inputs(capture.MaskSource(masks)), str(clip.model),
                     tmp_path / 'seq', 'lower')
  assert str(masks) in message and 'frames missing: 000003' in message


def test_masks_of_another_size(clip, tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  masks = clip.write_binary_masks(tmp_path / 'sam')
  Image.open(masks / '000002.png').resize((32, 32)).save(masks / '000002.png')
  frames, track = _phalp(clip, tmp_path)
  message = _refusal(capture.convert, frames, track, capture.Inputs(capture.MaskSource(masks)), str(clip.model),
                     tmp_path / 'seq', 'lower')
  assert str(masks / '000002.png') in message and 'mask is 32x32 but the frame is 64x64' in message


def test_label_maps_without_labels(clip, tmp_path):
  frames, track = _phalp(clip, tmp_path)
  labels = clip.write_label_maps(tmp_path / 'schp')
  message = _refusal(capture.convert, frames, track, capture.Inputs(capture.MaskSource(labels)), str(clip.model),
                     tmp_path / 'seq', 'lower')
  assert str(labels / '000000.png') in message and '--mask_labels' in message
  assert 'unknown label' in _refusal(capture.parse_labels, 'cape', 'lip', '--mask_labels')


def test_normals_in_a_rotated_convention_are_detected(clip, tmp_path):
  """An estimator whose axes are permuted (y, z, x) and mirrored: found and undone."""
  axes = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
  frames, track = _phalp(clip, tmp_path)
  inputs = _inputs(clip, tmp_path, normals=str(clip.write_normals(tmp_path / 'normals', axes)))
  report = capture.convert(frames, track, inputs, str(clip.model), tmp_path / 'seq', 'lower',
                           template=str(clip.seq.template_path))
  seq = data.read_sequence(tmp_path / 'seq')
  inside = clip.garment_mask(0)
  np.testing.assert_allclose(seq.load_frame(0).normal[inside], clip.seq.load_frame(0).normal[inside], atol=1e-5)
  assert report.normal_axes == 'z,x,-y'


def test_normals_that_match_nothing_are_refused(clip, tmp_path):
  folder = tmp_path / 'noise'
  folder.mkdir()
  rng = np.random.default_rng(0)
  for name in clip.names:
    n = rng.normal(size=clip.size + (3,))
    np.save(folder / f'{name}.npy', np.float32(n / np.linalg.norm(n, axis=-1, keepdims=True)))
  frames, track = _phalp(clip, tmp_path)
  message = _refusal(capture.convert, frames, track, _inputs(clip, tmp_path, normals=str(folder)), str(clip.model),
                     tmp_path / 'seq', 'lower')
  assert str(folder) in message and 'under no axis convention' in message and not (tmp_path / 'seq').exists()


@pytest.mark.parametrize('encoding', ['unsigned', 'png8'])
def test_normals_in_0_1_and_8_bit_are_decoded(clip, tmp_path, encoding):
  """[0, 1] .npy and 8-bit PNG maps (OpenGL axes): decoded as such, said so in sequence.json."""
  frames, track = _phalp(clip, tmp_path)
  inputs = _inputs(clip, tmp_path, normals=str(clip.write_normals(tmp_path / 'normals', OPENGL, encoding)))
  report = capture.convert(frames, track, inputs, str(clip.model), tmp_path / 'seq', 'lower',
                           template=str(clip.seq.template_path))
  seq = data.read_sequence(tmp_path / 'seq')
  assert report.normal_encoding == encoding and report.normal_axes == 'x,-y,-z'
  assert f'decoded as {encoding} (auto: 000000.' in seq.source
  tolerance = 1e-5 if encoding == 'unsigned' else 0.01  # 8 bits: 1/255 per component, then renormalised.
  for t in range(seq.num_frames):
    inside = clip.garment_mask(t)
    np.testing.assert_allclose(seq.load_frame(t).normal[inside], clip.seq.load_frame(t).normal[inside],
                               atol=tolerance)


def _estimate_refusal(clip, tmp_path, normals, encoding='auto') -> str:
  frames, track = _phalp(clip, tmp_path)
  with pytest.raises(importing.InputError) as e:
    capture.convert(frames, track, _inputs(clip, tmp_path, normals=str(normals), normals_encoding=encoding),
                    str(clip.model), tmp_path / 'seq', 'lower', template=str(clip.seq.template_path))
  assert not (tmp_path / 'seq').exists() and not list(tmp_path.glob('.seq.*'))
  return str(e.value)


def test_normals_decoded_wrongly_are_refused(clip, tmp_path):
  """[0, 1] maps read as [-1, 1] are not unit vectors; 8-bit values in a float .npy read as [0, 1]
  (auto: no negative value) leave [-1, 1]. Both name the file and --normals_encoding."""
  folder = clip.write_normals(tmp_path / 'normals', OPENGL, 'unsigned')
  message = _estimate_refusal(clip, tmp_path, folder, 'signed')
  assert str(folder / '000000.npy') in message and 'decoded as signed' in message and 'unit length' in message
  assert '--normals_encoding=' in message
  for path in folder.iterdir():
    np.save(path, np.load(path) * 255.0)
  (tmp_path / 'again').mkdir()
  message = _estimate_refusal(clip, tmp_path / 'again', folder)
  assert 'decoded as unsigned' in message and 'outside [-1, 1]' in message and '--normals_encoding=' in message


@pytest.mark.parametrize('axis', ['x', 'z'])
def test_rotated_normals_are_refused(clip, tmp_path, axis):
  """Maps in axes rotated by 45 degrees (world or object space) match no axis convention well enough."""
  rotation = Rotation.from_euler(axis, 45.0, degrees=True).as_matrix()
  folder = clip.write_normals(tmp_path / 'normals', rotation)
  message = _estimate_refusal(clip, tmp_path, folder)
  assert str(folder) in message and 'rotated by' in message and f'need <= {capture.MAX_NORMAL_ROTATION:.0f}' in message


def test_normals_without_a_clear_convention_are_refused(clip, tmp_path):
  """Unit normals with the y axis lost: y and -y score alike, so the convention is uncertain."""
  folder = clip.write_normals(tmp_path / 'normals')
  for path in folder.iterdir():
    n = np.load(path) * np.float32([1.0, 0.0, 1.0])
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    np.save(path, np.where(length > 0, n / np.maximum(length, 1e-6), 0.0).astype(np.float32))
  message = _estimate_refusal(clip, tmp_path, folder)
  assert str(folder) in message and 'two axis conventions almost equally' in message


def test_depth_that_matches_nothing_is_refused(clip, tmp_path):
  folder = tmp_path / 'noise'
  folder.mkdir()
  rng = np.random.default_rng(1)
  for name in clip.names:
    np.save(folder / f'{name}.npy', np.float32(rng.uniform(1, 2, clip.size)))
  frames, track = _phalp(clip, tmp_path)
  message = _refusal(capture.convert, frames, track, _inputs(clip, tmp_path, depth=str(folder)), str(clip.model),
                     tmp_path / 'seq', 'lower')
  assert str(folder) in message and 'rank correlation' in message


def test_tracker_ran_on_another_clip(clip, tmp_path):
  pkl = clip.write_phalp(tmp_path / 'demo_clip.pkl')
  other = capture.Clip(pathlib.Path('other.mp4'), tuple(clip.names), (720, 1280), 30.0, True)
  message = _refusal(capture.read_phalp, pkl, other)
  assert str(pkl) in message and '64x64' in message and '720x1280' in message


def test_not_a_tracking_file(clip, tmp_path):
  frames = capture.open_frames(clip.frames_dir())
  path = tmp_path / 'x.pkl'
  path.write_bytes(b'not a pickle')
  assert str(path) in _refusal(capture.read_phalp, path, frames)
  assert 'no such tracking file' in _refusal(capture.read_phalp, tmp_path / 'nothing.pkl', frames)


def test_phalp_camera_convention():
  """A point on the optical axis lands on the centre of the (unpadded) frame; f scales with the side."""
  camera = capture.phalp_camera((720, 1280))
  assert camera.K[0, 0] == pytest.approx(5000.0 * 1280 / 256)
  assert (camera.K[0, 2], camera.K[1, 2]) == pytest.approx((639.5, 359.5))
  assert len(capture.signed_permutations()) == 48
  assert capture.describe_axes(np.eye(3)) == 'x,y,z'


def test_command_line(clip, tmp_path):
  """The flags reach convert(): PHALP pickle, image folder, SCHP label maps named by --label_set."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  values = flags.FlagValues()
  capture.define_flags(values)
  values([
      'capture', f'--frames={clip.frames_dir()}', f'--smpl={clip.write_phalp(tmp_path / "demo_clip.pkl")}',
      f'--phalp_focal={clip.phalp_focal()}', f'--masks={clip.write_label_maps(tmp_path / "schp")}',
      '--mask_labels=skirt', '--hand_labels=3', f'--smpl_model={clip.model}', '--garment=lower',
      f'--template={clip.seq.template_path}', f'--out={tmp_path / "seq"}', f'--fps={clip.seq.fps}'])
  capture.convert_from_flags(values)
  seq = data.read_sequence(tmp_path / 'seq')
  assert seq.channels == frozenset({'hands'}) and seq.fps == pytest.approx(clip.seq.fps)
  with pytest.raises(data.SequenceError, match='--overwrite'):
    capture.convert_from_flags(values)
  # --overwrite: a failing import keeps the sequence there; a successful one replaces it.
  values.overwrite, values.normals = True, str(clip.write_normals(tmp_path / 'normals', encoding='unsigned'))
  values.normals_encoding = 'signed'
  with pytest.raises(importing.InputError, match='unit length'):
    capture.convert_from_flags(values)
  assert data.read_sequence(tmp_path / 'seq').channels == frozenset({'hands'})
  values.normals_encoding = 'unsigned'
  capture.convert_from_flags(values)
  assert data.read_sequence(tmp_path / 'seq').channels == frozenset({'hands', 'normal'})
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.')) == []
  values.video = str(clip.video())
  assert '--video' in _refusal(capture.convert_from_flags, values)


def test_program_refuses_in_one_line_with_status_2(clip, tmp_path):
  """python -m ngd_jax.data.capture: a refused input is one line on stderr and exit status 2."""
  normals = clip.write_normals(tmp_path / 'normals', encoding='unsigned')
  args = [f'--frames={clip.frames_dir()}', f'--smpl={clip.write_phalp(tmp_path / "demo_clip.pkl")}',
          f'--phalp_focal={clip.phalp_focal()}', f'--masks={clip.write_binary_masks(tmp_path / "sam")}',
          f'--smpl_model={clip.model}', '--garment=lower', f'--template={clip.seq.template_path}',
          f'--out={tmp_path / "seq"}', f'--normals={normals}', '--normals_encoding=signed']
  result = subprocess.run([sys.executable, '-m', 'ngd_jax.data.capture', *args], capture_output=True, text=True,
                          check=False, timeout=600)
  assert result.returncode == 2, result.stderr
  lines = [line for line in result.stderr.splitlines() if line.startswith('capture: error:')]
  assert len(lines) == 1 and 'unit length' in lines[0] and 'Traceback' not in result.stderr


def test_capture_config_needs_the_sequence_and_is_cpu_sized(tmp_path):
  """configs/capture.py (README "Your own clip"): valid once data.path names the imported folder."""
  config = importlib.import_module('configs.capture').get_config()
  with pytest.raises(configuration.ConfigError, match='config.data.path'):
    configuration.validate(config)
  config.data.path = str(tmp_path)
  configuration.validate(config)
  assert config.template.source == 'sequence' and config.data.synthetic_preset == ''
  assert config.data.resolution <= 512 and config.geometry.hash_log2_table_size <= 14
  assert config.train.warmup_epochs < min(config.remesh.epochs) < config.train.num_epochs
