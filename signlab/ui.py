"""The one module of signlab that imports Streamlit: session-state keys, caching and small widgets.

Pages call these helpers and the rest of the package; nothing else in ``signlab/`` knows about
Streamlit. What is read-only and shared (the dataset, loaded models, evaluations, the job
manager) is cached per process with ``st.cache_resource``; what belongs to one user lives in
``st.session_state`` under the keys of :class:`Keys`.
"""
from __future__ import annotations

import functools
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import streamlit as st

from . import access, compare, device, envnum, figures, live, trial, views
from . import sweep as _sweep
from .access import Policy, User
from .policy import check_environment, check_names
from .config import DEFAULT_PRESET, Setting, TrainConfig
from .data import TEST_ROWS, Dataset, load_dataset
from .data import mean_images as _mean_images
from .device import check_device, device_description
from .embedding import METHOD_WORDS, cached_map, measured_tsne_seconds, run_map
from .errors import ConfigError, RunError, SignlabError
from .events import Logged, logged
from .evaluate import Evaluation, evaluate_model
from .compare import preferred_run
from .health import health_records, health_series
from .jobs import JobManager
from .launch import cpu_share
from .numbers import finite
from .paths import default_runs_dir, runs_dir_problem
from .preprocess import load_gray
from .runs import Run, unique_name
from .settings import PAGE_SETTINGS, link_values, page_values
from .store import ACTIVE, RunState, check_named_database
from .teach import DEAD_LOGITS_CAPTION, DEAD_RELU_CAPTION, HEALTH_CAPTION, live_hint

if TYPE_CHECKING:  # annotations only
    import numpy as np
    import torch

    from .embedding import FeatureMap

CLASSIFY_TABS = ("✏️ Draw", "📁 Upload", "📷 Camera")  # Classify's tabs: their labels are their state


class Keys:
    """Session-state keys, in one place so pages never collide."""

    TRAIN_RUN = "train_run_id"  # the run the Train page follows
    TRAIN_ELSEWHERE = "train_elsewhere_id"  # the run it showed, started in another tab (run_started_elsewhere)
    EVAL_RUN = "eval_run_id"  # shared by Evaluate, Kernels, Map, Classify and Calibrate: the run looked at
    CLASSIFY_SOURCE = "classify_source"  # Classify's open tab (its st.tabs key)
    # Classify's open tab and last upload, kept beyond the widgets: Streamlit drops a widget's state when
    # its page (or its tab) is left, and the page came back on Draw with the photo gone
    CLASSIFY_LAST_TAB = "classify_last_tab"
    CLASSIFY_LAST_UPLOAD = "classify_last_upload"  # (file name, bytes)
    CLASSIFY_IMAGE = "classify_image"  # which image the crop was found for: a new one gets its own
    CLASSIFY_HAND = "classify_hand"  # the detector's hand in that image (None: none found)
    CLASSIFY_WHOLE = "classify_whole"  # why that image is read whole, not searched for a hand (None: it was)
    CLASSIFY_DEFAULT_CROP = "classify_default_crop"  # the crop the detector chose, where Reset goes back to
    DATA_SEED = "data_seed"  # reshuffle counter of the Data page
    CONFIRM_DELETE = "runs_confirm_delete"
    CANVAS_VERSION = "classify_canvas_version"  # bumping it clears the canvas
    GUIDE_STEP = "guide_step"
    # where the next rerun scrolls the page: its top (the tour's Next kept the old step's scroll) or a
    # keyed container (Train's Start: the live run under the page's introduction)
    SCROLL_TO = "scroll_to"
    SCROLL_COUNT = "scroll_count"  # how often it has, so that each time's script differs
    TOUR_AWAY = "tour_away"  # the tour step that opened another page (a way back is shown there)
    SWEEP = "sweep_id"
    METRICS = "metrics_cache"  # {run_id: (byte offset, records)}: a polling page reads only new lines
    USER = "signed_in_user"  # the User this session acts as (set by require_user)
    DECODED = "decoded_photo"  # {sha256: (grey image, notes)}: the upload, decoded once
    LOOKED_MAP = "looked_map"  # {(run, layer, method, weights' time): map}: a map of someone else's run, kept here
    CALIBRATE_RUN = "calibrate_run_id"  # the run the Calibrate page adapts
    CALIBRATION_PHOTOS = "calibration_photos"  # photos collected on the Calibrate page, until saved in a run
    CALIBRATION_RESULT = "calibration_result"  # the record of the last calibration (the new run)
    CALIBRATION_INPUT = "calibration_input_version"  # bumping it empties the uploader and the camera
    DETAILS_DRAWN = "live_details_drawn"  # the run whose epoch and health charts the user asked for while it trains
    LIVE_FEEDS = "live_feed_tokens"  # {run_id: token} of signlab.live's loss feed, issued to this session
    RUNS_COMPARE = "runs_compare"  # the runs Runs overlays (its multiselect); set by the Runs brush and Sweeps
    RUNS_COLORS = "runs_colors"  # {run id: colour number} of the runs Runs overlays, kept while picked
    # the pages' own keys (not a widget's), here too, so no two pages collide
    RUNS_MANAGE = "runs_manage_id"  # the run of Runs' "Manage a run" section
    RUNS_FLASH = "runs_flash"  # what an action on Runs did, said after its rerun
    RUNS_WARN = "runs_warn"  # a warning said where the click was, after its rerun
    RUNS_SETTINGS_SAVED = "runs_settings_saved"  # what an instructor's click in the class settings did
    EVAL_PAIR = "eval_pair"  # Evaluate's chosen (true, predicted) cell, kept across pages
    EVAL_PAIR_RUN = "eval_pair_run"  # the run that cell was chosen for (a new run starts on its worst mistake)
    MAP_BOX_HIDDEN = "map_box_hidden"  # the Map's last rerun stopped before the image box (at the t-SNE prompt)
    MAP_SEEN = "map_seen_selection"  # the last selection acted on, so a rerun does not undo a typed number
    CLASSIFY_START_N = "classify_start_n"  # "Another image": which dataset image of the letter the canvas starts on
    KERNELS_SEED = "kernels_seed"  # the Kernels page's last random test image draw
    CALIBRATE_ERRORS = "calibrate_errors"  # photos the Calibrate page could not use, said after the rerun
    SWEEP_GO_RUNS = "sweep_go_runs"  # set by "Compare their curves" (a callback, which cannot switch pages itself)


def runs_dir() -> Path:
    return default_runs_dir()


# ----------------------------------------------------------------------------- sign-in
def auth_mode() -> str:
    """How users sign in: ``oidc`` when ``[auth]`` is set in ``.streamlit/secrets.toml`` (st.login),
    ``proxy`` when ``SIGNLAB_TRUSTED_USER_HEADER`` names a header a reverse proxy sets, else ``none``
    (one user on their own machine: no sign-in screen)."""
    try:
        if "auth" in st.secrets:
            return "oidc"
    except Exception:  # noqa: BLE001 - no secrets file at all
        pass
    return "proxy" if os.environ.get("SIGNLAB_TRUSTED_USER_HEADER") else "none"


def _server_settings() -> dict[str, Any]:
    try:
        return dict(st.secrets.get("signlab", {}))
    except Exception:  # noqa: BLE001 - no secrets file
        return {}


def server_problem() -> str | None:
    """What is wrong with the server's settings, else None: the numbers every command checks first
    (:func:`signlab.envnum.check`), the class settings in the environment
    (:func:`signlab.policy.check_environment`) and in the secrets' ``[signlab]`` table (its names
    too: :func:`signlab.policy.check_names`), and the
    folder of a SQLite database ``SIGNLAB_DB`` names (:func:`signlab.store.check_named_database`). With
    ``SIGNLAB_JOB_LIMIT=0`` the pages said nothing, Start queued runs, and every worker the server
    started exited 2 with the reason in ``workers.log`` alone, a new one every few seconds; a quota
    of -3 put a traceback on every page."""
    if problem := runs_dir_problem():  # a file there: every page said "…/signlab.db: cannot write"
        return problem
    try:
        envnum.check()
        check_environment()
        check_named_database()
        in_secrets, named = _server_settings(), lambda k: f"[signlab] {k} in secrets.toml"
        check_names(in_secrets, named=named)
        access.Policy().with_changes(in_secrets, named=named)
    except SignlabError as err:
        return str(err)
    return None


def policy() -> Policy:
    """The class settings (defaults, secrets' ``[signlab]``, environment, an instructor's changes)."""
    return access.policy(runs_dir(), _server_settings())


def signed_in() -> bool:
    """Whether this request comes from a signed-in user (always, without sign-in)."""
    mode = auth_mode()
    if mode == "oidc":
        return bool(st.user.is_logged_in)
    if mode == "proxy":
        return bool((st.context.headers.get(os.environ["SIGNLAB_TRUSTED_USER_HEADER"]) or "").strip())
    return True


def require_user() -> User:
    """The signed-in user; a visitor who is not signed in sees only the sign-in screen (app.py calls
    this before any page runs, so no page is reached signed out)."""
    mode = auth_mode()
    if mode == "none":
        user = access.local_user()
    elif mode == "proxy":
        header = os.environ["SIGNLAB_TRUSTED_USER_HEADER"]
        uid = (st.context.headers.get(header) or "").strip()
        if not uid:
            st.error(f"signlab is set up to trust the {header} header from a sign-in proxy, and this request "
                     "came without it. Open signlab through your school's sign-in page.", icon="🔒")
            st.stop()
        user = access.user_for(uid, policy())
    else:
        if not st.user.is_logged_in:
            st.title("✋ signlab")
            st.markdown("Sign in to train models, watch them learn and classify your own signs. Your runs "
                        "are yours: classmates cannot stop, rename or delete them.")
            if st.button("Sign in", type="primary", icon="🔑"):
                st.login()
            st.stop()
        user = access.user_for(access.sign_in_id(st.user), policy(), name=str(st.user.get("name") or ""))
    st.session_state[Keys.USER] = user
    return user


