"""The import rules of ARCHITECTURE.md, checked on the source: which package may import which,
no import cycle between the project's modules, no private name imported from another module.

The rules are read from the table in ARCHITECTURE.md, so the document and the code cannot
drift apart: a new package needs a row, a new dependency between packages needs the table to
say so. Every import counts, inside functions and under TYPE_CHECKING too (a lazy import hides
a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "ARCHITECTURE.md"


@dataclass(frozen=True)
class Rule:
    package: str
    may_import: frozenset[str]
    never_imports: frozenset[str]


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module or name, dotted
    line: int
    names: tuple[str, ...] = ()  # for "from target import names"


def parse_rules(text: str) -> dict[str, Rule]:
    """The rows of the table after the ``import-rules`` marker."""
    rows = text.split("<!-- import-rules", 1)[1].splitlines()[1:]
    rules: dict[str, Rule] = {}
    for row in rows:
        if not row.startswith("|"):
            if rules:
                break
            continue
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if cells[0] in ("package", "") or set(cells[0]) <= {"-"}:
            continue

        def names(cell: str) -> frozenset[str]:
            return frozenset(re.findall(r"`([\w.]+)`", cell))

        (package,) = names(cells[0])
        rules[package] = Rule(package, names(cells[2]), names(cells[3]))
    return rules


def modules(root: Path, packages: set[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in sorted(packages):
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def imports(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}:{node.lineno}: relative import (ruff bans them)"
            yield Import(name, node.module or "", node.lineno, tuple(a.name for a in node.names))


def resolve(target: str, known: dict[str, Path]) -> str | None:
    """The project module a dotted name lives in (longest known prefix), if any."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


def graph(known: dict[str, Path]) -> tuple[dict[str, set[str]], list[Import]]:
    """Module -> the project modules it imports; and every import statement."""
    edges: dict[str, set[str]] = {m: set() for m in known}
    stmts: list[Import] = []
    for m, path in known.items():
        for imp in imports(m, path):
            stmts.append(imp)
            # "from pkg import module" depends on the module; "from module import name" on
            # the module that defines the name
            targets = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in known]
            if len(targets) < len(imp.names) or not imp.names:
                targets.append(imp.target)
            for t in targets:
                r = resolve(t, known)
                if r is not None and r != m:
                    edges[m].add(r)
    return edges, stmts


def package_violations(stmts: list[Import], known: dict[str, Path],
                       rules: dict[str, Rule]) -> list[str]:
    bad = []
    for imp in stmts:
        src = imp.module.split(".")[0]
        rule = rules[src]
        top = imp.target.split(".")[0]
        if top in rules:
            if top != src and top not in rule.may_import:
                bad.append(f"{imp.module}:{imp.line} imports {imp.target} ({src} may import "
                           f"{sorted(rule.may_import) or 'nothing of the project'})")
        elif top in rule.never_imports:
            bad.append(f"{imp.module}:{imp.line} imports {imp.target} ({src} never imports it)")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def private_violations(stmts: list[Import], known: dict[str, Path]) -> list[str]:
    """Private names imported from another module; private modules from another package."""
    bad = []
    for imp in stmts:
        src_module = resolve(imp.target, known)
        if src_module is None:
            continue
        for n in imp.names:
            as_module = f"{imp.target}.{n}"
            if as_module in known:  # "from package import _module"
                package = imp.target
                inside = imp.module == package or imp.module.startswith(package + ".")
                if n.startswith("_") and not inside:
                    bad.append(f"{imp.module}:{imp.line} imports private module {as_module}")
            elif n.startswith("_") and src_module != imp.module:
                bad.append(f"{imp.module}:{imp.line} imports private name {n} from {imp.target}")
        for part in imp.target.split(".")[1:]:
            if part.startswith("_") and not part.startswith("__"):
                package = imp.target[: imp.target.index(part) - 1]
                if not (imp.module == package or imp.module.startswith(package + ".")):
                    bad.append(f"{imp.module}:{imp.line} imports private module {imp.target}")
    return bad


