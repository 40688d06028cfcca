"""The package's folders are its parts, and the imports between them only point down."""

from __future__ import annotations

import ast
from pathlib import Path

import clive

PACKAGE = Path(clive.__file__).parent
# Lowest first: a part may import the parts before it, never one after it.
PARTS = ["safety", "terminal", "session", "agent", "experiments", "mcp", "tui", "top"]
TOP_MODULES = {"__init__.py", "__main__.py", "cli.py", "demo.py"}


def _part(module: str) -> str:
    """The part a dotted clive module belongs to."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 2 or (len(pieces) == 2 and pieces[1] in PARTS) else "top"


def _imports(path: Path) -> list[str]:
    """Every clive module the file imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("clive")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clive"):
            if node.module == "clive":
                found += [f"clive.{alias.name}" for alias in node.names if alias.name != "__version__"]
            else:
                found.append(node.module)
    return found


def test_each_part_imports_only_the_parts_below_it():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        part = relative.parts[0] if len(relative.parts) > 1 else "top"
        for module in _imports(path):
            target = _part(module)
            if PARTS.index(target) > PARTS.index(part):
                upward.append(f"{relative} imports {module} ({part} -> {target})")
    assert upward == []


def test_the_package_root_holds_only_the_command_line_and_the_parts():
    top = {p.name for p in PACKAGE.iterdir() if p.suffix in (".py", ".c")}
    assert top <= TOP_MODULES
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(PARTS) - {"top"}


def test_every_part_says_what_it_holds_and_what_it_may_import():
    for part in set(PARTS) - {"top"}:
        doc = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), part


def test_modules_are_short_enough_to_read_or_say_why_they_are_one_piece():
    long = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 700 and "One piece:" not in "\n".join(lines[:80]):
            long.append(f"{path.relative_to(PACKAGE)}: {len(lines)} lines")
    assert long == []
