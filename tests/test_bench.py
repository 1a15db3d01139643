"""The benchmarks under ``bench/`` still load against the package: a name they import that the
package dropped is found here, not by the next person who runs them (``bench/server_load.py``
imported ``signlab.runs._pid_alive`` long after the run store replaced it)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.name != "_common.py")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_benchmark_loads(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their helpers (_common) by name
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # its main() runs only as a script
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