# -- the project --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> tuple[dict[str, Rule], dict[str, Path], dict[str, set[str]], list[Import]]:
    rules = parse_rules(DOC.read_text(encoding="utf-8"))
    known = modules(REPO, set(rules))
    edges, stmts = graph(known)
    return rules, known, edges, stmts


def test_the_document_has_a_rule_for_every_package(project):
    rules, known, _, _ = project
    assert {"tickml", "feature_repo", "live", "assets", "orchestration", "benchmarks"} <= set(rules)
    on_disk = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert on_disk <= set(rules), f"packages without a row in ARCHITECTURE.md: {on_disk}"
    assert rules["tickml"].may_import == frozenset()  # the library imports nothing above it
    assert {"dagster", "feast"} <= rules["tickml"].never_imports
    assert len(known) > 100


def test_packages_import_only_what_the_document_allows(project):
    rules, known, _, stmts = project
    assert package_violations(stmts, known, rules) == []


def test_only_the_composition_root_imports_assets(project):
    _, _, edges, _ = project
    importers = {m.split(".")[0] for m, out in edges.items() for t in out
                 if t.split(".")[0] == "assets"}
    assert importers <= {"assets", "orchestration"}


def test_no_import_cycles(project):
    _, _, edges, _ = project
    assert cycles(edges) == []


def test_no_private_names_across_modules(project):
    _, known, _, stmts = project
    assert private_violations(stmts, known) == []


# -- the checks catch what they claim to (small synthetic trees) -------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> tuple[dict[str, Path], dict[str, set[str]],
                                                           list[Import]]:
    for rel, text in files.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    known = modules(tmp_path, {"lib", "app"})
    edges, stmts = graph(known)
    return known, edges, stmts


RULES = parse_rules(
    "<!-- import-rules -->\n| package | holds | may import | never imports |\n|---|---|---|---|\n"
    "| `lib` | the library | | `dagster` |\n| `app` | the root | `lib` | |\n"
)


def test_an_upward_import_is_caught(tmp_path):
    known, _, stmts = _tree(tmp_path, {
        "lib/__init__.py": "", "app/__init__.py": "", "app/main.py": "import lib.core\n",
        "lib/core.py": "def f():\n    from app.main import g  # lazy, still upward\n",
    })
    bad = package_violations(stmts, known, RULES)
    assert len(bad) == 1 and "lib.core:2 imports app.main" in bad[0]


def test_a_forbidden_library_is_caught(tmp_path):
    known, _, stmts = _tree(tmp_path, {
        "lib/__init__.py": "", "app/__init__.py": "",
        "lib/core.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dagster\n",
    })
    assert package_violations(stmts, known, RULES) == [
        "lib.core:3 imports dagster (lib never imports it)"
    ]


def test_a_cycle_is_caught_even_through_a_lazy_import(tmp_path):
    _, edges, _ = _tree(tmp_path, {
        "lib/__init__.py": "", "app/__init__.py": "",
        "lib/a.py": "from lib.b import x\n",
        "lib/b.py": "def x():\n    from lib import c\n",
        "lib/c.py": "import lib.a\n",
        "lib/d.py": "import lib.a\n",
    })
    assert cycles(edges) == [["lib.a", "lib.b", "lib.c"]]


def test_private_names_are_caught(tmp_path):
    known, _, stmts = _tree(tmp_path, {
        "lib/__init__.py": "", "app/__init__.py": "",
        "lib/_impl.py": "def _helper():\n    pass\n",
        "lib/core.py": "from lib import _impl\nfrom lib._impl import _helper\n",
        "app/main.py": "from lib._impl import f\n",
    })
    assert private_violations(stmts, known) == [
        "app.main:1 imports private module lib._impl",
        "lib.core:2 imports private name _helper from lib._impl",
    ]
