"""The layering rules, checked: import-linter's contracts for the package (``.importlinter``) and an
ast check for the pages, which are scripts that import-linter cannot see.

docs/architecture.md describes the layers. Each check is also shown to fail when its rule is broken,
so a passing run means something.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# What a page may import from signlab: the UI helper, the charts, the view models, and two modules
# of plain constants with no logic (the letters, the pages' texts).
# No page has an exception (issue 17): actions that need the session's user go through signlab.ui,
# computations and the constants a page shows through signlab.views.
PAGE_ALLOWED = {"signlab.ui", "signlab.figures", "signlab.views", "signlab.labels", "signlab.teach"}

PAGE_FORBIDDEN_EXTERNAL = {"torch"}  # a page that needs a tensor is computing something


def imported_modules(source: str) -> set[str]:
    """The modules a script imports, ``from signlab import ui`` counted as ``signlab.ui``."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "signlab":
                out |= {f"signlab.{a.name}" for a in node.names}
            else:
                out.add(node.module)
    return out


def page_problems(name: str, source: str) -> list[str]:
    """What breaks the pages' rule in one page (empty when it holds)."""
    mods = imported_modules(source)
    problems = [f"{name} imports {m}: pages import only {', '.join(sorted(PAGE_ALLOWED))}"
                for m in sorted(mods) if m.startswith("signlab.") and m not in PAGE_ALLOWED]
    problems += [f"{name} imports {m}" for m in sorted(mods) if m.split(".")[0] in PAGE_FORBIDDEN_EXTERNAL]
    return problems


def _page_files() -> list[Path]:
    return sorted((ROOT / "app_pages").glob("*.py")) + [ROOT / "app.py"]


@pytest.mark.parametrize("path", _page_files(), ids=lambda p: p.name)
def test_pages_import_only_the_ui_figures_and_view_models(path):
    assert page_problems(path.name, path.read_text()) == []


def test_the_page_check_fails_when_a_page_breaks_the_rule():
    assert page_problems("evaluate.py", "from signlab.views import worst_pair\nimport torch\n"
                                        "from signlab.trainer import Trainer\n") == [
        "evaluate.py imports signlab.trainer: pages import only signlab.figures, signlab.labels, signlab.teach, "
        "signlab.ui, signlab.views",
        "evaluate.py imports torch"]
    assert page_problems("evaluate.py", "from signlab import access, ui\n") == [
        "evaluate.py imports signlab.access: pages import only signlab.figures, signlab.labels, signlab.teach, "
        "signlab.ui, signlab.views"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: pip install -r requirements-dev.txt")
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter"), "--no-cache"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_import_contracts_hold():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("figures.py", "import torch", "signlab.figures imports no torch"),
    ("data.py", "import streamlit", "Only signlab.ui imports Streamlit"),
    ("runs.py", "from . import ui", "never imports signlab.ui"),
    ("store.py", "from . import jobs", "knows nothing of the job queue"),
    ("cli.py", "import streamlit", "The command line imports no Streamlit"),
    ("config.py", "from . import augment", "The settings' declaration imports no torch"),
    ("labels.py", "import torch", "The letters and the label map import no torch"),
    ("predict.py", "from . import trainer", "do not import the trainer"),
    ("runs.py", "from . import views", "Only the front ends read the view models"),
])
def test_a_broken_contract_fails_the_lint(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "signlab", tmp_path / "signlab", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "signlab" / module
    target.write_text(target.read_text() + f"\n{line}  # broken on purpose\n")
    out = _lint(tmp_path)
    assert out.returncode != 0, out.stdout
    assert contract in out.stdout and "BROKEN" in out.stdout, out.stdout


def test_the_command_lines_help_and_bad_input_load_no_torch():
    """`python -m signlab --help` took 1.2 s, 0.7 of it importing torch: the CLI read the calibration
    methods from signlab.calibrate and its progress line from the view models. Both now come from
    torch-free modules (signlab.config, signlab.progress), and --help takes a quarter of that."""
    code = ("import sys, signlab.cli\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('signlab'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # a setting out of range is refused before torch loads: every command checked the class settings
    # through signlab.access (which loads the models), and train built its settings after the api
    code = ("import sys, tempfile\nfrom signlab.cli import main\n"
            "for args in (['train', '--epochs', '0'], ['train', '--queue', '--lr', '100']):\n"
            "    rc = main([*args, '--runs-dir', tempfile.mkdtemp()])\n"
            "    assert rc == 2, (args, rc)\n"
            "    assert 'torch' not in sys.modules, (args, sorted(m for m in sys.modules if m.startswith('signlab')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SIGNLAB_DB": ""})
    assert out.returncode == 0, out.stderr
    assert "--epochs: 0 is out of range" in out.stderr and "--lr: 100" in out.stderr, out.stderr


def pixel_scale_problems(name: str, source: str) -> list[str]:
    """Divisions by 255 written out in code (not in comments or docs): the pixel scale has one
    source, ``signlab.labels.unit_pixels`` (the pages and seven modules each wrote ``/ 255.0``)."""
    import io
    import tokenize

    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)]
    return [f"{name}:{b.start[0]} divides by {b.string}: use signlab.labels.unit_pixels"
            for a, b in zip(tokens, tokens[1:]) if a.string in ("/", "/=") and b.type == tokenize.NUMBER
            and float(b.string) == 255]


def test_the_pixel_scale_is_written_once():
    files = sorted((ROOT / "signlab").glob("*.py")) + _page_files()
    problems = [p for f in files if f.name != "labels.py" for p in pixel_scale_problems(f.name, f.read_text())]
    assert problems == []
    assert pixel_scale_problems("x.py", "a = b / 255.0  # / 255\nc /= 255\n'''d / 255'''\n") == [
        "x.py:1 divides by 255.0: use signlab.labels.unit_pixels", "x.py:2 divides by 255: use signlab.labels.unit_pixels"]