def user() -> User:
    """The User this session acts as (set by :func:`require_user` in app.py)."""
    found = st.session_state.get(Keys.USER)
    return found if isinstance(found, User) else require_user()


def account_box() -> None:
    """Who is signed in, in the sidebar, with Sign out."""
    if auth_mode() == "none":
        return
    u = user()
    st.sidebar.caption(f"Signed in as **{md(u.label)}**" + (" · instructor" if u.role == "instructor" else ""))
    if auth_mode() == "oidc" and st.sidebar.button("Sign out", key="sign_out"):
        st.logout()


md = views.md  # user text made safe for markdown (run names, link values); pages call ui.md


def data_source() -> str | None:
    """Where the pages' dataset comes from: ``SIGNLAB_DATA``, or None for the bundled copy."""
    return (os.environ.get("SIGNLAB_DATA") or "").strip() or None


@st.cache_resource(show_spinner="Loading Sign Language MNIST…")
def _dataset() -> Dataset:
    return load_dataset(data_source())


def dataset() -> Dataset:
    """The dataset (``SIGNLAB_DATA``, else the bundled copy), parsed once per process.

    A missing or malformed source stops the page with its one-line message, not a traceback.
    """
    try:
        return _dataset()
    except SignlabError as err:
        say_error("Cannot load the dataset", err)
        st.stop()


@st.cache_resource
def job_manager() -> JobManager:
    """The process's job manager; its background thread starts queued runs."""
    # SIGNLAB_LOCAL_WORKERS=0: this server only queues; workers on other machines train (a cluster)
    jm = JobManager(runs_dir(), start_workers=envnum.clamped("SIGNLAB_LOCAL_WORKERS", 1) != 0)
    jm.start_background()
    return jm


@st.cache_resource(max_entries=16, show_spinner=False)
def _model(run_dir: str, mtime: float):
    return Run(Path(run_dir)).load_model("cpu")


def load_model(run: Run) -> torch.nn.Module:
    """The run's model in eval mode, cached until its weights change."""
    return _model(str(run.dir), run.weights_mtime())


@st.cache_resource(max_entries=16, show_spinner=f"Evaluating on the {TEST_ROWS:,} test images…")
def _evaluation(run_dir: str, mtime: float) -> Evaluation:
    return evaluate_model(_model(run_dir, mtime), dataset().test)


def evaluation(run: Run) -> Evaluation:
    """The run's evaluation on the test set, cached until its weights change."""
    return _evaluation(str(run.dir), run.weights_mtime())


def runs(with_weights: bool = False) -> list[Run]:
    """The runs this session's user may see, newest first."""
    out = access.visible_runs(user(), policy(), runs_dir())
    return [r for r in out if r.has_weights()] if with_weights else out


def own_runs() -> list[Run]:
    """This user's own runs, newest first (the Guided tour's: a classmate's run ticked a step)."""
    return [r for r in runs() if is_mine(r)]


def is_mine(run: Run) -> bool:
    """Whether ``run`` is this session's user's own (or has no owner). Not :func:`can`: an instructor
    may stop every student's run, and a new Train tab took the newest student's run for theirs, Stop
    and all; the tour ticked a step on a classmate's run."""
    return run.owner in (None, user().id)


def queue() -> list[str]:
    """Every waiting run's id, the next to start first (the whole class's: a page shows a run's place)."""
    return job_manager().store.queue()


def metrics(run: Run) -> list[dict[str, Any]]:
    """The run's metric records, read incrementally: each poll reads only the lines added since the
    last one (a 200-epoch run at batch size 1 has half a million lines)."""
    cache = st.session_state.setdefault(Keys.METRICS, {})
    offset, records = cache.get(run.id, (0, []))
    new, offset = run.read_metrics(offset)
    if new:
        records = records + new
    cache.clear()  # one run followed at a time: the old ones' records are not kept around
    cache[run.id] = (offset, records)
    return records


def run_label(run: Run) -> str:
    s = run.summary()
    test, val = s.get("test_accuracy"), s.get("val_accuracy")
    # a run still training (or stopped before its test) has only a validation accuracy: named, as
    # "running, 37.4%" read as progress. Two decimals, as the Runs table: runs of the fast preset read
    # "99.7%" alike here beside 99.75% and 99.71% there
    acc_s = (f", {views.percent(test, 2)}" if isinstance(test, (int, float))
             else f", validation {views.percent(val, 2)}" if isinstance(val, (int, float)) else "")
    name = views.run_display_name(run.id, s["name"])  # "4 Dec 03:56:51" for an unnamed run, not its raw id
    # summary() reads the config defensively: a broken one gives no model and no ensemble
    model = views.model_label(s["model"], s.get("ensemble")) if s["model"] else "unreadable settings"
    kind = f" · {s['preset']}" if s.get("preset") not in (None, DEFAULT_PRESET) else ""  # the default preset goes unsaid
    # whose it is, when it is not this user's: an instructor's pickers listed a class's runs alike
    whose = someone_else(s.get("owner"))
    return f"{name} · {model}{kind} · {views.status_word(s)}{acc_s}" + (f" · {whose}" if whose else "")


def someone_else(owner: str | None) -> str | None:
    """``owner`` when it is not this session's user (an instructor looking at a student's run), else None."""
    return owner if owner and owner != user().id else None


def run_labels(available: list[Run]) -> dict[str, str]:
    """Each run's label for a picker; two runs with the same label get their ids added, since a
    selectbox tells its options apart by label (and the user could not either)."""
    labels = {r.id: run_label(r) for r in available}
    seen: dict[str, int] = {}
    for text in labels.values():
        seen[text] = seen.get(text, 0) + 1
    return {i: (f"{t} ({i})" if seen[t] > 1 else t) for i, t in labels.items()}


def run_picker(label: str = "Run", key: str = Keys.EVAL_RUN, with_weights: bool = True,
               help: str | None = None) -> Run | None:
    """A selectbox of runs (newest first) remembered across pages; None when there are none.

    It starts on the run a link names; else on the user's pick, kept across pages; else on the
    best completed run by test accuracy (:func:`preferred_run`), so a sweep's last weak trial is
    not it. A run this session trains is shown once, when it first has weights, over an earlier
    pick or the default (not over a link): it is what a student opens Evaluate or Kernels to see
    after pressing Start, even when an older run scored higher. The run shown goes into the page's
    link, so a reload (a new session) shows it again.
    """
    available = runs(with_weights)
    if not available:
        no_runs_yet(key)
        return None
    ids = [r.id for r in available]
    query = st.query_params.get("run")
    current = st.session_state.get(key)
    linked = query in ids and current is None
    if linked:
        current = query
    elif query is not None and query not in ids and current is None:  # a shared link to a run not here
        _say_link_run_missing(query)
    elif current is not None and current not in ids:  # the run picked here was deleted (another tab, Runs)
        _say_picked_run_gone(current)
        st.session_state.pop(key, None)
    trained, shown = st.session_state.get(Keys.TRAIN_RUN), _trained_shown_key(key)
    if trained in ids and st.session_state.get(shown) != trained:
        if not linked:
            current = trained
            st.session_state.pop(f"{key}_select", None)  # the selectbox takes ``index``, not its old value
        st.session_state[shown] = trained
    index = ids.index(current if current in ids else preferred_run(available, "drawing", is_mine)[0].id)
    by_id = {r.id: r for r in available}
    labels = run_labels(available)
    chosen = st.selectbox(label, ids, index=index, format_func=labels.__getitem__, help=help,
                          key=f"{key}_select")
    st.session_state[key] = chosen
    link_run(chosen)  # in the link too: a reload opened the best run instead
    return by_id[chosen]


def scroll_after_rerun(to_key: str = "") -> None:
    """The session's next rerun opens its page at the top, or with the container keyed ``to_key``
    just under the header (:func:`scroll_if_asked`). After a rerun Streamlit keeps the page's scroll:
    the tour's Next, at the foot of a long step, opened the next step 215 px below its heading and
    its **Do:** line; and Train's Start left the live chart's top at 600 px of a 1280x800 window,
    under the page's title and introduction, where only its first 200 px showed."""
    st.session_state[Keys.SCROLL_TO] = to_key  # "": the top


def scroll_if_asked(where: Any = None) -> None:
    """Scroll the page as :func:`scroll_after_rerun` asked in the run before (a script drawn in
    ``where``, the sidebar say: no gap in the page). The script carries a count, so no two asks draw
    the same text: Streamlit runs an ``st.html`` script again only when its text changes. A keyed
    container not on the page (yet) leaves the page at its top. The script runs as the sidebar is drawn,
    before the page: it finds the container where the previous run drew it (Train's row, under a
    title and introduction that do not change; something new drawn above it would shift it)."""
    to = st.session_state.pop(Keys.SCROLL_TO, None)
    if to is None:
        return
    n = st.session_state[Keys.SCROLL_COUNT] = st.session_state.get(Keys.SCROLL_COUNT, 0) + 1
    key = json.dumps(to and f".st-key-{to}")
    # the header overlays the page's top 3.75rem: the container goes just under it, not behind it; a
    # block, as every ask's script shares the page's scope (a second ``const m`` at its top would throw)
    (where or st).html(
        f"<script>/* {n} */ {{ const m = document.querySelector('[data-testid=\"stMain\"]');"
        f" const e = {key} && document.querySelector({key});"
        " const h = document.querySelector('[data-testid=\"stHeader\"]');"
        " if (m) m.scrollTo(0, e ? m.scrollTop + e.getBoundingClientRect().top"
        " - (h ? h.getBoundingClientRect().bottom : 0) - 8 : 0) }</script>",
        unsafe_allow_javascript=True)


