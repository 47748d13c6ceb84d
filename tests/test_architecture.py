"""The library's import direction, as docs/ARCHITECTURE.md ("Layers and import direction") states it.

Every ``import`` of a ``sagea`` module anywhere in ``src/sagea`` (inside functions too) must go to
the importing module's own unit, or to a unit its row of the table allows; the allowed imports
must themselves be free of cycles, so the units form layers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "sagea"
DOC = REPO / "docs" / "ARCHITECTURE.md"


def allowed_imports(text: str) -> dict[str, set[str]]:
    """unit -> units it may import, from the table of the doc's layers section."""
    section = text.split("## Layers and import direction", 1)[1]
    rows = re.findall(r"^\| `([a-z_]+)` \|[^|]*\|([^|]*)\|$", section, re.M)
    assert rows, "no table of units in docs/ARCHITECTURE.md"
    names = [u for u, _ in rows]
    table = {}
    for unit, cell in rows:
        cell = cell.strip()
        if cell == "every unit above":
            table[unit] = set(names[: names.index(unit)])
        elif cell.startswith("every unit above but"):
            excluded = set(re.findall(r"`([a-z_]+)`", cell))
            table[unit] = set(names[: names.index(unit)]) - excluded
        else:
            table[unit] = set(re.findall(r"`([a-z_]+)`", cell))
    return table


def unit_of(module: str) -> str:
    """``sagea.data.splits`` -> ``data``; ``sagea`` -> ``sagea``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "sagea"


def module_name(path: Path, root: Path = SRC) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported sagea module) for every import statement of the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "sagea":
            if node.module == "sagea":  # from sagea import plan, io, ...
                out += [(node.lineno, f"sagea.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}:{node.lineno}: relative import; write the absolute sagea.… path")
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "sagea"]
    return out


def violations(table: dict[str, set[str]], root: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        here = unit_of(module_name(path, root))
        if here not in table:
            bad.append(f"{path.relative_to(root.parent)}: unit {here!r} is not in the table of docs/ARCHITECTURE.md")
            continue
        for line, target in imports_of(path):
            there = unit_of(target)
            if there != here and there not in table[here]:
                bad.append(f"{path.relative_to(root.parent)}:{line}: {here} imports {target} ({there} is not allowed)")
    return bad


def test_every_import_follows_the_documented_direction():
    assert violations(allowed_imports(DOC.read_text())) == []


def test_the_allowed_imports_form_layers():
    table = allowed_imports(DOC.read_text())
    unknown = {(u, v) for u, vs in table.items() for v in vs if v not in table}
    assert not unknown, f"the table allows imports of units it does not define: {sorted(unknown)}"
    state: dict[str, int] = {}

    def visit(unit: str, trail: list[str]) -> None:
        if state.get(unit) == 1:
            raise AssertionError(f"cycle among allowed imports: {' -> '.join(trail + [unit])}")
        if state.get(unit) == 2:
            return
        state[unit] = 1
        for nxt in sorted(table[unit]):
            visit(nxt, trail + [unit])
        state[unit] = 2

    for unit in table:
        visit(unit, [])


def test_the_check_catches_an_upward_import(tmp_path):
    """The checker itself: a models module importing evaluation is reported, with its line."""
    table = allowed_imports(DOC.read_text())
    assert "evaluation" not in table["models"] and "data" in table["models"]
    root = tmp_path / "sagea"
    (root / "models").mkdir(parents=True)
    (root / "models" / "probe.py").write_text(
        "import numpy\nfrom sagea.data.splits import split_users\n\n\ndef f():\n    from sagea.evaluation.metrics import ndcg\n"
    )
    (root / "newpkg").mkdir()
    (root / "newpkg" / "x.py").write_text("")
    assert violations(table, root) == [
        "sagea/models/probe.py:6: models imports sagea.evaluation.metrics (evaluation is not allowed)",
        "sagea/newpkg/x.py: unit 'newpkg' is not in the table of docs/ARCHITECTURE.md",
    ]


@pytest.mark.parametrize("unit", ["io", "runtime", "scoring", "registry"])
def test_foundation_imports_nothing_of_ours(unit):
    assert allowed_imports(DOC.read_text())[unit] == set()
