"""Tests of the repository itself: it stands alone.

(a) The modules of ngd_jax import each other without a cycle (lazy imports inside functions
    included: a cycle that only works because one side imports late is still a cycle), and only
    down the layers that WORKSPACE.md lists.
(b) Every path that a tracked file names inside the repository exists, and nothing points outside
    it (the documents a comment cites ship with the code: docs/method.md, docs/design.md, ...).
"""

import ast
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = 'ngd_jax'


# (a) Import cycles.


def module_files(root: pathlib.Path = ROOT, package: str = PACKAGE) -> dict[str, pathlib.Path]:
  """Dotted module name -> file, for every .py file of the package (a package is its __init__.py)."""
  modules = {}
  for path in sorted((root / package).rglob('*.py')):
    parts = list(path.relative_to(root).with_suffix('').parts)
    if parts[-1] == '__init__':
      parts.pop()
    modules['.'.join(parts)] = path
  return modules


def imported_modules(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
  """The package's modules that module `name` imports, at any nesting level.

  `from p import x` counts as importing the submodule p.x when there is one, and p itself (its
  __init__) otherwise. Parent packages that Python initialises on the way are not edges: a
  package whose __init__ re-exports its submodules would otherwise cycle with every submodule
  that imports a sibling.
  """
  is_package = path.name == '__init__.py'
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:  # Relative: resolved against this module's package.
        anchor = name.split('.') if is_package else name.split('.')[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = '.'.join(anchor + ([node.module] if node.module else []))
      else:
        base = node.module or ''
      for alias in node.names:
        submodule = f'{base}.{alias.name}'
        found.add(submodule if submodule in modules else base)
  return {m for m in found if m in modules and m != name}


def import_graph(modules: dict[str, pathlib.Path]) -> dict[str, set[str]]:
  return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
  """The strongly connected components of more than one module (each holds at least one cycle)."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def connect(node):  # Tarjan's algorithm; the graph has a few dozen nodes.
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for succ in sorted(graph[node]):
      if succ not in index:
        connect(succ)
        low[node] = min(low[node], low[succ])
      elif succ in on_stack:
        low[node] = min(low[node], index[succ])
    if low[node] == index[node]:
      component = set()
      while node not in component:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
      if len(component) > 1:
        components.append(component)

  for node in sorted(graph):
    if node not in index:
      connect(node)
  return sorted(components, key=min)


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
  """A shortest cycle [a, ..., a] through the first module of a strongly connected component."""
  start = min(component)
  previous, frontier, seen = {}, [start], {start}
  while start not in previous:  # Breadth-first; the component guarantees a way back.
    next_frontier = []
    for node in frontier:
      for succ in sorted(graph[node] & component):
        if succ == start:
          previous.setdefault(start, node)
        elif succ not in seen:
          seen.add(succ)
          previous[succ] = node
          next_frontier.append(succ)
    frontier = next_frontier
  cycle, node = [start], previous[start]
  while node != start:
    cycle.append(node)
    node = previous[node]
  return [start] + cycle[:0:-1] + [start]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One shortest cycle per strongly connected component of more than one module."""
  return [shortest_cycle(graph, component) for component in strongly_connected(graph)]


def test_find_cycles_reports_a_cycle_and_accepts_a_dag():
  assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c', 'a']]
  assert find_cycles({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) == []
  knot = {'a': {'b', 'c'}, 'b': {'d'}, 'c': {'a'}, 'd': {'b'}}
  assert strongly_connected(knot) == [{'a', 'c'}, {'b', 'd'}]
  assert find_cycles(knot) == [['a', 'c', 'a'], ['b', 'd', 'b']]


def test_imported_modules_resolves_submodules_packages_and_lazy_imports(tmp_path):
  files = {
      'pkg/__init__.py': 'from pkg.sub import helper\nfrom pkg import other\n',
      'pkg/sub/__init__.py': 'from pkg.sub.leaf import helper\n',
      'pkg/sub/leaf.py': 'from pkg.sub import sibling\nfrom . import sibling as s2\n'
                         'def f():\n  import pkg.other\n  from pkg import CONSTANT\n',
      'pkg/sub/sibling.py': '',
      'pkg/other.py': 'from ..pkg import sub\n',
  }
  for name, text in files.items():
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
  modules = module_files(tmp_path, 'pkg')
  graph = import_graph(modules)
  assert graph['pkg'] == {'pkg.sub', 'pkg.other'}  # `helper` is a name: the package pkg.sub.
  assert graph['pkg.sub'] == {'pkg.sub.leaf'}  # Re-exporting a submodule is no cycle.
  assert graph['pkg.sub.leaf'] == {'pkg.sub.sibling', 'pkg.other', 'pkg'}  # Lazy imports count.
  assert find_cycles(graph) == [['pkg', 'pkg.sub', 'pkg.sub.leaf', 'pkg']]


def test_no_import_cycle_among_the_package_modules():
  modules = module_files()
  assert f'{PACKAGE}.train' in modules  # The walk found the package.
  graph = import_graph(modules)
  problems = [f'{" -> ".join(shortest_cycle(graph, component))}  (modules of this knot: '
              f'{", ".join(sorted(component))})' for component in strongly_connected(graph)]
  assert not problems, 'Import cycles among ngd_jax modules (lazy imports count):\n' + '\n'.join(problems)


def workspace_layers(text: str, modules: dict[str, pathlib.Path], package: str = PACKAGE) -> dict[str, int]:
  """Module -> layer number, from the indented block of WORKSPACE.md's "Layers" section.

  Each line of the block is `<number>  <label>  <names>`: module names relative to the package,
  or folders (`render/`) standing for a subpackage and all its modules, separated by commas or
  semicolons; parenthesised remarks are ignored. Anything else (an arrow) must name a module, and
  no module may sit on two rows: the block is the one place a module's layer is read from.
  """
  section = text.split('## Layers', 1)[1].split('\n## ', 1)[0]
  layers = {}
  for line in section.splitlines():
    match = re.match(r'\s{4,}(\d+)\s+\S+\s+(.*)$', line)
    if not match:
      continue
    for token in re.split(r'[\s,;]+', re.sub(r'\([^)]*\)', ' ', match.group(2))):
      if not token:
        continue
      name = f'{package}.{token.rstrip("/").replace("/", ".")}'
      placed = [m for m in modules if m == name or (token.endswith('/') and m.startswith(name + '.'))]
      assert placed, f'WORKSPACE.md layer {match.group(1)} names {token!r}, which is no module of {package}.'
      again = sorted(f'{m} (layer {layers[m]})' for m in placed if m in layers)
      assert not again, f'WORKSPACE.md layer {match.group(1)} places {", ".join(again)} a second time.'
      layers.update((m, int(match.group(1))) for m in placed)
  return layers


def test_workspace_layers_parse_names_folders_and_remarks():
  modules = {name: pathlib.Path() for name in ('p', 'p.a', 'p.b', 'p.sub', 'p.sub.x', 'p.main')}
  text = ('## Layers\nintro\n\n    2  top    main, a (remark, b); b\n    1  low    sub/\n\n'
          '`main` is special.\n\n## Next\n    9  no     a\n')
  assert workspace_layers(text, modules, 'p') == {'p.main': 2, 'p.a': 2, 'p.b': 2, 'p.sub': 1, 'p.sub.x': 1}
  with pytest.raises(AssertionError, match=r"layer 2 names '->', which is no module of p"):
    workspace_layers('## Layers\n    2  top    main -> a\n', modules, 'p')
  with pytest.raises(AssertionError, match=r'layer 1 places p\.sub\.x \(layer 2\) a second time'):
    workspace_layers('## Layers\n    2  top    sub/x\n    1  low    sub/\n', modules, 'p')


def test_imports_go_down_the_workspace_layers():
  """WORKSPACE.md, "Layers": every module of the package (but its own __init__, which imports
  nothing) sits on one row, and imports only from its own row or lower ones."""
  modules = module_files()
  graph = import_graph(modules)
  layers = workspace_layers((ROOT / 'WORKSPACE.md').read_text(encoding='utf-8'), modules)
  assert not graph[PACKAGE]
  unplaced = sorted(set(modules) - set(layers) - {PACKAGE})
  upward = sorted(f'{name} (layer {layers[name]}) imports {target} (layer {layers[target]})'
                  for name, imports in graph.items() for target in imports
                  if name in layers and target in layers and layers[target] > layers[name])
  assert not unplaced and not upward, ('Modules missing from WORKSPACE.md "Layers": ' + ', '.join(unplaced) +
                                       '\nImports up the layers:\n' + '\n'.join(upward))


# (b) Dangling path references.

# Text files whose references are checked (by suffix; configs/ holds .py files).
TEXT_SUFFIXES = ('.py', '.md', '.sh', '.txt', '.toml', '.cfg', '.cc', '.h')
# A repository path: a top-level folder of the repository, then a file name with a known suffix.
# Generated run outputs (runs/..., checkpoints/<step>/, meshes/posed/<frame>.obj, previews/grid.png)
# start elsewhere or end in other suffixes, so they do not match.
REPO_PATH = re.compile(
    r'(?<![\w./-])((?:ngd_jax|tests|benchmarks|configs|scripts|docs|third_party)/[\w./-]*'
    r'\.(?:py|md|sh|txt|cc|json|toml|cfg))(?![\w])')
# A document named in capitals (METHOD.md, DESIGN.md, README.md, ...), bare or under folders; bare
# names resolve against the repository root or the citing file's folder.
# Folder names hold no dot (other than . and ..), so web addresses (github.com/...) do not match.
DOCUMENT = re.compile(r'(?<![\w./-])((?:(?:\.\.?|[\w-]+)/)*[A-Z][A-Z0-9_]*\.md)(?![\w])')
# Anything under the steering folder next to the repository, which is not shipped.
OUTSIDE = re.compile(r'(?<![\w./-])(\.\./shared(?:/[\w./-]*[\w])?)')
# References that are not paths of this repository though they look like one (keep this tiny).
ALLOWED: frozenset[str] = frozenset()


def repository_files() -> tuple[list[str], set[str]]:
  """(tracked files, every path of the repository: tracked and untracked-not-ignored files and
  their folders), relative to the root; skips the test outside a git checkout."""
  try:
    tracked = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    present = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    pytest.skip('not a git checkout: the tracked files are unknown')
  paths = set()
  for line in present.splitlines():
    if os.path.exists(ROOT / line):  # Deleted in the work tree: gone.
      path = pathlib.PurePosixPath(line)
      paths.add(str(path))
      paths.update(str(parent) for parent in path.parents if str(parent) != '.')
  return tracked.splitlines(), paths


def references(text: str) -> list[tuple[int, str, str]]:
  """(line number, reference, kind) of every path-like reference in `text`; kind is 'outside'
  for references leaving the repository, 'path' otherwise."""
  found = []
  for number, line in enumerate(text.splitlines(), 1):
    spans = []
    for pattern, kind in ((OUTSIDE, 'outside'), (REPO_PATH, 'path'), (DOCUMENT, 'path')):
      for match in pattern.finditer(line):
        if any(start < match.end(1) and match.start(1) < end for start, end in spans):
          continue  # Part of a reference already found (../shared/DESIGN.md, benchmarks/README.md).
        spans.append(match.span(1))
        found.append((number, match.group(1), kind))
  return found


def resolves(reference: str, folder: pathlib.PurePosixPath, paths: set[str]) -> bool:
  """Whether `reference` names a path of the repository, from the root or from `folder`."""
  for base in (pathlib.PurePosixPath('.'), folder):
    candidate = os.path.normpath(str(base / reference))
    if not candidate.startswith('..') and candidate in paths:
      return True
  return False


def dangling_references() -> list[str]:
  tracked, paths = repository_files()
  dangling = []
  this_file = pathlib.Path(__file__).resolve().relative_to(ROOT).as_posix()  # Its examples are not references.
  for name in tracked:
    if not name.endswith(TEXT_SUFFIXES) or name == this_file or not os.path.isfile(ROOT / name):
      continue
    text = (ROOT / name).read_text(encoding='utf-8', errors='replace')
    folder = pathlib.PurePosixPath(name).parent
    for number, reference, kind in references(text):
      if reference in ALLOWED:
        continue
      if kind == 'outside' or not resolves(reference, folder, paths):
        dangling.append(f'{name}:{number}: {reference}')
  return dangling


def test_references_finds_paths_documents_and_outside_paths():
  text = ('see ngd_jax/losses.py. and docs/method.md section 4\n'
          'METHOD.md 6, ../shared/reference/NOTES.md, `../shared` and benchmarks/TRAIN.md\n'
          'runs/demo/meshes/posed/000000.obj, previews/grid.png, ngd_jax/render/_rasterizer_cpu*.so\n'
          'jax/_src/compiler.py, ngd_jax.data.synthetic, /work/main/ngd_jax/x.py, dataset/readme.txt\n'
          'github.com/eth-ait/4d-dress/dataset/README.md, https://example.org/docs/NOTES.md\n')
  assert references(text) == [
      (1, 'ngd_jax/losses.py', 'path'), (1, 'docs/method.md', 'path'),
      (2, '../shared/reference/NOTES.md', 'outside'), (2, '../shared', 'outside'),
      (2, 'benchmarks/TRAIN.md', 'path'), (2, 'METHOD.md', 'path'),
  ]
  paths = {'README.md', 'benchmarks', 'benchmarks/README.md'}
  assert resolves('README.md', pathlib.PurePosixPath('benchmarks'), paths)
  assert resolves('benchmarks/README.md', pathlib.PurePosixPath('tests'), paths)
  assert not resolves('TRAIN.md', pathlib.PurePosixPath('benchmarks'), paths)
  assert not resolves('../README.md', pathlib.PurePosixPath('.'), paths | {'../README.md'})


def test_no_dangling_path_references():
  dangling = dangling_references()
  assert not dangling, (f'{len(dangling)} references to paths that are not in the repository (cite '
                        'docs/method.md, docs/design.md, docs/notes.md, benchmarks/README.md instead):\n'
                        + '\n'.join(dangling))