def no_runs_yet(key: str, first: str = "No trained run yet", note: str = "") -> None:
    """A page's word where it has no run to show, and the way to Train. Not "the default takes
    seconds": on an AVX2-only CPU it took a minute; the Train page says how long on this server."""
    st.info(f"{first}. Train one on the **Train** page: it says how long a run takes on this server.{note}")
    if st.button("Go to Train", key=f"{key}_go_train", type="primary"):
        st.switch_page("app_pages/train.py")


def not_openable_text(run_id: str, subject: str = "The link's run",
                      why: str = "it was deleted, has no finished epoch yet, or belongs to someone else",
                      then: str = "; showing another run instead") -> str:
    """What a page says of a run it was asked for (by a link, or followed) that this user cannot open."""
    return (f"{subject} {md(views.run_display_name(str(run_id)[:80]))} is not one you can open here "
            f"({why}){then}.")


def _say_link_run_missing(run_id: str) -> None:
    st.warning(not_openable_text(run_id), icon="⚠️")


def run_gone_text(run_id: str, then: str = "showing another run instead") -> str:
    """What a page says when the run it showed was deleted elsewhere (another tab, the Runs page):
    the run by the name the pickers show, and its id when that differs."""
    name = views.run_display_name(str(run_id))
    shown = md(name) + ("" if name == run_id else f" ({views.code(run_id)})")
    return f"The run you were looking at, {shown}, is gone (deleted in another tab or window); {then}."


def _say_picked_run_gone(run_id: str) -> None:
    st.warning(run_gone_text(run_id), icon="⚠️")


def _trained_shown_key(key: str) -> str:
    """Where :func:`run_picker` notes the trained run it has shown once (under its own ``key``)."""
    return f"{key}_trained_shown"


def look_at(run_id: str) -> None:
    """Make ``run_id`` the run Evaluate, Kernels and Map show (a button that sends the user there):
    a pick, so :func:`run_picker` does not put the run this session trained in its place."""
    st.session_state[Keys.EVAL_RUN] = run_id
    st.session_state[_trained_shown_key(Keys.EVAL_RUN)] = st.session_state.get(Keys.TRAIN_RUN)


def look_at_best(available: list[Run]) -> None:
    """:func:`look_at` the best finished run of ``available`` by test accuracy (as the pickers start on
    it, :func:`preferred_run`): the tour's last step promises "your best model", and its Evaluate link
    opened the run looked at last (a calibrated one at 87%, beside a ConvNet at 90%)."""
    best, _ = preferred_run(available, "drawing", is_mine)
    if best is not None:
        look_at(best.id)


def map_layer_key(run_id: str) -> str:
    """The Map's layer choice for ``run_id`` (one a run: the layers differ between models)."""
    return f"map_layer_{run_id}"


def look_at_map_layer(run_id: str, layer: str) -> None:
    """Open the Map on ``layer`` of ``run_id`` (a button that sends the user there)."""
    look_at(run_id)
    st.session_state[map_layer_key(run_id)] = layer


def open_run_safe(run_id: str, action: str = "view") -> Run | None:
    """The run ``run_id`` (an id only, never a path) if this session's user may ``action`` it."""
    try:
        return access.open_for(user(), run_id, action, policy(), runs_dir())
    except SignlabError:
        return None


def say_error(what: str, err: SignlabError | str) -> None:
    """``what: <err>`` in a red box. The message may quote what the user gave (a file's name, a
    link's value), so it is drawn as text, not markdown (an upload named ``**x** www.y.com`` was bold,
    with a link)."""
    st.error(f"{what + ': ' if what else ''}{md(str(err))}", icon="⚠️")


@contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Show a SignlabError as a clear message in the page instead of a traceback."""
    try:
        yield
    except SignlabError as err:
        say_error(what, err)


def or_stop(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or, on a SignlabError, its message in the page and the page stops there."""
    try:
        return fn(*args)
    except SignlabError as err:
        say_error(what, err)
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


def way_back_to_tour(page: Any) -> None:
    """On a page the tour opened (its "Open the … page →"), a link back to that step in the sidebar,
    above the device line: a student had to find the tour again in the page list, or use Back."""
    step = st.session_state.get(Keys.TOUR_AWAY)
    if step is None:
        return
    if str(getattr(page, "url_path", "")) == "guide":  # back on the tour: the way back is done
        st.session_state.pop(Keys.TOUR_AWAY, None)
        return
    st.sidebar.page_link("app_pages/guide.py", label=f"Back to the tour, step {int(step) + 1}", icon="🧭")


def leave_tour_for(step: int, page: str) -> None:
    """The tour's step ``step`` (0-based) opens ``page``; that page's sidebar offers the way back."""
    st.session_state[Keys.TOUR_AWAY] = int(step)
    st.switch_page(page)


@st.cache_resource
def _device_text() -> str:
    return device_description()


def device_problem(cfg: Any) -> str | None:
    """Why ``cfg``'s device cannot train on this server, or None. Said before Start, not refused: a
    class's workers may run on another machine, one with the GPU (a walk chose cuda on a CPU server,
    saw no word of it, and the run failed at once). An unknown name is the settings' own error."""
    try:
        check_device(cfg.device, "Device")
    except ConfigError as err:
        return str(err)
    return None


def state(key: str, default: Any = None) -> Any:
    """Read a session-state value with a default (and store the default)."""
    if key not in st.session_state:
        st.session_state[key] = default
    return st.session_state[key]


def run_colors(picked: list[str]) -> list[int]:
    """The overlay colour number of each picked run, in ``picked``'s order: a run keeps its colour
    across reruns while it stays picked (:func:`signlab.compare.keep_colors`)."""
    colors = compare.keep_colors(picked, state(Keys.RUNS_COLORS, {}), len(figures.RUN_COLORS))
    st.session_state[Keys.RUNS_COLORS] = colors
    return [colors[run_id] for run_id in picked]


@st.cache_resource(show_spinner="Averaging the images of each letter…")
def mean_images(split: str = "train") -> np.ndarray:
    """The mean image of each letter of the ``train`` or ``test`` split: (24, 28, 28) in 0..255."""
    ds = dataset()
    return _mean_images(ds.train if split == "train" else ds.test)


def decoded_photo(data: bytes, name: str) -> tuple[str, np.ndarray, list[str]]:
    """An upload decoded to its grey image once per session (cached by the bytes' SHA-256), however
    often a crop slider moves: a 7000x7000 PNG costs seconds and hundreds of MB to decode.
    Returns ``(digest, gray, notes)``: the digest tells a new photo from the same one, and ``gray``
    and ``notes`` are :func:`signlab.preprocess.load_gray`'s."""
    import hashlib

    cache = st.session_state.setdefault(Keys.DECODED, {})
    key = hashlib.sha256(data).hexdigest()
    if key not in cache:
        decoded = load_gray(data, name)
        cache.clear()  # one photo at a time: the previous one's pixels are let go
        cache[key] = decoded
    gray, notes = cache[key]
    return key, gray, list(notes)


def choose_for_classify(run_id: str, tab: str | None = None) -> None:
    """Make ``run_id`` the Classify page's model for photos and drawings (a page that just made it
    sends the user there); ``tab``: the Classify tab to open on (a calibrated run is for photos:
    ``CLASSIFY_TABS[1]``, the upload)."""
    for purpose in ("photo", "drawing"):
        st.session_state[f"classify_run_{purpose}"] = run_id
    look_at(run_id)
    if tab is not None:
        st.session_state[Keys.CLASSIFY_SOURCE] = tab


def classify_run_picker(label: str = "Model", purpose: str = "photo", help: str | None = None,
                        key: str | None = None) -> Run | None:
    """Like :func:`run_picker`, but it starts on the run :func:`preferred_run` picks for ``purpose``
    ("photo", "drawing" or "calibrate"), says why, and remembers the user's choice for each purpose apart
    (and for each page that passes its own ``key``)."""
    available = runs(with_weights=True)
    if purpose == "calibrate":  # a classmate's run (shown read-only) is not theirs to copy
        me, pol = user(), policy()  # read once: the class settings are a database read
        available = [r for r in available if access.can(me, r, "calibrate", pol)]
    if not available:
        if purpose == "calibrate":  # a classmate's runs may be listed on Runs: none of them is the user's to adapt
            no_runs_yet("classify", "No trained run of yours yet")
        else:
            no_runs_yet("classify", note=" For photos, the **robust** preset does best.")
        return None
    ids = [r.id for r in available]
    by_id = {r.id: r for r in available}
    default, why = preferred_run(available, purpose, is_mine)
    key = f"{key}_classify_select" if key else f"classify_run_{purpose}"
    picked = st.session_state.get(key)
    if picked not in ids:
        query = st.query_params.get("run")
        if picked is not None:  # deleted in another tab: said, as run_picker says it
            _say_picked_run_gone(picked)
        elif query is not None and query not in ids:
            _say_link_run_missing(query)
        st.session_state[key] = query if query in ids else default.id
    labels = run_labels(available)
    chosen = st.selectbox(label, ids, format_func=labels.__getitem__, help=help, key=key)
    if chosen == default.id:
        st.caption({"photo": "For photos", "drawing": "For drawings", "calibrate": "To calibrate"}[purpose]
                   + f" this page starts on **{why}**.")
    st.session_state[Keys.EVAL_RUN] = chosen
    link_run(chosen)  # a link to a run not openable here kept naming it above the run shown
    return by_id[chosen]


def tsne_seconds() -> float | None:
    """How long a t-SNE map of the test set took here, by the newest runs of every user (as the time
    estimates read them: a student whose classmates had made maps was told none had been made); None
    before the first."""
    try:
        rows = job_manager().store.rows(limit=views.SPEED_ROWS)
    except SignlabError:  # the database away: the user's own runs, as listed
        rows = [r.row or {} for r in runs()]
    return measured_tsne_seconds(rows)


