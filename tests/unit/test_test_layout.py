"""The tests' own layout (issue 16, item 10): no test module or conftest imports another test
module or a conftest; what tests share lives in tests/support/ (plain code and types) and
tests/plugins/ (registered fixtures). Every folder under tests/ is a package, since the tests are
imported as the `tests` package and two folders may hold modules of the same name.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SHARED = ("tests.support", "tests.plugins")


def _imported(path: Path, tests: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import of the `tests` package in `path`; a relative import
    is resolved against the file's own package."""
    package = ["tests", *path.parent.relative_to(tests).parts]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from tests import support` names a module too.
            names = [f"{module}.{a.name}" for a in node.names] if module == "tests" else [module]
            found += [(node.lineno, name) for name in names]
    return [(line, name) for line, name in found if name == "tests" or name.startswith("tests.")]


def layout_violations(tests: Path) -> list[str]:
    """What breaks the rule under the folder `tests`: a module importing a `tests.*` module other
    than tests.support* and tests.plugins*, and a folder without an __init__.py. Each as
    `path:line: reason`, paths relative to `tests`' parent."""
    problems: list[str] = []
    for path in sorted(tests.rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(tests).parts):
            continue
        where = path.relative_to(tests.parent)
        for line, module in _imported(path, tests):
            if not any(module == shared or module.startswith(shared + ".") for shared in SHARED):
                problems.append(
                    f"{where}:{line}: imports {module}; move what it needs to tests/support/"
                )
    for folder in sorted({p.parent for p in tests.rglob("*.py")} | {tests}):
        if not (folder / "__init__.py").exists():
            problems.append(f"{folder.relative_to(tests.parent)}: no __init__.py")
    return problems


def test_no_test_module_imports_another_and_every_folder_is_a_package() -> None:
    assert layout_violations(TESTS) == []


def test_an_import_of_a_test_module_or_a_conftest_is_reported(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    (tests / "integration" / "jobs").mkdir(parents=True)
    (tests / "support").mkdir()
    (tests / "plugins").mkdir()
    for folder in ("", "integration", "support", "plugins"):
        (tests / folder / "__init__.py").write_text("")
    (tests / "support" / "engine.py").write_text("EngineFactory = object\n")
    (tests / "integration" / "conftest.py").write_text("from tests.support.engine import X\n")
    (tests / "integration" / "jobs" / "test_a.py").write_text(
        "from tests.integration.conftest import EngineFactory\n"
        "from tests.support import wait_until\n"
        "from tests.plugins.daemon import DaemonProcess\n"
        "from ..test_b import helper\n"
        "from tests import conftest\n"
        "import tests.unit.test_c\n"
    )
    assert layout_violations(tests) == [
        "tests/integration/jobs/test_a.py:1: imports tests.integration.conftest;"
        " move what it needs to tests/support/",
        "tests/integration/jobs/test_a.py:4: imports tests.integration.test_b;"
        " move what it needs to tests/support/",
        "tests/integration/jobs/test_a.py:5: imports tests.conftest;"
        " move what it needs to tests/support/",
        "tests/integration/jobs/test_a.py:6: imports tests.unit.test_c;"
        " move what it needs to tests/support/",
        "tests/integration/jobs: no __init__.py",
    ]
