"""Atomic writes: a reader sees the old file or the new one, never a partial one."""

import os
import stat

import pytest

from ngd_jax import files


def test_atomic_writes_leave_old_file_or_new_file(tmp_path):
  path = tmp_path / 'mesh.obj'
  path.write_text('old')
  with pytest.raises(KeyboardInterrupt):
    with files.atomic_path(path) as tmp:
      tmp.write_text('half a fi')
      raise KeyboardInterrupt  # A kill in the middle of the write.
  assert path.read_text() == 'old'
  assert [p.name for p in tmp_path.iterdir()] == ['mesh.obj']
  with files.atomic_path(path) as tmp:
    tmp.write_text('new')
    assert path.read_text() == 'old'
  assert path.read_text() == 'new'
  assert [p.name for p in tmp_path.iterdir()] == ['mesh.obj']


def test_write_json_and_atomic_write(tmp_path):
  files.write_json(tmp_path / 'a' / 'm.json', {'x': [1, 2]})
  assert (tmp_path / 'a' / 'm.json').read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}'

  def fail_halfway(f):
    f.write(b'{"partial')
    raise OSError(28, 'No space left on device')

  with pytest.raises(OSError):
    files.atomic_write(tmp_path / 'a' / 'm.json', fail_halfway)
  assert (tmp_path / 'a' / 'm.json').read_text().startswith('{\n  "x"')
  assert [p.name for p in (tmp_path / 'a').iterdir()] == ['m.json']


@pytest.mark.parametrize('umask, file_mode, folder_mode', [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_umask_mode(tmp_path, umask, file_mode, folder_mode):
  """Written files and made folders have the mode open() and mkdir() would give them, not tempfile's 0600."""
  previous = os.umask(umask)
  try:
    files.write_json(tmp_path / 'metrics.json', {})
    with files.atomic_path(tmp_path / 'texture.png') as tmp:
      tmp.write_bytes(b'png')
    folder = files.temporary_folder(tmp_path, '.sequence.')
  finally:
    os.umask(previous)
  assert stat.S_IMODE((tmp_path / 'metrics.json').stat().st_mode) == file_mode
  assert stat.S_IMODE((tmp_path / 'texture.png').stat().st_mode) == file_mode
  assert stat.S_IMODE(folder.stat().st_mode) == folder_mode and folder.name.startswith('.sequence.')