def feature_map(run: Run, layer: str, method: str, slot: Any = None, expected: float | None = None
                ) -> "FeatureMap":
    """The run's map of the test set at ``layer`` by ``method`` (``signlab.embedding``), from the run
    folder's cache or computed now under a progress bar (t-SNE: 20 s to minutes), then cached there.

    ``slot`` (an ``st.empty()``) holds the progress bar: a page that always makes it keeps the same
    element positions whether or not the map was cached, so the chart after it is not remounted
    (a remounted chart forgets the point a user just clicked). ``expected``: t-SNE's seconds here
    (:func:`tsne_seconds`, read once by the page that also says it). A map of someone else's run (a
    classmate's, read-only; a student's, to an instructor) is not written into its folder: it would
    count against its owner's disk quota."""
    test = dataset().test
    hit = cached_map(run, layer, method, test)
    if hit is not None:
        return hit
    keep = is_mine(run)
    looked = st.session_state.setdefault(Keys.LOOKED_MAP, {})
    key = _looked_key(run, layer, method)
    if not keep and key in looked:  # not in its folder: kept for this session, or every rerun computed it again
        return looked[key]
    bar = (slot if slot is not None else st).progress(
        0.0, text=f"Computing the {METHOD_WORDS.get(method, method)} map…")
    try:
        fm = run_map(run, test, layer, method, model=load_model(run),
                     progress=lambda f, text: bar.progress(min(max(f, 0.0), 1.0), text=text),
                     expected=expected, keep=keep)
    finally:
        bar.empty()
    if not keep:
        looked.clear()  # one map at a time: a t-SNE map holds 7,172 rows of probabilities
        looked[key] = fm
    return fm


# A parcoords brush, reported back to Python. Streamlit's plotly_chart reports no parcoords
# selection (on_select knows points, boxes and lassos only), so this tiny custom component (v2:
# mounted in the page itself, no iframe) finds the chart by its widget key and listens to the
# ``plotly_restyle`` event plotly.js emits when a user drags a brush on an axis; it then sends every
# axis's constraint range as a one-rerun trigger value.
_BRUSH_JS = """
export default function (component) {
  const { data, setTriggerValue } = component;
  const sel = `.st-key-${data.chart_key} .js-plotly-plot`;
  const attach = () => {
    const gd = document.querySelector(sel);
    if (!gd || !gd.on || gd.__signlabBrush === data.chart_key) return;
    gd.__signlabBrush = data.chart_key;
    gd.on('plotly_restyle', (ev) => {
      const keys = ev && ev[0] ? Object.keys(ev[0]) : [];
      if (!keys.some((k) => k.includes('constraintrange'))) return;
      const dims = (gd.data && gd.data[0] && gd.data[0].dimensions) || [];
      setTriggerValue('brush', { ranges: dims.map((d) => d.constraintrange || null), labels: dims.map((d) => d.label) });
    });
  };
  attach();
  const timer = setInterval(attach, 400);  // the chart may be drawn, or redrawn, after this component
  return () => clearInterval(timer);
}
"""
_brush_component = None


def parcoords_brush(chart_key: str) -> dict[str, Any] | None:
    """Mount the brush listener for the parcoords chart drawn with ``key=chart_key``; returns
    ``{"ranges": [...], "labels": [...]}`` on the rerun right after a user brushed an axis, else None."""
    global _brush_component
    if _brush_component is None:
        _brush_component = st.components.v2.component("signlab_parcoords_brush", html="<span></span>", js=_BRUSH_JS)
    try:
        result = _brush_component(data={"chart_key": chart_key}, key=f"{chart_key}_brush_listener",
                                  on_brush_change=lambda: None, height=0)
    except Exception:  # noqa: BLE001 - without the listener the axis sliders still brush
        return None
    value = result.get("brush") if result is not None else None
    return value if isinstance(value, dict) else None


def axis_picker(rows: list[dict[str, Any]], columns: list[tuple[str, str]], key: str,
                keep: tuple[str, ...] = ("accuracy",)) -> list[tuple[str, str]]:
    """The parallel-coordinates axes the user keeps (all that compare something, at first): on a phone
    nine axes share about 225 px and their ticks touch, so a student can leave some out. The ``keep``
    axes (the accuracy, which colours the lines) always stay. Returns the columns to draw."""
    labels = [a["label"] for a in compare.axes(rows, columns) if a["key"] not in keep]
    wkey, offered = f"{key}_axes", f"{key}_axes_offered"
    if wkey in st.session_state:
        # a run deleted since can take an axis with it; one that compares something only now (a new
        # run, a sweep's new trial) is shown, as every axis is at first; those the user left out stay out
        before = st.session_state.get(offered, labels)
        st.session_state[wkey] = [v for v in st.session_state[wkey] if v in labels] + \
            [v for v in labels if v not in before]
    st.session_state[offered] = labels
    extra = {} if wkey in st.session_state else {"default": labels}
    picked = st.multiselect("Axes shown", labels, key=wkey, **extra,
                            help="Leave some out to give the rest room (on a phone four or five read well); "
                                 "the accuracy stays.")
    return [(k, label) for k, label in columns if label in picked or k in keep]


PHONE_PX = 480  # a window at most this wide is a phone's: charts fitted to it keep fonts sized for wider ones


def phone_font(key: str, text: str, px: float) -> None:
    """On a phone, the ``text`` elements (a CSS selector) inside the element keyed ``key`` at ``px``
    pixels. Plotly fits a chart to a phone's width but keeps the fonts it was given for a wider one,
    and neighbouring numbers then read together (the confusion matrix's "21 21" as "2121")."""
    st.html(f"<style>@media (max-width: {PHONE_PX}px) {{ .st-key-{key} {text} "
            f"{{ font-size: {px}px !important; }} }}</style>")


def brushable_chart(rows: list[dict[str, Any]], columns: list[tuple[str, str]], key: str) -> dict[str, Any]:
    """The Runs and Sweeps pages' parallel-coordinates chart (one line per row, coloured by its
    accuracy), with the axis picker and the brush's widgets in an expander above it. Returns the
    active brush; :func:`signlab.views.apply_brush` gives the rows inside it."""
    with st.expander("Choose and brush the axes", expanded=False):
        picked = axis_picker(rows, columns, key)
        brush = brush_controls(rows, picked, key)  # the chart's axes
    st.plotly_chart(figures.parallel_coordinates(views.brush_axes(rows, picked, brush), "accuracy"),
                    width="stretch", key=key)
    return brush


def brushed_row(inside: int, total: int, noun: str, brush: dict[str, Any]) -> Any:
    """A row that says how many rows are inside the brush, for the caller's button beside it (a row
    that wraps: as columns, a quarter of an 820-px window cut the button's words)."""
    row = st.container(horizontal=True, vertical_alignment="center", gap="small")
    row.caption(f"{inside} of {total} {noun} inside the brush ({', '.join(brush)}).")
    return row


def brush_controls(rows: list[dict[str, Any]], columns: list[tuple[str, str]], key: str) -> dict[str, Any]:
    """The parallel-coordinates brush as widgets, one per axis (a range slider over a number's values,
    pills for a category), kept in step with a brush drawn on the chart with the mouse.

    Returns the active brush (``signlab.compare``); call it before drawing the chart with
    ``st.plotly_chart(..., key=key)``, so a brush drawn on the chart moves the widgets first.
    """
    event = parcoords_brush(key)
    shown = compare.axes(rows, columns)
    moved: dict[str, tuple[Any, Any]] = {}  # sliders a brush drawn with the mouse sets
    if event is not None and [a["label"] for a in shown] == list(event.get("labels") or []):
        drawn = compare.brush_from_ranges(shown, event.get("ranges") or [])
        for a in shown:  # every axis: one the user cleared goes back to its full range
            wkey = f"{key}_axis_{a['key']}"
            if a["kind"] == "category":
                st.session_state[wkey] = drawn.get(a["key"], compare.categories(rows, a["key"]))
            else:
                values = sorted({r[a["key"]] for r in rows if finite(r.get(a["key"])) is not None})
                lo, hi = drawn.get(a["key"], (values[0], values[-1]))
                moved[wkey] = compare.snap(values, lo, hi)
    brush: dict[str, Any] = {}
    cols = st.columns(min(len(shown), 5) or 1)
    for i, a in enumerate(shown):
        wkey = f"{key}_axis_{a['key']}"
        # what the axis offered when last drawn: a control left at all of it follows the axis as it
        # grows. Kept at the old full range, a sweep's new trial with a larger learning rate fell
        # outside a brush nobody had set ("2 of 3 trials inside the brush", the best one hidden)
        was = st.session_state.get(f"{wkey}_all")
        with cols[i % len(cols)]:
            if a["kind"] == "category":
                cats = compare.categories(rows, a["key"])
                if was is not None and set(st.session_state.get(wkey) or ()) == set(was):
                    st.session_state[wkey] = cats
                st.session_state[f"{wkey}_all"] = cats
                if st.session_state.get(wkey) is not None and not set(st.session_state[wkey]) <= set(cats):
                    del st.session_state[wkey]
                extra = {} if wkey in st.session_state else {"default": cats}  # no default over a set state
                brush[a["key"]] = st.pills(a["label"], cats, selection_mode="multi", key=wkey, **extra)
            else:
                values = sorted({r[a["key"]] for r in rows if finite(r.get(a["key"])) is not None})
                if len(values) < 2:
                    st.caption(f"{a['label']}: {values[0]:g} for all")
                    continue
                full = (values[0], values[-1])
                # the slider's key has a generation: a widget of the same key kept the browser's old
                # value over a new ``value=``, and sent it back at the next rerun, so a brush nobody
                # set came back as the trials' old range ("2 of 3 trials inside the brush")
                gen = st.session_state.get(f"{wkey}_gen", 0)
                cur = st.session_state.get(f"{wkey}_{gen}")
                cur = tuple(cur) if isinstance(cur, (tuple, list)) and len(cur) == 2 and \
                    cur[0] in values and cur[1] in values else None
                want = moved.get(wkey) or (full if cur is None or cur == was else cur)
                st.session_state[f"{wkey}_all"] = full
                if want != cur:  # a new widget that starts from ``want``
                    st.session_state.pop(f"{wkey}_{gen}", None)
                    gen = st.session_state[f"{wkey}_gen"] = gen + 1
                # the value always given, a range: without it Streamlit made a one-handle slider's
                # reader, which read the browser's two ends as no value and reset the brush
                fmt = compare.distinct_format(values, a["kind"] == "log")
                brush[a["key"]] = st.select_slider(a["label"], values, value=want, key=f"{wkey}_{gen}",
                                                   format_func=fmt)
    return compare.active_brush(rows, brush)


