"""Sign-in on a class server, in a real browser: two students and an instructor sign in through a
local OpenID Connect provider (oidc-provider-mock on loopback), as they would through a school's SSO.

* A signed-out visitor sees the sign-in screen and no page, on every address.
* Alice sees her run only; a crafted link to Bob's run opens nothing of his, and she cannot stop,
  pause, continue, rename, delete, download or export it through any page.
* The instructor sees both runs and can stop Bob's.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from _helpers import ROOT, Server, _free_port, assert_no_exception, step, wait_idle

from signlab.config import TrainConfig
from signlab.runs import create_run, open_run
from signlab.store import RunState
from tests._wait import wait_for

SHOTS = ROOT / "test-artifacts" / "screenshots"
USERS = {"alice": "alice@uni.edu", "bob": "bob@uni.edu", "teach": "teach@uni.edu"}


@pytest.fixture
def provider(tmp_path):
    """oidc-provider-mock on a free loopback port, with the three users predefined."""
    port = _free_port()
    claims = [json.dumps({"sub": e, "email": e, "name": n.capitalize()}) for n, e in USERS.items()]
    args = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)]
    for c in claims:
        args += ["--user-claims", c]
    log = open(tmp_path / "oidc.log", "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/.well-known/openid-configuration", timeout=2).read()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(f"the OIDC provider did not start: {(tmp_path / 'oidc.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


def _sign_in(browser, base: str, who: str):
    ctx = browser.new_context(viewport={"width": 1300, "height": 950})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(base + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("input", timeout=60_000)  # the provider's "Authorize Client" form
    page.locator("input").first.fill(USERS[who])
    page.get_by_role("button", name=re.compile("Authorize", re.I)).click()
    page.wait_for_url(re.compile(re.escape(base)), timeout=60_000)
    page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=f"Signed in as {who.capitalize()}",
                           timeout=60_000)
    wait_idle(page, 60)
    return ctx, page


def _open(page, url: str, expect: str | None = None) -> str:
    """The page's text once it is drawn (and shows ``expect``, when given)."""
    page.goto(url)
    page.wait_for_selector("[data-testid='stMain']", timeout=60_000)
    wait_idle(page, 60)
    if expect:
        page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=expect, timeout=60_000)
    return page.inner_text("body")


def test_students_and_an_instructor_sign_in(browser, provider, tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    tiny = TrainConfig(model="logreg", epochs=1, max_steps=2, augment=False)
    create_run(tiny, runs_dir, run_id="alice-run", name="alices first run", owner=USERS["alice"],
               status=RunState.COMPLETED)
    bob = create_run(tiny, runs_dir, run_id="bob-run", name="bobs queued run", owner=USERS["bob"])
    port = _free_port()
    base = f"http://localhost:{port}"
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'''
[auth]
redirect_uri = "{base}/oauth2callback"
cookie_secret = "a-test-cookie-secret-that-is-long-enough"
client_id = "signlab-test"
client_secret = "signlab-test-secret"
server_metadata_url = "{provider}/.well-known/openid-configuration"

[signlab]
instructors = ["{USERS['teach']}"]
''')
    server = Server(runs_dir, limit=1, log=tmp_path / "streamlit.log", port=port,
                    args=("--secrets.files", str(secrets)), env={"SIGNLAB_LOCAL_WORKERS": "0"})  # Bob's run stays queued
    page = None
    contexts = []
    try:
        anon = browser.new_context()
        contexts.append(anon)
        page = anon.new_page()
        with step(page, "a signed-out visitor reaches nothing"):
            for path in ("/", "/runs", "/train?run=bob-run", "/classify"):
                text = _open(page, base + path)
                assert "Sign in" in text, (path, text[:300])
                assert "bobs queued run" not in text and "alices first run" not in text and "All runs" not in text
        ctx, page = _sign_in(browser, base, "alice")
        contexts.append(ctx)
        with step(page, "Alice sees her own run only"):
            text = _open(page, base + "/runs", expect="id alice-run")
            assert "bobs queued run" not in text and "All runs (1)" in text, text[:3000]
            assert " · owner " not in text  # her own run: the owner is named only to someone else
            assert_no_exception(page, "Runs as Alice")
        with step(page, "a crafted link to Bob's run shows nothing of his and cannot stop it"):
            text = _open(page, base + "/train?run=bob-run", expect="Press Start to train")
            assert "bobs queued run" not in text
            stop = page.get_by_role("button", name="Stop")
            assert stop.is_disabled()
            assert open_run("bob-run", runs_dir).status()["status"] == RunState.QUEUED
            for path in ("/evaluate?run=bob-run", "/kernels?run=bob-run", "/classify?run=bob-run"):
                assert "bobs queued run" not in _open(page, base + path)
                assert_no_exception(page, path)
        ctx, page = _sign_in(browser, base, "teach")
        contexts.append(ctx)
        with step(page, "the instructor sees both runs and stops Bob's"):
            # the "Manage a run" caption ("id ... · owner ...") is drawn last: waiting for the
            # heading alone read the page before it under the full suite's load
            text = _open(page, base + "/runs", expect=" · owner ")
            assert "All runs (2)" in text and ("id bob-run" in text or "id alice-run" in text), text[:3000]
            assert "instructor" in text
            _open(page, base + "/train?run=bob-run", expect="bobs queued run")
            page.get_by_role("button", name="Stop").click()
            wait_for(lambda: bob.status()["status"] == RunState.STOPPED, 30, what="Bob's run stopped")
            assert_no_exception(page, "Train as the instructor")
    finally:
        if page is not None:
            SHOTS.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(SHOTS / "auth_instructor.png"), full_page=True)
            except Exception:  # noqa: BLE001
                pass
        for c in contexts:
            c.close()
        server.stop()
