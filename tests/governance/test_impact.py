"""Impact analysis over a real little project: transitive imports, changed tests, and the run-all fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.tools.impact import analyse, module_name


@pytest.fixture
def project(tmp_path: Path) -> Path:
    files = {
        "src/shop/__init__.py": "",
        "src/shop/prices.py": "def total(xs):\n    return sum(xs)\n",
        "src/shop/cart.py": "from shop.prices import total\n\ndef checkout(xs):\n    return total(xs)\n",
        "src/shop/health.py": "import os\n",
        "tests/test_prices.py": "from shop import prices\n",
        "tests/test_cart.py": "import shop.cart\n",
        "tests/test_health.py": "from shop.health import os\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_a_change_reaches_the_tests_of_every_module_that_imports_it(project: Path) -> None:
    impact = analyse(project, ["src/shop/prices.py"])
    assert impact.modules == ("shop.cart", "shop.prices") and not impact.run_all
    assert impact.tests == ("tests/test_cart.py", "tests/test_prices.py")


def test_a_leaf_change_runs_only_its_tests_and_a_changed_test_runs_itself(project: Path) -> None:
    assert analyse(project, ["src/shop/cart.py"]).tests == ("tests/test_cart.py",)
    assert analyse(project, ["tests/test_health.py"]).tests == ("tests/test_health.py",)
    assert analyse(project, ["README.md"]).tests == ()
    assert analyse(project, ["README.md"]).reason == "no Python module changed"


@pytest.mark.parametrize("path", ["pyproject.toml", "tests/conftest.py", "setup.cfg"])
def test_configuration_changes_run_everything(project: Path, path: str) -> None:
    impact = analyse(project, [path])
    assert impact.run_all and path in impact.reason


def test_a_file_that_does_not_parse_runs_everything(project: Path) -> None:
    (project / "src" / "shop" / "broken.py").write_text("def (:\n")
    impact = analyse(project, ["src/shop/broken.py"])
    assert impact.run_all and "does not parse" in impact.reason


def test_module_names_understand_src_layouts_and_packages() -> None:
    assert module_name("src/shop/cart.py") == "shop.cart"
    assert module_name("shop/__init__.py") == "shop"
    assert module_name("docs/index.md") is None


def test_a_changed_package_init_reaches_every_test_of_its_modules(project: Path) -> None:
    impact = analyse(project, ["src/shop/__init__.py"])
    assert impact.tests == ("tests/test_cart.py", "tests/test_health.py", "tests/test_prices.py")


def test_relative_imports_are_followed_like_absolute_ones(tmp_path: Path) -> None:
    files = {  # as iniconfig is laid out: the package re-exports its modules with relative imports
        "src/conf/__init__.py": "from .exceptions import ParseError\nfrom ._parse import parse\n",
        "src/conf/exceptions.py": "class ParseError(Exception):\n    pass\n",
        "src/conf/_parse.py": "from . import exceptions\nfrom .exceptions import ParseError as E\n",
        "src/conf/sub/deep.py": "from ..exceptions import ParseError\n",
        "testing/test_conf.py": "from conf import parse\n",
        "testing/test_deep.py": "import conf.sub.deep\n",
        "testing/test_other.py": "import json\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    impact = analyse(tmp_path, ["src/conf/exceptions.py"])
    assert impact.modules == ("conf", "conf._parse", "conf.exceptions", "conf.sub.deep")
    assert impact.tests == ("testing/test_conf.py", "testing/test_deep.py")
