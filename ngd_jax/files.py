"""Host: atomic file writes (write a temporary file next to the destination, then rename).

A reader sees the old file or the new one, never a partial one: a run killed while writing, or a
disk that fills, leaves the previous version in place. tempfile makes its files 0600 and its folders
0700 whatever the umask, so both get the mode an ordinary open() or mkdir() would have given them.
"""

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any, BinaryIO, Callable, Iterator


def _umask() -> int:
  """The process umask (reading it means setting it: set it straight back)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def temporary_folder(parent: str | os.PathLike, prefix: str) -> pathlib.Path:
  """Host: a new, uniquely named folder in `parent` with the umask's mode (renamed into place by the caller)."""
  folder = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
  folder.chmod(0o777 & ~_umask())
  return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Host: yields a temporary path next to `path` (same suffix) that replaces `path` on success."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.stem}.', suffix=path.suffix)
  os.fchmod(fd, 0o666 & ~_umask())
  os.close(fd)
  tmp = pathlib.Path(tmp)
  try:
    yield tmp
    with open(tmp, 'rb') as f:  # On disk before the rename makes it visible.
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
  """Host: calls write(binary file) on a temporary file next to `path`, then renames it to `path`."""
  with atomic_path(path) as tmp, open(tmp, 'wb') as f:
    write(f)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Host: atomically writes `data` to `path`."""
  atomic_write(path, lambda f: f.write(data))


def write_json(path: str | os.PathLike, value: Any) -> None:
  """Host: atomically writes `value` as indented JSON."""
  write_bytes(path, json.dumps(value, indent=2).encode())
