"""Ctrl-C in a terminal, for the commands that train (``train``, ``sweep``), and a signal handler
held for a block (``handling``: the workers' SIGTERM).

A first press asks the work to stop as the dashboard's Stop does (after the current step, its
finished epochs kept); a second one, or a first while there is nothing to stop gracefully, quits at
once with KeyboardInterrupt. Without it a Ctrl-C left the run "running" under a claim nobody held
until its lease ran out, and ``train --resume`` was refused meanwhile.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

QUIT_AGAIN = "Ctrl-C again to quit at once"


class ShutDown(KeyboardInterrupt):
    """A worker's SIGTERM: the process is shut down (an operator restarting it, systemd, docker), not
    its run stopped. The worker gives the run back to the queue to continue (``worker.run_worker``,
    ``RunStore.hand_back``); as a KeyboardInterrupt it ends the worker wherever it is."""


class TwoPresses:
    """A context manager holding SIGINT's handler. ``on_first`` is called at the first press: it asks
    the work to stop and returns what to tell the user, or None when there is nothing to stop (the
    press then quits at once)."""

    def __init__(self, on_first: Callable[[], str | None]) -> None:
        self.on_first = on_first
        self.pressed = False
        self._before: Any = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        said = self.on_first()
        if said is None:
            raise KeyboardInterrupt
        self.pressed = True
        print(f"\nsignlab: {said}; {QUIT_AGAIN}", file=sys.stderr)

    def __enter__(self) -> "TwoPresses":
        # signals reach the main thread only; a shell's background job ignores Ctrl-C, and still does
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._before = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._before is not None:
            signal.signal(signal.SIGINT, self._before)
            self._before = None


@contextmanager
def handling(signum: int, handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for ``signum`` inside the block, the one before restored however it ends (from the
    main thread only: elsewhere signals cannot be handled, and the block runs without). Installed
    before a worker registered and restored only after, a failed registration left it in place."""
    if threading.current_thread() is not threading.main_thread() or \
            (signum == signal.SIGINT and signal.getsignal(signum) is signal.SIG_IGN):
        yield  # a shell's background job ignores Ctrl-C, and still does (as TwoPresses)
        return
    before = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, before)
