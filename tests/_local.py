"""Small helpers the tests share: a loopback HTTP server thread, and AppTest assertions."""
from __future__ import annotations

import http.server
import re
import threading

import pytest


class LocalHTTPServer:
    """``handler`` served on 127.0.0.1 in a thread, for ``with``; ``url`` ends with '/'."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def unescape_md(source: str) -> str:
    """Markdown source with its backslash escapes read: the text a renderer's later passes (remark-gfm's
    bare links) see."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", source)


def read_md(source: str) -> str:
    """What a markdown element's source (an AppTest element's ``value``) reads as on the page: its
    escapes read and the invisible word joiners (``signlab.numbers.md``) gone."""
    return unescape_md(source).replace("\u2060", "")


def no_error(at) -> None:
    """An AppTest run that shows neither an exception nor an error."""
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def by_label(widgets, label: str):
    """The first widget labelled ``label`` (a clear failure naming the labels there are)."""
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r}: {[w.label for w in widgets]}"
    return found[0]


def accuracy_on_test(model, dataset, views: bool = True) -> float:
    """``model``'s accuracy on the dataset's 7,172 test images; ``views=False``: without its
    test-time shifts (``signlab.predict.predict_logits``)."""
    import torch

    from signlab.predict import predict_logits, to_float_images

    x, y = to_float_images(dataset.test.images), torch.as_tensor(dataset.test.targets)
    return (predict_logits(model, x, views=views).argmax(1) == y).float().mean().item()


def optional(module: str):
    """Import ``module``, a pinned requirement the setup installs; skip the caller's tests without it,
    except in CI (``CI`` set), where its absence is a broken install and fails them."""
    import importlib
    import os

    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def hand_models_or_skip() -> None:
    """Skip unless the hand detector runs here (ai-edge-litert and the shipped models); in CI fail."""
    import os

    from signlab import hands

    if not hands.available():
        if os.environ.get("CI"):
            pytest.fail("the hand detector cannot run: ai-edge-litert or signlab/assets/hands is missing")
        pytest.skip("ai-edge-litert or the hand models are missing")


# the tests that need the hand detector: the ``hand_models`` fixture (tests/conftest.py) skips them
# without it, or in CI fails them with what is missing (hand_models_or_skip)
needs_hand_models = pytest.mark.usefixtures("hand_models")
