"""Host: atomic file writes (write a temporary file next to the destination, then rename).

A reader sees the old file or the new one, never a partial one: a run killed while writing, or a
disk that fills, leaves the previous version in place.
"""

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any, BinaryIO, Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Host: yields a temporary path next to `path` (same suffix) that replaces `path` on success."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.stem}.', suffix=path.suffix)
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
