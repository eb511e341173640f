"""The package's import arrows run one way: each module imports only its own layer or earlier ones,
and no modules import each other in a circle (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "toolexpander"
# Earliest first. A ``commands`` module is the command line's, whatever package holds it.
LAYERS = (
    ("toolexpander", "toolexpander.errors", "toolexpander.data", "toolexpander.data.schema"),
    ("toolexpander.data.formats",),
    ("toolexpander.episodes",),  # the safe dispatcher of tool calls; BFCL's episodes are a task
    ("toolexpander.tasks",),
    ("toolexpander.prompts",),
    ("toolexpander.rewards",),
    ("toolexpander.episodes.turns",),  # the turn protocol training and evaluation share: reads, dispatches
    ("toolexpander.hard_sampling",),
    ("toolexpander.models", "toolexpander.trainer"),
    ("toolexpander.evaluation",),
    # The study's pure parts and its SFT control; its harness drives the demo's training code.
    ("toolexpander.study.arms", "toolexpander.study.breakdown", "toolexpander.study.sft"),
    ("toolexpander.__main__", "toolexpander.cli", "toolexpander.demo", "toolexpander.study"),
)
CLI = len(LAYERS) - 1


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    if module.rsplit(".", 1)[-1] == "commands":
        return CLI
    prefixes = [
        (len(p), i)
        for i, group in enumerate(LAYERS)
        for p in group
        if module == p or module.startswith(p + ".")
    ]
    if not prefixes:
        raise AssertionError(f"{module} is in no layer of tests/test_layers.py")
    return max(prefixes)[1]


def imports(module: str) -> set[str]:
    """The toolexpander modules ``module`` imports (``from toolexpander.x import y`` counts as
    ``toolexpander.x.y`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {name for name in found if name in MODULES and name != module}


def test_the_modules_are_found():
    assert {"toolexpander.data.schema", "toolexpander.tasks.bfcl", "toolexpander.evaluation.scoring"} <= set(
        MODULES
    )
    assert imports("toolexpander.tasks") >= {"toolexpander.tasks.bfcl", "toolexpander.data.formats"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_later_layer(module):
    later = sorted(name for name in imports(module) if layer(name) > layer(module))
    assert later == [], f"{module} (layer {layer(module)}) imports later layers: {later}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph`` (module -> modules it imports), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for name in sorted(graph[module]):
            cycle = visit(name, [*path, module])
            if cycle:
                return cycle
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module, []))), None)


def test_no_import_cycle():
    assert find_cycle({module: imports(module) for module in MODULES}) is None


def test_a_cycle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_the_check_catches_a_backward_import(tmp_path, monkeypatch):
    (tmp_path / "schema.py").write_text("from toolexpander.evaluation import scoring\n")
    monkeypatch.setitem(MODULES, "toolexpander.data.schema", tmp_path / "schema.py")
    with pytest.raises(AssertionError, match="imports later layers"):
        test_no_import_from_a_later_layer("toolexpander.data.schema")
