"""views.py: the orbited side camera, the silhouette overlay's colours, and the panels of a frame."""

import numpy as np

from ngd_jax import data
from ngd_jax import views
from tests.train_fixtures import fresh_trained
from tests.train_fixtures import sequence_path  # pylint: disable=unused-import  (module fixture)
from tests.train_fixtures import tiny_config


def camera_centre(camera: data.Camera) -> np.ndarray:
  world_to_camera = np.asarray(camera.world_to_camera, np.float64)
  return -world_to_camera[:3, :3].T @ world_to_camera[:3, 3]


def test_turned_camera_orbits_the_centre_and_keeps_looking_at_it():
  # At (0, 1, 3), looking down -z, y down.
  look = np.array([[1, 0, 0, 0], [0, -1, 0, 1], [0, 0, -1, 3], [0, 0, 0, 1]], np.float64)
  camera = data.Camera(np.eye(3, dtype=np.float32), look.astype(np.float32))
  centre = np.array([0.0, 0.5, 0.0])
  turned = views.turned_camera(camera, centre, 90.0)
  eye = camera_centre(turned)
  np.testing.assert_allclose(eye, [3.0, 1.0, 0.0], atol=1e-6)  # A quarter turn about +y (up: the camera's -y).
  forward = np.asarray(turned.world_to_camera, np.float64)[2, :3]
  np.testing.assert_allclose(forward, [-1.0, 0.0, 0.0], atol=1e-6)  # Still facing the vertical axis through centre.
  np.testing.assert_allclose(views.turned_camera(camera, centre, 360.0).world_to_camera, camera.world_to_camera,
                             atol=1e-6)


def test_silhouette_overlay_colours():
  mine, truth = np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 1.0, 0.0]])
  np.testing.assert_array_equal(views.silhouette_overlay(mine, truth)[0],
                                [[1, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]])  # Yellow, red, green, white.


def test_frame_panels_show_every_view_at_the_training_size(sequence_path):
  """Input | render | error, then held-out image | render per held-out camera, then the side views and
  silhouettes: one label each, every panel [H, W, 3] of the run's resolution."""
  trained = fresh_trained(tiny_config(sequence_path))
  seq = trained.run.inputs.sequence
  panels, labels = views.frame_panels(trained, 1, views.preview_frame(trained, 1), 'frame 1')
  assert len(panels) == len(labels) == 3 + 2 * len(seq.eval_cameras) + 3
  assert labels[-3:] == ['side: reconstruction', 'side: ground truth', 'red ours, green truth']
  for panel in panels:
    assert np.shape(panel) == trained.run.bank.resolution + (3,)
  side, truth, overlay = panels[-3:]
  assert (overlay == [1, 1, 0]).all(axis=-1).any()  # The untrained garment overlaps the truth.
  assert (side < 1).any() and (truth < 1).any()  # Both drawn over the white background.
