"""Host: orbax checkpoints of the training state, restorable without knowing its shapes beforehand.

Remeshing changes the size of mesh arrays between checkpoints, so each checkpoint carries a small
JSON `meta` item (phase, epoch, mesh sizes, ...) next to the `state` pytree, and restore reads the
stored shapes from orbax's metadata to build its target. Orbax writes into a temporary folder and
renames it when complete, so a run killed while saving leaves the previous checkpoint intact.

Failures are CheckpointErrors (user errors: one message): no checkpoint, one written by another
configuration, a save that fails (disk full, I/O error: the unfinished step is removed, the earlier
ones stay, and the same command resumes once the cause is fixed). `restore_latest` skips a
checkpoint that cannot be read (a truncated file), with a warning, and moves it to
checkpoints/<step>.corrupt so that training can write that step again.

Orbax restores every array at once in an event loop of its own and closes that loop as soon as one
read fails, while the others are still in flight; each of those then reports `RuntimeError: Event
loop is closed` on stderr when it ends (hundreds of tracebacks for a real state). Restores here run
with loops that let their unfinished reads end before closing (`_draining_loops`), so an unreadable
checkpoint costs one warning.
"""

import asyncio
import contextlib
import glob
import logging
import os
import shutil
from typing import Any, Callable, Iterator, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from ngd_jax import errors

# What orbax and tensorstore raise on a truncated or missing file (JSONDecodeError is a ValueError;
# tensorstore reports DATA_LOSS / OUT_OF_RANGE as ValueError) and on a failed write.
_IO_ERRORS = (OSError, ValueError)


class CheckpointError(errors.UserError):
  """No usable checkpoint, one of another configuration, or a save that failed; names the folder and the fix."""


def _first_line(error: Exception) -> str:
  return str(error).splitlines()[0] if str(error) else type(error).__name__


class _NotOrbaxError(logging.Filter):
  """Drops orbax's own log lines of a failed save: CheckpointError reports it once."""

  def filter(self, record: logging.LogRecord) -> bool:
    return 'orbax' not in record.pathname


class _DrainingLoop(asyncio.SelectorEventLoop):
  """An event loop whose close() first lets its unfinished tasks end (their results are dropped)."""

  def close(self) -> None:
    pending = [task for task in asyncio.all_tasks(self) if not task.done()]
    if pending and not self.is_running() and not self.is_closed():
      self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    super().close()


class _DrainingPolicy(asyncio.DefaultEventLoopPolicy):

  def new_event_loop(self) -> asyncio.AbstractEventLoop:
    return _DrainingLoop()


@contextlib.contextmanager
def _draining_loops() -> Iterator[None]:
  """Host: the event loops orbax makes meanwhile are _DrainingLoops."""
  previous = asyncio.get_event_loop_policy()
  asyncio.set_event_loop_policy(_DrainingPolicy())
  try:
    yield
  finally:
    asyncio.set_event_loop_policy(previous)


class Restored(NamedTuple):
  step: int
  state: Any
  meta: dict[str, Any]


def _stored_leaf(stored: Any, path: tuple[Any, ...]) -> Any:
  """The metadata leaf of `stored` (orbax's nested dicts/lists) at a key path of the template."""
  node = stored
  for entry in path:
    key = getattr(entry, 'name', getattr(entry, 'key', getattr(entry, 'idx', None)))
    if isinstance(node, dict):
      node = node[key] if key in node else node[str(key)]
    elif isinstance(key, int):
      node = node[key]
    else:
      node = getattr(node, key)
  return node