# ----------------------------------------------------------------------------- training settings as widgets

PERSIST = "session"  # the settings' widgets keep their values across page switches (setting_input)


SETTING_PREFIX = "cfg_"
COMPARE_AT_MOST = 8  # runs one overlay draws (more lines than this are a tangle)


def setting_key(name: str) -> str:
    """The session-state key of a training setting's widget (``cfg_epochs``)."""
    return f"{SETTING_PREFIX}{name}"


def load_settings(preset_name: str) -> None:
    """Put a preset's values into the settings widgets (the Preset box's on_change)."""
    for name, value in page_values(preset_name).items():
        st.session_state[setting_key(name)] = value


def load_lecture_settings(model: str) -> None:
    """The lecture preset's values with ``model`` kept, at the lecture's epochs for it (the Train page's
    "Use the lecture's settings", beside one of the lecture's networks under another preset)."""
    load_settings("lecture")
    st.session_state[setting_key("model")] = model
    st.session_state[setting_key("epochs")] = views.LECTURE_MODEL_EPOCHS[model]


def settings_from_link() -> None:
    """First visit in this session: the settings from the URL (a shared link), else the fast preset;
    a warning names each value of the link that cannot be used and the default used instead. Later
    visits keep the session's settings (their widgets persist across pages, :func:`setting_input`)."""
    if setting_key("preset") in st.session_state:
        # Set each box's value again before its widget is drawn, so every run sends the boxes the
        # values a Start would use. Without it, a box can show its default while the session holds
        # another value when a page switch interrupts a script run (streamlit#7338): CI once saw the
        # robust preset's "Ensemble size" box hold something other than 3 for a minute after
        # Classify's "Train the robust model" had started a run of three.
        for key in [k for k in st.session_state if str(k).startswith(SETTING_PREFIX)]:
            st.session_state[key] = st.session_state[key]
        return
    values, problems = link_values({k: st.query_params.get_all(k) for k in st.query_params})
    for name, value in values.items():
        st.session_state[setting_key(name)] = value
    for problem in problems:
        st.warning(problem.message(md), icon="⚠️")


def setting_input(s: Setting, where: Any = None) -> Any:
    """The widget of one setting, declared in config.py: a toggle, a select box or a number box.

    Its value lasts the whole session (``persist_state="session"``): a student who sets 7 epochs,
    looks at Data and comes back finds 7, not the preset's value."""
    where, key = where or st, setting_key(s.name)
    if s.type is bool:
        return where.toggle(s.label, key=key, help=s.help, persist_state=PERSIST)
    allowed = s.allowed()
    if allowed is not None:
        if st.session_state.get(key) not in allowed:  # e.g. a model no longer registered: the box would fail
            st.session_state[key] = s.default
        return where.selectbox(s.label, allowed, key=key, help=s.help, format_func=s.option_text,
                               persist_state=PERSIST)
    # No min_value/max_value: a box with bounds keeps its last valid value when a student types one
    # outside them (it only turns red), so Start would train with a number the page does not show.
    # Unbounded, the typed value reaches views.page_config, whose message names the setting and its
    # range and turns Start off.
    help_text = f"{s.help.rstrip('.')} (allowed {s.allowed_text()})."
    if s.type is int:
        return where.number_input(s.label, step=int(s.step or 1), key=key, help=help_text, persist_state=PERSIST)
    # %g: 0.003 reads 0.003 and an allowed 4e-06 reads 4e-06 (a fixed "%.5f" showed it as 0.00000)
    return where.number_input(s.label, step=float(s.step or 1e-4), format="%g", key=key, help=help_text,
                              persist_state=PERSIST)


def checked_number(where: Any, label: str, lo: int, hi: int, value: int, key: str | None = None,
                   help: str | None = None, **kwargs: Any) -> tuple[int, str | None]:
    """A whole-number box with no bounds in the browser, and why its number is outside ``lo``..``hi``
    (:func:`views.box_problem`), or None: for the caller to say, and to turn its button off. A box
    with bounds keeps its last valid number when one outside them is typed (it only turns red), so a
    student who typed 0 trials and pressed Start sweep got a sweep of the 2 typed before."""
    number = where.number_input(label, value=value, step=1, key=key, help=help, **kwargs)
    return int(number), views.box_problem(label, number, lo, hi)


def setting_inputs(settings: Sequence[Setting], n_columns: int = 2) -> None:
    """The widgets of ``settings`` in their declared ``column``, a row of ``n_columns`` at a time;
    toggles and settings without a column full width below them.

    Row by row, so that on a phone, where Streamlit stacks columns, the settings keep their pairs
    (epochs, batch size, learning rate, optimizer, …): two columns made whole stacked the left one's
    six settings first, and the learning rate stood far from its optimizer and schedule."""
    boxed = [s for s in settings if s.type is not bool and s.column is not None]
    by_column = [[s for s in boxed if s.column == c] for c in range(n_columns)]
    for row in range(max(map(len, by_column), default=0)):
        cells = st.columns(n_columns)
        for c, column in enumerate(by_column):
            if row < len(column):
                setting_input(column[row], cells[c])
    # full-width choices before the toggles, so the toggles stay together at the end
    for s in sorted((s for s in settings if s not in boxed), key=lambda s: s.type is bool):
        setting_input(s, None)


def panes(left_px: int, right_min_px: int, key: str, gap: str = "large",
          right_first_when_stacked: bool = False) -> tuple[Any, Any]:
    """A ``left_px``-wide box and, beside it, a box that takes the rest of the row down to
    ``right_min_px``; in a narrower window the right box moves under the left one, full width, or
    above it with ``right_first_when_stacked``.

    ``st.columns`` keep their shares at any width (the Train page's settings third was 130 px in an
    820-px window: "Learni/ng rate"), and a fixed width on both boxes would leave a wide window's
    room unused. Streamlit's containers have no minimum width, so one CSS rule gives the right box's
    flex item one; the row already wraps. The row is a CSS container, so a container query can tell
    when the two no longer fit side by side (the sidebar's width decides that, not the window's)
    and put the right box first: on the Train page Start and the live run sat 1,400 px down an
    820-px window, under all the settings. Then a container keyed ``{key}_when_stacked`` (a link
    down to the left box, say) shows, and only then."""
    row = st.container(horizontal=True, gap=gap, key=f"{key}_row")
    left = row.container(width=left_px, key=f"{key}_left")
    right = row.container(key=f"{key}_right")
    # the right box's flex item; never wider than the row (a 390-px phone cut the Train page's buttons
    # and sentences at a 440-px minimum)
    css = f"div:has(> .st-key-{key}_right) {{ min-width: min({int(right_min_px)}px, 100%); }}"
    if right_first_when_stacked:  # hidden first: of two rules alike, the later one wins
        css += f" .st-key-{key}_when_stacked {{ display: none; }}"
        css += second_first_when_stacked(f"{key}_row", f"{key}_right", left_px + right_min_px, gap,
                                         also=f".st-key-{key}_when_stacked {{ display: block; }}")
    st.html(f"<style>{css}</style>")
    return left, right


_GAP_PX = {"small": 16, "medium": 32, "large": 64}  # st.container(gap=...): 1, 2 and 4 rem (64 px measured)


def second_first_when_stacked(row_key: str, second_key: str, boxes_px: int, gap: str = "large",
                              also: str = "") -> str:
    """CSS that puts the keyed second box of a wrapping ``st.container(horizontal=True, key=row_key)``
    first once the row is too narrow for both boxes (``boxes_px`` wide together) and the ``gap``
    beside each other. The row becomes a CSS container, so the rule follows the row's width, which
    the sidebar decides as much as the window. ``also``: more rules for that narrow row."""
    side_by_side = boxes_px + _GAP_PX.get(gap, 64)
    return (f" .st-key-{row_key} {{ container-type: inline-size; container-name: {row_key}; }}"
            f" @container {row_key} (max-width: {side_by_side - 1}px) {{ div:has(> .st-key-{second_key}) {{ order: -1; }}"
            f"{' ' + also if also else ''} }}")


def settings_in_state() -> dict[str, Any]:
    """The Train page's settings as its widgets hold them, and ``preset``."""
    return {name: st.session_state[setting_key(name)] for name in (*(s.name for s in PAGE_SETTINGS), "preset")}


# ----------------------------------------------------------------------------- live runs (issue 17)
# The live view of one run, shared by the Train page and the guided tour: the text comes from
# signlab.views, only the widgets are drawn here.

POLL_SECONDS = 0.8  # >= 1 chart update a second, render time included, when the page itself moves the chart


def _fed(view: "views.LiveStatus") -> bool:
    """Whether the chart reads the loss feed itself (``signlab.live``, mounted by ``serve.py``)
    and draws the progress line: while the run holds a slot."""
    return live.mounted() and view.kind == "progress"


