"""Helpers for the browser tests: a server of their own, waiting for the app, naming steps,
reading plotly charts."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]



def wait_idle(page, timeout: float = 30) -> None:
    """Wait until the script run is over: the app is drawn and no 'Running…' indicator shows."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout * 1000)
    # the page's script has run far enough to draw its title (every page starts with one); the
    # status widget alone can look idle before the script has even started
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=timeout * 1000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || getComputedStyle(document.querySelector('[data-testid=\"stStatusWidget\"]')).visibility === 'hidden'",
        timeout=timeout * 1000)
    page.wait_for_timeout(300)


def fill_box(page, label: str, value: str, timeout: float = 60) -> None:
    """Type ``value`` into the one input labelled ``label`` and press Enter. A rerun can draw the box
    anew beside the last draw's for a moment, even after the page looked idle (a strict-mode error
    on a loaded machine, twice in fresh-clone runs): then it waits and types again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            page.wait_for_function("(l) => document.querySelectorAll(`input[aria-label='${l}']`).length === 1",
                                   arg=label, timeout=timeout * 1000)
            box = page.get_by_label(label, exact=True)
            box.fill(value, timeout=5000)
            box.press("Enter", timeout=5000)
            return
        except Exception:  # noqa: BLE001 - a strict-mode error or a box gone: typed again until the deadline
            if time.monotonic() > deadline:
                raise
            page.wait_for_timeout(500)


def assert_no_exception(page, where: str) -> None:
    n = page.locator("[data-testid='stException']").count()
    text = page.inner_text("body")
    assert n == 0 and "Traceback" not in text, f"{where}: the page shows an exception:\n{text[:2000]}"


def goto(page, server: str, path: str) -> None:
    page.goto(server + path)
    wait_idle(page)


@contextmanager
def step(page, name: str):
    """Name a step: a failure inside says which step failed and what the page showed instead."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - re-raised with the page's text
        try:
            text = page.inner_text("body")[:1500]
        except Exception:  # noqa: BLE001
            text = "(page text unavailable)"
        raise AssertionError(f"step '{name}' failed: {err}\n--- the page showed ---\n{text}") from err


NARROW = 820  # px: a laptop's half screen; with the sidebar open the page's content is about 490 px wide
FULL = {"width": 1400, "height": 1000}  # the browser tests' window (conftest)

# Whether an element's text is cut: it, or a box inside it, is narrower than its text (the 1-px
# boxes that hide a radio input aside).
TEXT_CUT = "e => [e, ...e.querySelectorAll('*')].some(x => x.clientWidth > 2 && x.scrollWidth > x.clientWidth + 1)"


def cut_controls(page) -> tuple[list[list], list[list]]:
    """Every button and label of the page's main area as [text, cut, right edge], and those of them
    that are cut or run off a :data:`NARROW` window."""
    controls = page.evaluate(f"""() => Array.from(
      document.querySelectorAll('[data-testid=stMain] button, [data-testid=stMain] label'),
      e => [e.innerText.trim(), ({TEXT_CUT})(e), e.getBoundingClientRect().right]).filter(c => c[0])""")
    return controls, [c for c in controls if c[1] or c[2] > NARROW]


@contextmanager
def narrow_window(page):
    """The page in a window :data:`NARROW` px wide, then back to the tests' window whatever happens."""
    page.set_viewport_size({"width": NARROW, "height": FULL["height"]})
    try:
        page.wait_for_timeout(500)  # the layout settles
        yield
    finally:
        page.set_viewport_size(FULL)


def tile_row(page, key: str) -> tuple[float, int]:
    """(width in px, tiles in the first row) of the keyed ``figures.tile_grid`` chart: each tile's
    title is drawn over its tile, so the first row's titles count its tiles."""
    return page.evaluate("""(sel) => { const g = document.querySelector(sel);
      const tops = Array.from(g.querySelectorAll('g.annotation-text-g text'), t => Math.round(t.getBoundingClientRect().top));
      return [g.getBoundingClientRect().width, tops.filter(t => t === Math.min(...tops)).length]; }""",
                         chart_selector(key))


def plot_count(page) -> int:
    return page.locator(".js-plotly-plot").count()