class Checkpointer:
  """Keeps the last `keep` checkpoints under workdir/checkpoints."""

  def __init__(self, workdir: str, keep: int):
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False),
        item_handlers={'state': ocp.StandardCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()},
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def _step_path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Saves `state` (a pytree of arrays) and `meta` (JSON-serialisable) as checkpoint `step`.

    A step that exists already (written by an earlier version that saved the last step twice) is
    replaced: moved aside until the new one is complete. CheckpointError if writing fails.
    """
    state = jax.device_get(state)
    aside = f'{self._step_path(step)}.replaced'
    if step in self.all_steps():
      shutil.rmtree(aside, ignore_errors=True)
      os.rename(self._step_path(step), aside)
      self._manager.reload()
    quiet = _NotOrbaxError()
    logging.getLogger('absl').addFilter(quiet)
    try:
      self._manager.save(
          step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True
      )
      self._manager.wait_until_finished()
    except _IO_ERRORS as e:
      for unfinished in glob.glob(f'{self._step_path(step)}.orbax-checkpoint-tmp*'):
        shutil.rmtree(unfinished, ignore_errors=True)
      self._manager.reload()
      raise CheckpointError(
          f'{self.directory}: could not write checkpoint {step} ({_first_line(e)}). The earlier checkpoints '
          f'{self.all_steps()} are intact. Fix: free disk space (or fix the I/O problem), then run the same '
          'command again to resume.'
      ) from e
    finally:
      logging.getLogger('absl').removeFilter(quiet)
    shutil.rmtree(aside, ignore_errors=True)

  def read_meta(self, step: int | None = None) -> dict[str, Any] | None:
    """The JSON meta of checkpoint `step` (default: latest), or None when there is no checkpoint."""
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    with _draining_loops():
      return dict(self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)

  def _require(self, step: int | None) -> None:
    if step is None:
      raise CheckpointError(f'{self.directory}: no checkpoint. Fix: train first (--mode=train).')
    if step not in self.all_steps():
      raise CheckpointError(f'{self.directory}: no checkpoint {step}. Fix: pick one of {self.all_steps()} '
                            '(--config.eval.checkpoint_step), or -1 for the latest.')

  def restore(self, template: Any, step: int | None = None) -> Restored:
    """Restores checkpoint `step` (default: latest) into the structure of `template`.

    Only the tree structure of `template` is used; leaf shapes and dtypes come from the checkpoint,
    so a template built for another mesh size restores a remeshed state.
    """
    step = self.latest_step() if step is None else step
    self._require(step)
    with _draining_loops():
      stored = self._manager.item_metadata(step)['state'].tree
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    try:
      leaves = [_stored_leaf(stored, path) for path, _ in paths]
    except (KeyError, IndexError, TypeError, AttributeError) as e:
      raise CheckpointError(
          f'{self._step_path(step)}: does not hold the arrays this configuration expects (missing {e}): it was '
          'written by a different configuration or version. Fix: use a new --workdir, or the configuration '
          'the run was trained with (workdir/config.json).'
      ) from e
    abstract = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(tuple(leaf.shape), np.dtype(leaf.dtype)) for leaf in leaves])
    with _draining_loops():
      restored = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
      )
    return Restored(step=step, state=restored.state, meta=dict(restored.meta))

  def restore_latest(self, template_of_meta: Callable[[dict[str, Any]], Any],
                     step: int | None = None) -> Restored | None:
    """Restores checkpoint `step`, or (None) the latest readable one; None when there is none.

    template_of_meta(meta) gives the structure to restore into (see `restore`). Without `step`, a
    checkpoint that cannot be read is moved to <step>.corrupt with a warning naming it, and the
    previous kept one is tried.
    """
    if step is not None:
      self._require(step)
    candidates = sorted(self.all_steps(), reverse=True) if step is None else [step]
    for candidate in candidates:
      try:
        meta = self.read_meta(candidate)
      except _IO_ERRORS as e:
        self._unreadable(candidate, e, explicit=step is not None)
        continue
      template = template_of_meta(meta)  # Outside the try: its errors are not the checkpoint's.
      try:
        return self.restore(template, candidate)
      except _IO_ERRORS as e:
        self._unreadable(candidate, e, explicit=step is not None)
    if candidates:
      raise CheckpointError(f'{self.directory}: no readable checkpoint (each was moved to <step>.corrupt). '
                            'Fix: run again to train from the beginning, or use a new --workdir.')
    return None

  def _unreadable(self, step: int, error: Exception, explicit: bool) -> None:
    """Host: CheckpointError for an asked-for step; otherwise moves it aside with a warning."""
    cause = _first_line(error)
    if explicit:
      raise CheckpointError(
          f'{self._step_path(step)}: unreadable checkpoint ({cause}). Fix: pick another of {self.all_steps()} '
          '(--config.eval.checkpoint_step), or -1 for the latest readable one.') from error
    shutil.rmtree(f'{self._step_path(step)}.corrupt', ignore_errors=True)  # An older copy of that step.
    os.rename(self._step_path(step), f'{self._step_path(step)}.corrupt')
    self._manager.reload()
    logging.warning('Checkpoint %s is unreadable (%s); moved to %s.corrupt, using the previous kept one.',
                    self._step_path(step), cause, self._step_path(step))

  def close(self) -> None:
    self._manager.close()