def poll_seconds(view: "views.LiveStatus") -> float:
    """How often a live run's fragment reruns: slowly while the chart reads the loss feed itself
    (:func:`_fed`), else fast enough to move the chart and to see a queued run start."""
    return live.SLOW_POLL_SECONDS if _fed(view) else POLL_SECONDS


@functools.cache
def _live_chart_component() -> Any:
    # registered once per process, not on every poll
    js = (Path(__file__).parent / "assets" / "live_chart.js").read_text(encoding="utf-8")
    return st.components.v2.component("signlab_live_chart", js=js, isolate_styles=False)


def _feed_url(run: Run) -> str | None:
    """This session's URL of ``run``'s loss feed, or None when the server has no feed. The caller
    has already opened ``run`` as this user (``open_run_safe``): the token is the permission."""
    if not live.mounted():
        return None
    tokens = st.session_state.setdefault(Keys.LIVE_FEEDS, {})
    if run.id not in tokens:
        _drop_feeds()  # one run followed at a time
        me, root, settings = user(), runs_dir(), _server_settings()  # read here: the feed's thread has no session
        tokens[run.id] = live.issue(run, lambda: access.can(me, run, "view", access.policy(root, settings)))
    return f"{live.PATH}?token={tokens[run.id]}"


def _drop_feeds() -> None:
    """Revoke this session's feed tokens: the server then forgets the lines it kept for them."""
    tokens = st.session_state.get(Keys.LIVE_FEEDS) or {}
    for token in tokens.values():
        live.revoke(token)
    tokens.clear()


def live_chart(batches: list[dict[str, Any]], key: str, run: Run, now: "views.LiveStatus") -> None:
    """Draw the loss chart (``figures.live_loss_spec``) on a canvas that redraws in place.

    The polling view's chart: each poll costs the browser a few milliseconds instead of a whole
    plotly redraw, and the server no plotly figure. With a server that mounts ``signlab.live``,
    the canvas fetches new points and the progress line (``now``, drawn above the chart) itself
    every ``live.FEED_SECONDS`` and asks for a rerun when the run's state changes, so the page's
    fragment polls only as a fallback (:func:`poll_seconds`). The lines are those of
    ``figures.loss_curve``, which the page draws with plotly's hover and zoom once the run stops.
    """
    data: dict[str, Any] = {**figures.live_loss_spec(batches), "run": run.id}
    feed = _feed_url(run)
    if feed:
        data.update(feed=feed, feedMs=int(1000 * live.FEED_SECONDS), status=live.status_line(now))
    # "moved": the feed saw the run's state change; the rerun it starts redraws the page for it
    _live_chart_component()(data=data, key=key, on_moved_change=_ignore)


def _ignore() -> None:
    """A component trigger's callback when the rerun it causes is all that is wanted."""


def start_refusals(cfg: TrainConfig | None = None) -> tuple[str, str]:
    """Why this user may not start a run now: (their quota of runs at a time, the most runs they may
    keep or ``cfg``'s memory), "" where nothing stops them (:func:`signlab.access.start_refusals`)."""
    try:
        return access.start_refusals(user(), policy(), runs_dir(), cfg)
    except SignlabError:  # the database away: the click on Start will say so
        return "", ""


def live_view(run: Run | None, jm: JobManager, mine: bool, elsewhere: bool = False,
              start_refused: str = "", new_refused: str = "") -> "views.LiveStatus":
    """The live status of ``run`` now (an empty one without a run); ``elsewhere``: a run this
    session did not start or open, found as the user's active run; ``start_refused`` and
    ``new_refused``: :func:`start_refusals`, read by the page that has Start."""
    if run is None:
        return views.live_status({}, [], start_refused=start_refused, new_refused=new_refused)
    status, cfg = run.status(), run.config
    return views.live_status(status, metrics(run), mine=mine, job_limit=jm.limit, has_weights=run.continuable(),
                             queue_position=jm.queue_position(run) if status.get("status") == RunState.QUEUED
                             else None, target_epochs=cfg.epochs, elsewhere=elsewhere,
                             validated_on_test=cfg.val_fraction == 0, shifted=cfg.tta,
                             start_refused=start_refused, new_refused=new_refused)


def run_started_elsewhere(available: list[Run]) -> Run | None:
    """For a Train page that follows no run: this user's run still training (or queued), started in
    another tab or session, else the one this session last showed so. When that run ended, the
    page went back to "Press Start" with no result, while the tab that started it showed the
    outcome."""
    run = views.my_active_run(available, is_mine)
    if run is not None:
        st.session_state[Keys.TRAIN_ELSEWHERE] = run.id
        return run
    seen = st.session_state.get(Keys.TRAIN_ELSEWHERE)
    return open_run_safe(seen) if seen else None


def follow_run(run_id: str) -> None:
    """The Train page follows ``run_id`` from now on (and its link says so)."""
    st.session_state[Keys.TRAIN_RUN] = run_id
    link_run(run_id)


def show_in_train(run_id: str) -> None:
    """The Train page shows ``run_id`` when it opens next (the Runs page's "Open in Train": a teacher
    could reach an earlier run's loss, health charts and Replay only by typing ``?run=`` into the
    address). Not :func:`follow_run`: its link would name the run on the page the button is on."""
    st.session_state[Keys.TRAIN_RUN] = run_id


def link_run(run_id: str) -> None:
    """Put ``run_id`` in the page's link unless it is there. The Train page calls this on every run,
    not only at Start: a query parameter set just before ``st.rerun()`` can be lost when the rerun's
    request carries the browser's older query string (streamlit#7961; seen once in CI with four
    sessions starting at once), and the link would then name no run until the page was reopened."""
    if st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id


def pause_or_resume(run: Run, paused: bool) -> None:
    (access.resume if paused else access.pause)(user(), run.id, policy(), runs_dir())


def speed_rows(available: list[Run] | None = None, alone: bool = False) -> list[dict[str, Any]]:
    """Runs as rows with their measured speed, for :func:`views.time_estimate`: the newest completed
    runs of everyone on the server, one query (their rows keep the batch size and width the
    estimates match on), and ``available``, runs the page already listed, whose summaries read
    those from the settings of runs made before the rows kept them (:func:`views.server_speed_rows`).
    No listing of its own: that is a query and a folder scan, for what the one query holds. ``alone``:
    ``available`` only (the tour's "again" reads the user's own run of the step)."""
    mine = [{**r.summary(), **{k: (r.row or {}).get(k) for k in ("samples_per_second", "overhead_per_epoch", "overhead_fixed")}}
            for r in available or ()]
    if alone:
        return mine
    try:
        everyone = job_manager().store.rows(states=list(views.SPEED_STATES), limit=views.SPEED_ROWS)
    except SignlabError:  # the database away: the runs the page listed still estimate
        everyone = []
    return views.server_speed_rows(mine, everyone)


def time_estimate(cfg: Any, available: list[Run] | None = None, alone: bool = False,
                  timing: bool | str = True) -> str:
    """:func:`views.time_estimate` for ``cfg`` on this server now: every user's measured speeds
    (:func:`speed_rows`), and the runs that hold its slots (they share the cores) or wait for one.
    For a network this server has not trained, a few of its steps are timed (a child process of 2-8
    s, once an hour a configuration; :func:`trial_for`). ``timing`` ``"background"``: an aside, which
    must not hold a page up (Classify's first look stood blank for 3 s while the robust preset it
    mentions was timed), and makes no guess (one was 3 times too short): a timing already made, else
    one started in the background while the words say so (:func:`trials_timing`); with ``timing``
    False only a timing already made."""
    jm = job_manager()
    try:
        cap = jm.store.capacity()
        load = dict(busy=cap.holding, slots=jm.limit, waiting=cap.waiting)
    except SignlabError:  # the database cannot say: the speed alone
        load = {}
    busy_now = _machine_load()  # other work on the machine slows a run as much as a run beside it
    if busy_now is not None:
        load.update(machine_load=busy_now, cores=os.cpu_count())
    rows, n_train = speed_rows(available, alone), len(dataset().train)
    load["trial"] = trial_for(cfg, rows, busy=bool(load.get("busy")), timing=timing)
    # and no guess from another network: the robust preset guessed from a ConvNet read 51 s, and took 146 s
    return views.time_estimate(cfg, rows, n_train, guess=timing is True,
                               timing_now=load["trial"] is None and _timing(cfg, bool(load.get("busy"))), **load)


def trial_for(cfg: TrainConfig, rows: list[dict[str, Any]], busy: bool = False,
              timing: bool | str = True) -> float | None:
    """The images a second a few steps of ``cfg`` train at (:func:`_trial_speed`), when the server's
    measured ``rows`` have no speed of its network (a guess from another network comes after a
    trial: :func:`views.estimate`); else None (no trial). ``busy``: runs train on the server now; a
    trial timed beside them reads slower, so it is kept apart from a quiet one. ``timing`` False: only
    a trial this server timed within the hour (:data:`_TRIALS`), else None; ``"background"``: that, or
    None while a thread times it (once: :func:`trials_timing` says while it does)."""
    if views.measured_speed(rows, cfg) is not None:
        return None
    key = (trial.trial_key(cfg), busy)
    with _TRIALS_LOCK:
        kept = _TRIALS.get(key)
        if (kept is None or time.monotonic() - kept[0] >= TRIAL_TTL) and timing == "background" \
                and key not in _TIMING:
            _TIMING.add(key)
            threading.Thread(target=_time_and_keep, args=(key,), name="signlab-trial", daemon=True).start()
    if kept is not None and time.monotonic() - kept[0] < TRIAL_TTL:
        return kept[1]
    if timing is not True:
        return None
    # a toast, not a cache's spinner: that one is drawn over the element under the estimate (the
    # tour's "Open the Map page" button, half hidden while the lecture ConvNet was timed)
    st.toast("Timing a few steps of this network on this machine…", icon="⏱️")
    return _time_and_keep(key)


