"""The one module of signlab that imports Streamlit: session-state keys, caching and small widgets.

Pages call these helpers and the rest of the package; nothing else in ``signlab/`` knows about
Streamlit. What is read-only and shared (the dataset, loaded models, evaluations, the job
manager) is cached per process with ``st.cache_resource``; what belongs to one user lives in
``st.session_state`` under the keys of :class:`Keys`.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import streamlit as st

from .data import Dataset, load_dataset
from .errors import SignlabError
from .evaluate import Evaluation, evaluate_model
from .jobs import JobManager
from .paths import default_runs_dir
from .runs import Run, list_runs, open_run


class Keys:
    """Session-state keys, in one place so pages never collide."""

    TRAIN_RUN = "train_run_id"  # the run the Train page follows
    EVAL_RUN = "eval_run_id"  # shared by Evaluate, Kernels and Classify: the run being looked at
    DATA_SEED = "data_seed"  # reshuffle counter of the Data page
    CONFIRM_DELETE = "runs_confirm_delete"
    CANVAS_VERSION = "classify_canvas_version"  # bumping it clears the canvas
    GUIDE_STEP = "guide_step"
    SWEEP = "sweep_id"
    ROUTED = "routed"  # set by app.py: this session has been through st.navigation


def ensure_router() -> None:
    """Make sure this page runs inside ``app.py``'s ``st.navigation``; every page calls it first.

    Streamlit 1.67 treats a folder named ``pages/`` as an old-style automatic multipage app until
    the first ``st.navigation`` call of the server process. So on a freshly started server, a user
    who lands directly on ``/train`` (a shared link, a refresh) would get the page without the
    router: the raw file list as navigation, no wide layout, no device line. Switching that mode off
    and rerunning sends the same page through ``app.py``: the v1 and v2 page objects share their
    script hash, so the user stays on the page they asked for. (Private API, checked on 1.67.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get(Keys.ROUTED):  # a session app.py never ran for: route it now
            st.rerun()


def runs_dir() -> Path:
    return default_runs_dir()


@st.cache_resource(show_spinner="Loading Sign Language MNIST…")
def _dataset() -> Dataset:
    return load_dataset(os.environ.get("SIGNLAB_DATA") or None)


def dataset() -> Dataset:
    """The dataset (``SIGNLAB_DATA``, else the bundled copy), parsed once per process.

    A missing or malformed source stops the page with its one-line message, not a traceback.
    """
    try:
        return _dataset()
    except SignlabError as err:
        st.error(f"Cannot load the dataset: {err}", icon="⚠️")
        st.stop()


@st.cache_resource
def job_manager() -> JobManager:
    """The process's job manager; its background thread starts queued runs."""
    jm = JobManager(runs_dir())
    jm.start_background()
    return jm


def _mtime(run: Run) -> float:
    try:
        return (run.dir / "model.safetensors").stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=16, show_spinner=False)
def _model(run_dir: str, mtime: float):
    return Run(Path(run_dir)).load_model("cpu")


def load_model(run: Run):
    """The run's model in eval mode, cached until its weights change."""
    return _model(str(run.dir), _mtime(run))


@st.cache_resource(max_entries=16, show_spinner="Evaluating on the 7,172 test images…")
def _evaluation(run_dir: str, mtime: float) -> Evaluation:
    return evaluate_model(_model(run_dir, mtime), dataset().test)


def evaluation(run: Run) -> Evaluation:
    """The run's evaluation on the test set, cached until its weights change."""
    return _evaluation(str(run.dir), _mtime(run))


def runs(with_weights: bool = False) -> list[Run]:
    out = list_runs(runs_dir())
    return [r for r in out if r.has_weights()] if with_weights else out


def run_label(run: Run) -> str:
    s = run.summary()
    acc = s.get("test_accuracy") or s.get("val_accuracy")
    acc_s = f", {100 * acc:.1f}%" if isinstance(acc, (int, float)) else ""
    name = s["name"] if s["name"] != run.id else run.id
    members = s.get("ensemble")  # summary() reads the config defensively: a broken one gives None
    model = (s["model"] or "unreadable settings") + (f" ×{members}" if isinstance(members, int) and members > 1
                                                      else "")
    kind = f" · {s['preset']}" if s.get("preset") not in (None, "fast") else ""  # the default preset goes unsaid
    return f"{name} · {model}{kind} · {s['status']}{acc_s}"


def run_picker(label: str = "Run", key: str = Keys.EVAL_RUN, with_weights: bool = True,
               help: str | None = None, default: str = "newest") -> Run | None:
    """A selectbox of runs (newest first) remembered across pages; None when there are none.

    Until the user picks one it starts on the newest run, or with ``default="best"`` on the best
    completed run by test accuracy (:func:`preferred_run`), so a sweep's last weak trial is not it.
    """
    available = runs(with_weights)
    if not available:
        st.info("No trained run yet. Train one on the **Train** page (the default takes seconds).")
        if st.button("Go to Train", key=f"{key}_go_train"):
            st.switch_page("pages/train.py")
        return None
    ids = [r.id for r in available]
    query = st.query_params.get("run")
    current = st.session_state.get(key)
    if query in ids and current is None:
        current = query
    if current in ids:
        index = ids.index(current)
    else:
        index = ids.index(preferred_run(available, "drawing")[0].id) if default == "best" else 0
    by_id = {r.id: r for r in available}
    chosen = st.selectbox(label, ids, index=index, format_func=lambda i: run_label(by_id[i]), help=help,
                          key=f"{key}_select")
    st.session_state[key] = chosen
    return by_id[chosen]


