"""The house: imports only run down, and no two folders import each other.

Floors: the rules (``evaluator/rules/``, standard library only) at the bottom; the device
adapters (``kiosk/``, ``printer/``, ``sync/``) above them, importing only the rules; the wiring
(``evaluator/*.py``: app, config, CLI) on top.  Read from the source with ``ast``, imports inside
functions included, so a lazy import cannot hide an arrow that runs up.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ("kiosk", "printer", "sync")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_the_house_has_its_floors() -> None:
    assert modules("evaluator/rules") and all(modules(f) for f in ("kiosk", "sync"))


@pytest.mark.parametrize("path", modules("evaluator/rules"), ids=lambda p: p.name)
def test_the_rules_import_only_the_standard_library_and_each_other(path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if top == "evaluator":
            assert name.startswith("evaluator.rules"), f"{path.name} imports {name} (up a floor)"
        else:
            assert top in sys.stdlib_module_names, f"{path.name} imports {name} (not stdlib)"


@pytest.mark.parametrize(
    "path", [p for f in ADAPTERS for p in modules(f)], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_an_adapter_imports_the_rules_never_the_wiring_nor_another_adapter(path: Path) -> None:
    own = path.relative_to(ROOT).parts[0]
    for name in imports(path):
        top = name.split(".")[0]
        if top == "evaluator":
            assert name.startswith("evaluator.rules"), f"{path} imports the wiring: {name}"
        assert top not in set(ADAPTERS) - {own}, f"{path} imports another adapter: {name}"