def _time_and_keep(key: tuple[str, bool]) -> float | None:
    """Time the settings ``key`` (:func:`_trial_speed`) and keep their speed for every session (None,
    kept as well, when the trial failed: it is not tried again within the hour)."""
    speed = None
    try:
        speed = _trial_speed(key[0])  # the key's second part, busy, only keeps the trials apart
    finally:
        with _TRIALS_LOCK:  # kept before it stops counting as timing: no moment in which neither says
            _TRIALS[key] = (time.monotonic(), speed)
            for old in list(_TRIALS)[:-TRIALS_KEPT]:  # the oldest first (dicts keep their order)
                del _TRIALS[old]
            _TIMING.discard(key)
    return speed


def _timing(cfg: TrainConfig, busy: bool) -> bool:
    with _TRIALS_LOCK:
        return (trial.trial_key(cfg), busy) in _TIMING


def trials_timing() -> bool:
    """Whether a trial started by an aside (:func:`trial_for` in the background) still runs: the
    page that shows its words polls until it is done."""
    with _TRIALS_LOCK:
        return bool(_TIMING)


_TRIAL_LOCK = threading.Lock()  # one trial at a time: two at once would share the cores and read each other's load
TRIAL_TTL, TRIALS_KEPT = 3600.0, 64  # a trial's speed is kept an hour; at most this many
# (settings, busy) -> (when it was timed, images a second): shared by every session of this server. Our
# own, not st.cache_data: the page must know whether a trial is kept before it asks (a toast while one
# runs, none for an aside), and a copy of the cache's state beside it went wrong whenever the cache
# dropped an entry early
_TRIALS: dict[tuple[str, bool], tuple[float, float | None]] = {}
_TIMING: set[tuple[str, bool]] = set()  # (settings, busy) a background thread times now (trial_for)
_TRIALS_LOCK = threading.Lock()


def _trial_speed(key: str) -> float | None:
    """:func:`signlab.trial.measure` of the settings ``key`` (:func:`signlab.trial.trial_key`), in a
    child process with the workers' share of the cores (:func:`trial_for` keeps it, apart from a
    trial timed while runs trained on the server)."""
    try:
        cfg = TrainConfig.from_dict(json.loads(key))
    except (SignlabError, ValueError, TypeError):
        return None
    with _TRIAL_LOCK:
        return trial.measure(cfg, env=cpu_share(job_manager().limit))


def sweep_time_text(model: str, trials: int, epochs: int, studies: list[dict[str, Any]],
                    limit_seconds: float | None = None) -> str:
    """:func:`views.sweep_time_text` from every user's measured speeds, and a trial of the sweep's
    base settings when none says (a first sweep of a network read only "the first trial shows").
    ``studies``: the sweeps the page listed (:func:`studies`), whose starts are measured."""
    rows = speed_rows()
    speed = trial_for(views.sweep_base_config(model), rows)
    startup, per_trial = views.sweep_overheads(rows, studies)
    return views.sweep_time_text(model, rows, len(dataset().train), trials=trials, epochs=epochs, trial=speed,
                                 machine_load=_machine_load(), cores=os.cpu_count(), limit_seconds=limit_seconds,
                                 startup=startup, per_trial=per_trial)


@st.cache_data(ttl=5, show_spinner=False)  # 50 ms of looks, and every rerun of a page with an estimate asks
def _machine_load() -> float | None:
    """:func:`signlab.device.machine_load`, looked at once every few seconds for all sessions."""
    return device.machine_load()


def open_train(run_id: str, preset_name: str) -> None:
    """Open the Train page on ``run_id`` with ``preset_name``'s settings in its panel: the panel's
    widgets are dropped, so the page loads them again from the link."""
    for key in [k for k in st.session_state if str(k).startswith(SETTING_PREFIX)]:
        del st.session_state[key]
    st.session_state[Keys.TRAIN_RUN] = run_id
    st.switch_page("app_pages/train.py", query_params={"preset": preset_name, "run": run_id})


def _draw_status(view: "views.LiveStatus") -> None:
    if view.kind == "progress":
        st.progress(view.progress or 0.0, text=view.message)
    elif view.message:
        {"info": st.info, "success": st.success, "warning": st.warning, "error": st.error}[view.kind](view.message)


def _run_details(run: Run, cfg: Any, key: str, drawn_with: RunState, asked_first: bool) -> None:
    """Under a run's loss chart: its epoch curves, its network's health and, for a run with weights,
    the next steps. ``asked_first``: it trains now, so they are drawn only when the student asks
    (``views.DETAILS_WHILE_TRAINING`` says why); a paused run draws them, as those words promise: it
    takes no CPU from training."""
    records = metrics(run)
    epochs = logged(records, Logged.EPOCH)
    # a run that ended before its first logged step (it failed at once: a device this server lacks) has
    # no chart: "The faint line is the loss…" stood under the error, describing nothing
    # (the batches are looked for last: a finished run with epochs needs no pass over its records)
    hint = live_hint(cfg, epochs) if drawn_with in ACTIVE or epochs or logged(records, Logged.BATCH) else ""
    if hint:
        st.caption(hint)
    if asked_first:
        asked = st.session_state.get(Keys.DETAILS_DRAWN) == run.id
        c1, c2 = st.columns([2, 1], vertical_alignment="center")  # [3, 1] cut "Draw them now" at 1280 px
        c1.caption(views.DETAILS_WHILE_TRAINING)
        # set in the click's callback, so the rerun it starts already shows the charts and "Redraw"
        c2.button("📈 Redraw them" if asked else "📈 Draw them now", key=f"{key}_draw_details", width="stretch",
                  on_click=st.session_state.__setitem__, args=(Keys.DETAILS_DRAWN, run.id))
        if not asked:
            return
    if epochs:
        st.plotly_chart(figures.epoch_curves(epochs, val_is_test=cfg.val_fraction == 0), width="stretch",
                        key=f"{key}_epochs")
    _health(records, cfg, key)
    # a stopped run with finished epochs has weights to look at too (it had no next step but Continue)
    if drawn_with == RunState.COMPLETED or (drawn_with == RunState.STOPPED and run.has_weights()):
        _next_steps(run)


def _health(records: list[dict[str, Any]], cfg: Any, key: str) -> None:
    """The network's health charts, from the run's logged steps (none: nothing is drawn)."""
    health = health_records(records)
    if not health:
        return
    st.markdown("**🩺 The network's health** (measured every logged step, kept with the run)")
    series = health_series(health)
    st.plotly_chart(figures.health_charts(series, labels=views.health_labels(cfg)), width="stretch",
                    key=f"{key}_health")
    st.caption(HEALTH_CAPTION + (f" {DEAD_RELU_CAPTION}" if series.get("dead") else ""))
    if series["dead_logits"] is not None:
        st.caption(f"{DEAD_LOGITS_CAPTION} Now: **{100 * series['dead_logits'][-1]:.0f}%** of the scores "
                   "are clipped.")


def _next_steps(run: Run) -> None:
    """Buttons to the pages that look at a trained run: Evaluate, Kernels, Classify."""
    c1, c2, c3 = st.columns(3)
    if c1.button("🎯 Evaluate it", width="stretch"):
        look_at(run.id)
        st.switch_page("app_pages/evaluate.py")
    if c2.button("🔬 See its kernels", width="stretch"):
        look_at(run.id)
        st.switch_page("app_pages/kernels.py")
    if c3.button("✋ Classify a sign", width="stretch"):
        choose_for_classify(run.id)
        st.switch_page("app_pages/classify.py")


def live_run(run: Run, jm: JobManager, mine: bool, view: "views.LiveStatus", compact: bool = False,
             key: str = "live") -> None:
    """A run's status, loss chart and (unless ``compact``) epoch curves, health and next steps
    (:func:`_run_details`).

    While the run is active, the status and the loss chart (a canvas, see :func:`live_chart`) poll
    every :func:`poll_seconds` (the chart faster, from its feed, when there is one); the epoch
    curves and health charts are drawn only when the user asks (``views.DETAILS_WHILE_TRAINING``
    says why). When the run's state changes from the one the page was drawn with (paused,
    resumed, continued, ended) the page reruns whole, so the buttons and the polling follow the
    current state. The polling and the still view are different fragments, so Streamlit never
    keeps the interval of the other one.
    """
    drawn_with = view.state
    polling = view.state in ACTIVE
    try:
        cfg = run.config  # read once (a file): the heading, the hint and the health legend use it
    except RunError:
        if run.dir.is_dir():
            raise
        # deleted elsewhere while this script ran (it was opened a moment before): the page stopped on
        # "this page stopped", under a Continue button for the deleted run. Drawn again, the page
        # cannot open it and says it is gone where it says so for any deleted run.
        st.rerun()
    if not compact:  # drawn once, outside the polling: every element a poll redraws costs the browser
        status = run.status()
        others = someone_else(status.get("owner"))  # an instructor watching a student's run
        st.subheader(md(views.run_heading(run.name, run.id, cfg.model, others)))
        st.caption(views.config_line(cfg, status.get("device", "")) + f" · id `{run.id}`"
                   + (f" · owner {md(others)}" if others and run.name and run.name != run.id else ""))
        if taken_up := views.taken_up_text(status):  # drawn with the page: a new state reruns it whole
            st.caption(taken_up)

    def progress() -> None:
        problem = jm.try_tick()
        now = live_view(run, jm, mine)
        if problem and now.state == RunState.QUEUED:
            st.warning(f"No training process could be started on this server: {md(problem)}. The run waits "
                       "in the queue, and starts once one can be; there is no need to press Start again.")
        # and a Resume pressed elsewhere (its instructor): still paused, waiting for a slot, the page kept
        # "press Resume" and an enabled Resume until the student clicked something
        if (now.state != drawn_with or now.awaiting_test != view.awaiting_test
                or (now.can_pause, now.can_resume) != (view.can_pause, view.can_resume)):
            st.rerun()  # full rerun: the buttons, the polling and the heading follow the new state
        # with the loss feed the canvas draws the progress line itself and keeps it moving
        fed = polling and _fed(now)
        if not fed:
            _draw_status(now)
        batches = views.continued_steps(logged(metrics(run), Logged.BATCH))
        if batches or fed:
            if polling:  # a canvas while it trains (cheap for the browser), plotly once it stops
                live_chart(batches, key=f"{key}_live_loss", run=run, now=now)
            else:
                # finished: its loss can be watched falling again (a short run ended before the first poll)
                st.plotly_chart(figures.loss_curve(batches, replay=True), width="stretch", key=f"{key}_loss")

    def details() -> None:
        _run_details(run, cfg, key, drawn_with, asked_first=polling and not view.paused)

    if not polling:
        _drop_feeds()  # the run stopped: its chart no longer asks
    if polling or view.awaiting_test:
        # the status polls while the run trains, and once a second after it completed until the
        # worker has written its test accuracy (``LiveStatus.awaiting_test``)
        every, name = (poll_seconds(view), "polling") if polling else (1.0, "awaiting")
        st.fragment(run_every=every)(_named(progress, f"{key}_{name}"))()
        if not compact:
            st.fragment(_named(details, f"{key}_details"))()  # no timer: redrawn on demand
    else:
        def still() -> None:
            progress()
            if not compact:
                details()
        st.fragment(_named(still, f"{key}_still"))()
        st.fragment(run_every=GONE_POLL_SECONDS)(_named(lambda: _rerun_when_gone(run), f"{key}_gone"))()


