"""The live loss feed: one small HTTP route the Train page's chart reads while a run trains.

Why a route of our own (issue 18, "watching must be cheap"): a Streamlit fragment that reruns to
move the chart makes the browser re-render the whole page, about 80 ms of CPU a poll on the Train
page, taken from the training beside it on a 2-core laptop (``bench/small_waits.py``). With this
feed the canvas chart (``assets/live_chart.js``) fetches the loss lines and the progress line
itself, a few kB of JSON and a few ms of drawing, and tells the page when the run's state changes;
the page's fragment then polls only every :data:`SLOW_POLL_SECONDS`, as a fallback.

The route is mounted by ``serve.py`` (``streamlit run serve.py``: an ``st.App`` around ``app.py``).
Under a plain ``streamlit run app.py`` nothing mounts it, :func:`mounted` is false and the page
polls as before. Access: a feed answers only a token that :func:`issue` handed to a session whose
user was allowed to see the run (the check is ``signlab.access``'s, in ``signlab.ui``); a token
is random, names one run, and expires.

This module imports no Streamlit: the route is plain Starlette (Streamlit's own server library).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from . import figures, views
from .errors import SignlabError
from .events import Logged, logged
from .numbers import whole_number
from .runs import Run

PATH = "/api/signlab/live-loss"
SLOW_POLL_SECONDS = 10.0  # the page's fragment with the feed: a fallback, should the chart's trigger be lost
FEED_SECONDS = 0.5  # how often the chart asks the feed (it answers "no change" cheaply)
TOKEN_SECONDS = 12 * 3600  # a token outlives any page that watches one run
RECHECK_SECONDS = 5.0  # how often a feed asks again whether its user may still see the run
MAX_TOKENS = 2000  # a classroom of open tabs; the oldest goes first

_mounted = False


@dataclass
class _Feed:
    run: Run
    created: float
    allowed: Callable[[], bool]  # whether the user it was issued to may still see the run
    checked: float  # when ``allowed`` was last asked
    target_epochs: int | None  # read once from the run's settings; the store's row has it after a continue
    offset: int = 0  # bytes of metrics.jsonl read so far
    batches: list[dict[str, Any]] = field(default_factory=list)  # all the feed needs (views.live_status too)
    lock: threading.Lock = field(default_factory=threading.Lock)


_feeds: OrderedDict[str, _Feed] = OrderedDict()
_ended: OrderedDict[str, None] = OrderedDict()  # revoked tokens, newest last: their feed says "ended"
_feeds_lock = threading.Lock()
ENDED = {"ended": True}  # the reply to a revoked token: the chart stops asking


def mounted() -> bool:
    """Whether this server process serves the feed (``serve.py`` mounted :func:`routes`)."""
    return _mounted


def issue(run: Run, allowed: Callable[[], bool] = lambda: True) -> str:
    """A new token for ``run``'s feed. Call only after checking that the user may see the run.

    ``allowed``: asked again every :data:`RECHECK_SECONDS` while the feed is read, and the feed ends
    when it says no. A token kept answering for its twelve hours after the permission it was issued
    under was withdrawn (an instructor turning classmates' runs off), to anyone holding its URL."""
    token = secrets.token_urlsafe(18)
    try:
        target = run.config.epochs
    except SignlabError:  # unreadable settings: the progress line then uses the store's row alone
        target = None
    with _feeds_lock:
        now = time.monotonic()
        _feeds[token] = _Feed(run=run, created=now, allowed=allowed, checked=now, target_epochs=target)
        while len(_feeds) > MAX_TOKENS:
            _feeds.popitem(last=False)
    return token


def revoke(token: str) -> None:
    """End ``token``'s feed. Its next request gets :data:`ENDED`, not a 404: the page revokes a token
    as its run stops, while the chart may still ask once before the page's redraw removes it, and
    a 404 put an error in the browser's console at the end of every run."""
    with _feeds_lock:
        if _feeds.pop(token, None) is not None:
            _ended[token] = None
            while len(_ended) > MAX_TOKENS:
                _ended.popitem(last=False)


def _feed(token: str) -> _Feed | None:
    with _feeds_lock:
        feed = _feeds.get(token)
        if feed is not None and time.monotonic() - feed.created > TOKEN_SECONDS:
            del _feeds[token]
            feed = None
    return feed


def status_line(now: views.LiveStatus) -> dict[str, Any]:
    """What the chart draws above itself and watches for a state change: ``state``, ``kind``,
    ``text`` and ``progress`` (0..1 or None) of a live status. The page's first frame and every
    feed reply carry the same shape."""
    return {"state": now.state, "kind": now.kind, "text": now.message, "progress": now.progress}


def answer(token: str, version: int | None = None) -> dict[str, Any] | None:
    """The feed's reply: :data:`ENDED` for a revoked token, None for an unknown or expired one.

    ``v``: bytes of the log read (the client's ``version`` for next time); ``status``: the run's
    state and its progress line, as the page shows them (``views.live_status``): ``state``,
    ``kind``, ``text``, ``progress`` (0..1 or None); ``spec`` (``figures.live_loss_spec``): the
    loss lines, only when the log grew past ``version``. A run deleted since the token was issued
    ends its feed (:data:`ENDED` from then on).
    """
    feed = _feed(token)
    if feed is None:
        with _feeds_lock:
            return ENDED if token in _ended else None
    with feed.lock:  # two tabs on one token: read each line once
        if not feed.run.dir.is_dir() or not _still_allowed(feed):  # deleted, or no longer this user's to see
            revoke(token)
            return ENDED
        try:
            new, feed.offset = feed.run.read_metrics(feed.offset)
            status = feed.run.status()
        except (SignlabError, OSError):  # deleted while being read
            revoke(token)
            return ENDED
        feed.batches.extend(logged(new, Logged.BATCH))
        now = views.live_status(status, feed.batches, target_epochs=feed.target_epochs)
        reply: dict[str, Any] = {"v": feed.offset, "status": status_line(now)}
        if version is None or feed.offset != version:
            reply["spec"] = figures.live_loss_spec(views.continued_steps(feed.batches))
    return reply


def _still_allowed(feed: _Feed) -> bool:
    """Whether the feed's user may still see its run, asked at most every :data:`RECHECK_SECONDS`."""
    if time.monotonic() - feed.checked < RECHECK_SECONDS:
        return True
    feed.checked = time.monotonic()
    try:
        return bool(feed.allowed())
    except (SignlabError, OSError):  # the class settings unreadable for a moment: asked again next time
        return True


async def _endpoint(request: Any) -> Any:
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response

    token = request.query_params.get("token", "")
    raw = request.query_params.get("v")
    version = whole_number(raw, 18) if raw is not None else None
    reply = await run_in_threadpool(answer, token, version)  # file reads stay off the event loop
    if reply is None:
        return Response("unknown or expired feed", status_code=404, media_type="text/plain")
    return JSONResponse(reply, headers={"Cache-Control": "no-store"})


def routes() -> list[Any]:
    """The feed's route, for ``st.App(routes=...)``; mounting it makes :func:`mounted` true."""
    from starlette.routing import Route

    global _mounted
    _mounted = True
    return [Route(PATH, _endpoint, methods=["GET"])]
