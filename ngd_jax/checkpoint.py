"""Host: orbax checkpoints of the training state, restorable without knowing its shapes beforehand.

Remeshing changes the size of mesh arrays between checkpoints, so each checkpoint carries a small
JSON `meta` item (phase, epoch, mesh sizes, ...) next to the `state` pytree, and restore reads the
stored shapes from orbax's metadata to build its target. Orbax writes into a temporary folder and
renames it when complete, so a run killed while saving leaves the previous checkpoint intact.
"""

import os
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp


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

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Saves `state` (a pytree of arrays) and `meta` (JSON-serialisable) as checkpoint `step`."""
    state = jax.device_get(state)
    self._manager.save(
        step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True
    )
    self._manager.wait_until_finished()

  def read_meta(self, step: int | None = None) -> dict[str, Any] | None:
    """The JSON meta of checkpoint `step` (default: latest), or None when there is no checkpoint."""
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    return dict(self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)

  def restore(self, template: Any, step: int | None = None) -> Restored:
    """Restores checkpoint `step` (default: latest) into the structure of `template`.

    Only the tree structure of `template` is used; leaf shapes and dtypes come from the checkpoint,
    so a template built for another mesh size restores a remeshed state.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}: train first (--mode=train).')
    if step not in self.all_steps():
      raise FileNotFoundError(f'No checkpoint {step} in {self.directory}; available: {self.all_steps()}.')
    stored = self._manager.item_metadata(step)['state'].tree
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    try:
      leaves = [_stored_leaf(stored, path) for path, _ in paths]
    except (KeyError, IndexError, TypeError, AttributeError) as e:
      raise ValueError(
          f'Checkpoint {step} in {self.directory} does not hold the arrays this configuration expects '
          f'(missing {e}): it was written by a different configuration or version. Use a new --workdir, '
          'or the configuration the run was trained with (workdir/config.json).'
      ) from e
    abstract = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(tuple(leaf.shape), np.dtype(leaf.dtype)) for leaf in leaves])
    restored = self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    )
    return Restored(step=step, state=restored.state, meta=dict(restored.meta))

  def close(self) -> None:
    self._manager.close()