# how often a page showing a finished run looks whether it still exists: an instructor deleted a
# student's finished run and the student's Train page went on showing it (with Continue) until the
# next click. One indexed row read; the page reruns only when the row is gone.
GONE_POLL_SECONDS = 5.0


def _rerun_when_gone(run: Run) -> None:
    """Rerun the page once ``run``'s row has left the store (deleted elsewhere): the page then says
    so, as it does for a run deleted before it was drawn."""
    try:
        gone = not run.store.rows(run_ids=[run.id])
    except SignlabError:  # the database away for a moment: look again next time
        return
    if gone:
        st.rerun()


def follow_runs(runs: Sequence[Run], every: float = 3.0) -> None:
    """Rerun the page when one of ``runs`` that is queued, training or paused changes state (starts,
    stops, ends). The Runs page said "stops after its current batch" after a Stop and went on showing
    the run as running until something else reran it. Polls only the store's rows of those runs."""
    key = views.watch_key([r.summary() for r in runs])
    if not key:
        return
    ids = [run_id for run_id, _ in key]
    store = runs[0].store  # one folder's runs, one store

    def watch() -> None:
        try:  # their rows, one query a poll; a run gone from them (deleted) changes the key too
            now = views.watch_key(store.rows(run_ids=ids))  # rows hold run_id, status and control
        except SignlabError:  # the database away for a moment: look again next time
            return
        if now != key:
            st.rerun()
    st.fragment(run_every=every)(_named(watch, "follow_runs"))()


def _named(fn, name: str):
    """``fn`` under another name: a fragment's identity comes from its function's name."""
    fn.__name__ = fn.__qualname__ = name
    return fn


# ----------------------------------------------------------------------------- actions (issue 17)
# What a page does to runs and sweeps, as this session's user under the class's policy: each call
# goes through signlab.access, which checks the user may do it and raises a SignlabError (shown with
# :func:`guard`) when not.


def can(run: Run, action: str) -> bool:
    """Whether this session's user may ``action`` ("view", "stop", "rename", …) the run."""
    return access.can(user(), run, action, policy())


def submit(cfg: Any, name: str | None = None) -> Run:
    """Queue a training run of ``cfg`` for this session's user; a ``name`` one of their runs has is
    numbered (the tour's "Train again" made runs told apart by their ids only)."""
    if name:
        name = unique_name(name, (r.name for r in runs()))
    return access.submit(user(), cfg, policy(), job_manager(), name=name)


def stop(run_id: str) -> Any:
    return access.stop(user(), run_id, policy(), job_manager())


def start_next(run_id: str) -> int:
    return access.start_next(user(), run_id, policy(), runs_dir())


def continue_run(run_id: str, epochs: int) -> Run:
    return access.continue_run(user(), run_id, epochs, policy(), job_manager())


def rename(run_id: str, name: str) -> Run:
    return access.rename(user(), run_id, name, policy(), runs_dir())


def delete(run_id: str) -> None:
    """Delete the run (its owner's or an instructor's call), and forget it where this session kept it:
    the pages that remember a run, and a Delete still waiting to be confirmed."""
    access.delete(user(), run_id, policy(), runs_dir())
    for key in (Keys.EVAL_RUN, Keys.TRAIN_RUN, Keys.CONFIRM_DELETE):
        if st.session_state.get(key) == run_id:
            st.session_state.pop(key)


def download(run_id: str, what: str) -> bytes:
    """The bytes of the run's ``weights``, ``onnx`` or ``config`` file."""
    return access.download(user(), run_id, what, policy(), runs_dir())


def export(run_id: str) -> Path:
    """Export the run to ONNX (beside its weights)."""
    return access.export(user(), run_id, policy(), runs_dir())


def delete_photos(run_id: str) -> int:
    """Delete the photos a calibrated run keeps; returns how many."""
    return access.delete_photos(user(), run_id, policy(), runs_dir())


def save_settings(values: dict[str, Any]) -> dict[str, Any]:
    """An instructor's class settings from the form, saved for every server: only those changed from
    the values in force, which it returns ({}: nothing to save). Saving all of them (one field
    changed) froze the others, and a later SIGNLAB_MAX_… or ``[signlab]`` change was silently
    ignored. A quota comes as the text of its box, read as the class settings read it: one that reads
    as the number in force ("007" for 7) is no change, and one that reads as no number is left to the
    backend's check, which names it."""
    now = policy()

    def same(key: str, value: Any) -> bool:
        try:
            return getattr(Policy().with_changes({key: value}), key) == getattr(now, key)
        except SignlabError:
            return False

    changed = {k: v for k, v in values.items() if not same(k, v)}
    if changed:
        access.save_settings(user(), changed, runs_dir())
    return changed


def saved_settings() -> dict[str, Any]:
    """The class settings an instructor saved ({} with the database away: saving says why)."""
    try:
        return access.saved_settings(runs_dir())
    except SignlabError:
        return {}


def forget_settings() -> Policy:
    """The class follows the server's settings again (:func:`signlab.access.forget_settings`)."""
    return access.forget_settings(user(), runs_dir())


def calibrate(run: Run, photos: list[Any], method: str, progress: Any = None) -> dict[str, Any]:
    """Adapt ``run`` to the user's photos; the result is a new run of theirs (its record returned)."""
    return access.calibrate(user(), run.id, photos, policy(), runs_dir(), method=method, progress=progress)


def studies() -> list[dict[str, Any]]:
    """The sweeps' studies this session's user may see."""
    who, pol = user(), policy()  # read once, not once a study (policy reads the run database)
    return [s for s in _sweep.list_studies(runs_dir()) if access.can_study(who, s, "view", pol)]


@dataclass(frozen=True)
class SweepNow:
    """What the Sweeps page reads of a study on each poll (the study is one :func:`studies` let the
    user see): its trials, the live workers on it, whether it runs, when a stop in force was asked,
    and its log's last line while it does not run."""

    trials: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    running: bool
    stop_at: float | None
    last_log: str
    stopped_by: str | None  # who stopped it, where not its owner (an instructor)
    can_stop: bool  # this user may stop it (its owner, an instructor): a classmate sees it read-only


def sweep_now(record: dict[str, Any]) -> SweepNow:
    """Read the study of ``record`` now. Where its storage cannot be read, the page shows why and
    goes on with no trials: its workers, its Stop and its command still count."""
    study, root = record["study"], runs_dir()
    trials: list[dict[str, Any]] = []
    with guard("Cannot read the study"):
        trials = _sweep.study_trials(_sweep.recorded_storage(record.get("storage"), study, root), study, root)
    workers = _sweep.workers(study, root)
    running = _sweep.sweep_running(study, root, workers)  # one query of the store a poll, not two
    # read from the study's stop record, so every tab and every user sees the same "Stopping" and
    # "Stopped" (kept in one tab's session, another tab said "Finished" for a stopped sweep)
    stop_at = _sweep.stop_in_force(study, trials, workers, running, record, root)
    return SweepNow(trials, workers, running, stop_at, "" if running else _sweep.last_log_line(study, root),
                    _sweep.stop_requested_by(study, root) if stop_at is not None else None,
                    access.can_study(user(), record, "stop", policy()))


def start_sweep(**kwargs: Any) -> dict[str, Any]:
    return access.start_sweep(user(), policy(), runs_dir(), **kwargs)


def stop_sweep(record: dict[str, Any], force: bool = False) -> Any:
    return access.stop_sweep(user(), record, policy(), runs_dir(), force=force)


def _looked_key(run: Run, layer: str, method: str) -> tuple[str, str, str, float]:
    return (run.id, layer, method, run.weights_mtime())


def map_cached(run: Run, layer: str, method: str) -> bool:
    """Whether the run's map at ``layer`` by ``method`` is kept (no computing needed): in its folder, or
    for this session where it is someone else's run (:func:`feature_map`)."""
    return (_looked_key(run, layer, method) in st.session_state.get(Keys.LOOKED_MAP, {})
            or cached_map(run, layer, method, dataset().test) is not None)