def open_run_safe(run_id: str) -> Run | None:
    try:
        return open_run(run_id, runs_dir())
    except SignlabError:
        return None


@contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Show a SignlabError as a clear message in the page instead of a traceback."""
    try:
        yield
    except SignlabError as err:
        st.error(f"{what + ': ' if what else ''}{err}", icon="⚠️")


def or_stop(what: str, fn, *args: Any) -> Any:
    """``fn(*args)``, or, on a SignlabError, its message in the page and the page stops there."""
    try:
        return fn(*args)
    except SignlabError as err:
        st.error(f"{what}: {err}", icon="⚠️")
        st.stop()


def explain(summary: str, details: str | None = None, label: str = "How it works") -> None:
    """The two or three plain sentences at the top of a page, and the maths in a collapsible box."""
    st.markdown(summary)
    if details:
        with st.expander(label):
            st.markdown(details)


def device_badge() -> None:
    """The device in use, shown in the sidebar of every page."""
    st.sidebar.caption(f"Device: **{_device_text()}**")


@st.cache_resource
def _device_text() -> str:
    from .trainer import device_description

    return device_description()


def state(key: str, default: Any = None) -> Any:
    """Read a session-state value with a default (and store the default)."""
    if key not in st.session_state:
        st.session_state[key] = default
    return st.session_state[key]


@st.cache_resource(show_spinner="Averaging the images of each letter…")
def mean_images(split: str = "train"):
    """The mean image of each letter of the ``train`` or ``test`` split: (24, 28, 28) in 0..255."""
    from .data import mean_images as _mean_images

    ds = dataset()
    return _mean_images(ds.train if split == "train" else ds.test)


def _completed(r: Run) -> bool:
    try:
        return r.has_weights() and r.status().get("status") == "completed"
    except (SignlabError, OSError, ValueError):
        return False


def calibrated_parent(run: Run) -> str | None:
    """The run a calibrated run was adapted from (its ``calibration.json`` or config names a parent), else None."""
    for name in ("calibration.json", "config.json"):
        try:
            parent = json.loads((run.dir / name).read_text()).get("parent")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(parent, str) and parent:
            return parent
    return None


def preferred_photo_run(available: list[Run]) -> Run | None:
    """The run to use on photos by default: the newest completed calibrated run (adapted to the
    user's own photos), else the newest completed run of the ``robust`` preset, else the newest run
    with weights (``available`` is newest first, as :func:`runs` lists them)."""
    return preferred_run(available, "photo")[0]


def _accuracy(r: Run) -> float:
    acc = r.summary().get("test_accuracy")
    return float(acc) if isinstance(acc, (int, float)) else -1.0


def preferred_run(available: list[Run], purpose: str) -> tuple[Run | None, str]:
    """The default run for ``purpose`` ("photo" or "drawing") and, in words, why it was chosen.

    Photos: the newest completed calibrated run, else the newest completed ``robust`` run (trained
    for photos), else the user's best run. Drawings: the best completed run by test accuracy (ties:
    the newest), so a weak sweep trial that happens to be newest is not the default.
    """
    if not available:
        return None, ""
    done = [r for r in available if _completed(r)]
    if purpose == "photo":
        for r in done:
            if calibrated_parent(r):
                return r, "the newest calibrated run, adapted to your own photos"
        for r in done:
            try:
                if r.config.preset == "robust":
                    return r, "the newest run of the robust preset, which is trained for photos"
            except SignlabError:
                continue
    pool = done or available
    best = max(pool, key=lambda r: (_accuracy(r), -pool.index(r)))
    if _accuracy(best) < 0:
        return available[0], "the newest run"
    return best, "your best run by test accuracy"


def classify_run_picker(label: str = "Model", purpose: str = "photo", help: str | None = None) -> Run | None:
    """Like :func:`run_picker`, but it starts on the run :func:`preferred_run` picks for ``purpose``
    ("photo" or "drawing"), says why, and remembers the user's choice for each purpose apart."""
    available = runs(with_weights=True)
    if not available:
        st.info("No trained run yet. Train one on the **Train** page (the default takes seconds; the "
                "**robust** preset does best on photos).")
        if st.button("Go to Train", key="classify_go_train"):
            st.switch_page("pages/train.py")
        return None
    ids = [r.id for r in available]
    by_id = {r.id: r for r in available}
    default, why = preferred_run(available, purpose)
    key = f"classify_run_{purpose}"
    if st.session_state.get(key) not in ids:
        query = st.query_params.get("run")
        st.session_state[key] = query if query in ids else default.id
    chosen = st.selectbox(label, ids, format_func=lambda i: run_label(by_id[i]), help=help, key=key)
    if chosen == default.id:
        st.caption(f"For {'photos' if purpose == 'photo' else 'drawings'} this page starts on **{why}**.")
    st.session_state[Keys.EVAL_RUN] = chosen
    return by_id[chosen]