# --------------------------------------------------------------------------- the live loss chart
# While a run trains, the Train page draws its loss on a canvas (signlab/assets/live_chart.js),
# which keeps the figure it drew in ``signlabData``; once the run stops, the same figure is a
# plotly chart. These read whichever is on the page.
LIVE_CANVAS = "canvas.signlab-live-chart"
_LIVE_X = ("() => { const c = document.querySelector('canvas.signlab-live-chart');"
           " if (c && c.signlabData) { const t = c.signlabData.traces[0]; return t ? t.x : []; }"
           " const g = document.querySelector('.js-plotly-plot'); const d = g && (g._fullData || g.data);"
           " return d && d[0] && d[0].x ? Array.from(d[0].x) : null; }")


def live_x(page) -> list | None:
    """The steps (x) of the loss chart's first trace, canvas or plotly; None while none is drawn."""
    return page.evaluate(_LIVE_X)


def wait_live_chart(page, timeout: float = 60) -> None:
    """Wait until a loss chart is drawn: the live canvas, or plotly once the run has stopped."""
    page.wait_for_function(f"() => {{ const x = ({_LIVE_X})(); return x !== null; }}", timeout=timeout * 1000)


def wait_points_above(page, n: int, timeout: float = 60) -> None:
    """Wait until the loss chart's first trace has more than ``n`` points."""
    page.wait_for_function(f"(n) => {{ const x = ({_LIVE_X})(); return !!x && x.length > n; }}",
                           arg=n, timeout=timeout * 1000)


# --------------------------------------------------------------------------- charts by widget key
def chart_selector(key: str) -> str:
    """CSS selector of the plotly chart drawn with ``st.plotly_chart(..., key=key)``."""
    return f".st-key-{key} .js-plotly-plot"


def keyed_plot(page, key: str, trace: int = 0, attr: str = "x"):
    """Trace ``trace``'s ``attr`` of the plotly chart with widget key ``key``; None while it is not drawn.

    2-D data (a heatmap's ``z``) comes back as a list of rows; NaN (the gaps of a tile grid)
    reads as None, so two reads of the same data compare equal.
    """
    return page.evaluate(
        "([sel, t, k]) => { const g = document.querySelector(sel); const d = g && g._fullData;"
        " if (!d || !d[t] || d[t][k] == null) return null;"
        " const f = v => (typeof v === 'number' && Number.isNaN(v)) ? null : v;"
        " return Array.from(d[t][k], v => (v != null && typeof v === 'object') ? Array.from(v, f) : f(v)); }",
        [chart_selector(key), trace, attr])


def keyed_trace_names(page, key: str):
    """Names of the traces of the chart with widget key ``key`` (None while it is not drawn)."""
    return page.evaluate(
        "(sel) => { const g = document.querySelector(sel);"
        " return g && g._fullData ? g._fullData.map(d => d.name) : null; }", chart_selector(key))


def wait_text(page, text: str, timeout: float = 60) -> None:
    """Wait until the page's visible text contains ``text``."""
    page.wait_for_function("(s) => document.body.innerText.includes(s)", arg=text, timeout=timeout * 1000)


def wait_chart(page, key: str, timeout: float = 60) -> None:
    """Wait until the chart with widget key ``key`` is drawn: plotly has filled in its full data."""
    page.wait_for_function(
        "(sel) => { const g = document.querySelector(sel); return !!(g && g._fullData && g._fullData.length); }",
        arg=chart_selector(key), timeout=timeout * 1000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free port with its own runs folder and job limit."""

    def __init__(self, runs_dir: Path, limit: int, log: Path, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runs_dir = Path(runs_dir)
        env = {**os.environ, "SIGNLAB_RUNS_DIR": str(runs_dir), "SIGNLAB_JOB_LIMIT": str(limit),
               "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "SIGNLAB_LEASE_SECONDS": "4", **(env or {})}
        self.log = open(log, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port",
                                      str(self.port), "--server.headless", "true", "--server.address", "127.0.0.1", *args],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.3)
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {Path(log).read_text()[-2000:]}")
        self.stop()
        raise RuntimeError("streamlit did not become healthy in 90 s")

    def kill(self) -> None:
        """SIGKILL the server's process group (workers run in sessions of their own and live on)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """End the server, then the workers it started: they run in sessions of their own, and each
        waited two minutes for a run that never came (its warm-up and polls took the cores the
        next tests needed)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        stop_workers(self.runs_dir)


def stop_workers(runs_dir: Path) -> None:
    """SIGTERM every ``python -m signlab worker`` of ``runs_dir`` (found by its command line: the
    run store might be another database than the folder's own)."""
    wanted = str(Path(runs_dir).resolve())  # as signlab.launch.worker_args writes it
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if "signlab" in args and "worker" in args and wanted in args:
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass
