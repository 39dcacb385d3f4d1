"""Atomic writes: a reader sees the old file or the new one, never a partial one."""

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
