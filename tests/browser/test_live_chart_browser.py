"""The live loss chart's drawing code (``signlab/assets/live_chart.js``) on the cases that broke it.

The module is loaded into a blank Chromium page and called as Streamlit calls a v2 component,
``fn({data, parentElement})``, with specs made by ``figures.live_loss_spec`` from batch records. Each
call must finish (an earlier version looped forever on values equal but for rounding), count the
first trace's points, and put ink in the plot area.
"""
from __future__ import annotations

import json
import math

import pytest

from signlab import figures

JS = (figures.__file__.rsplit("/", 1)[0]) + "/assets/live_chart.js"

_LOAD = """async (src) => {
  const url = URL.createObjectURL(new Blob([src], {type: 'text/javascript'}));
  window.drawLiveChart = (await import(url)).default;
}"""
# draws the spec into a 600-px-wide box; returns what the canvas says and whether the plot area has ink
_DRAW = """((spec) => {
  const box = document.createElement('div'); box.style.width = '600px'; document.body.appendChild(box);
  window.drawLiveChart({data: spec, parentElement: box});
  const c = box.querySelector('canvas.signlab-live-chart');
  const ctx = c.getContext('2d'); const dpr = window.devicePixelRatio || 1;
  const px = ctx.getImageData(70 * dpr, 60 * dpr, c.width - 90 * dpr, c.height - 110 * dpr).data;
  let coloured = 0;  // line pixels: not white and not the light grey grid
  for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && Math.min(px[i], px[i + 1], px[i + 2]) < 200) coloured++;
  return {points: +c.dataset.points, lastX: c.dataset.lastX, coloured, height: c.style.height,
          label: c.getAttribute('aria-label')};
})"""


def _draw(page, spec: dict) -> dict:
    """Draw ``spec`` with the module, through the DevTools protocol so that a drawing loop that never
    ends is cut off after 10 s and fails the test (an earlier version looped forever)."""
    page.set_content("<html><body style='margin:0'></body></html>")
    page.evaluate(_LOAD, open(JS, encoding="utf-8").read())
    cdp = page.context.new_cdp_session(page)
    got = cdp.send("Runtime.evaluate", {"expression": f"{_DRAW}({json.dumps(spec)})", "returnByValue": True,
                                        "timeout": 10_000})
    assert "exceptionDetails" not in got, f"the drawing failed or never ended: {got.get('exceptionDetails')}"
    return got["result"]["value"]


def _batches(losses):
    return [{"type": "batch", "step": i + 1, "epoch": 1, "loss": v} for i, v in enumerate(losses)]


CASES = {
    "one point": (_batches([2.5]), 1),
    "equal but for rounding": (_batches([0.1 + 1e-15 * (i % 3) for i in range(40)]), 40),
    "a long falling run": (_batches([3.2 * math.exp(-i / 300) + 0.05 for i in range(3000)]), 3000),  # 1500 drawn
    "a NaN step (a gap)": (_batches([2.0, 1.5, float("nan"), 1.0, 0.8]), 5),
    "huge losses": (_batches([1e6, 5e5, 1e4, 12.0]), 4),
}


@pytest.mark.parametrize("case", list(CASES))
def test_live_chart_draws_the_edge_cases(page, case):
    batches, n = CASES[case]
    spec = figures.live_loss_spec(batches)
    got = _draw(page, spec)
    assert got["points"] == min(n, 1500)  # figures.loss_lines keeps at most 1500 points
    assert float(got["lastX"]) == n  # steps run 1..n, and the last one is always kept
    assert got["coloured"] > 20, f"nothing drawn in the plot area: {got}"
    assert got["height"] == f"{spec['height']}px" and got["label"] == spec["title"]


def test_live_chart_with_no_points_draws_the_frame_only(page):
    spec = figures.live_loss_spec([])
    got = _draw(page, spec)
    assert got["points"] == 0 and got["lastX"] == ""
    assert got["coloured"] == 0  # no line in the plot area; a line of text above it says why


_TEXTS = """((width) => {
  const drawn = [], fill = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, x, y) {
    drawn.push({text: String(text), right: x + this.measureText(text).width});
    return fill.apply(this, arguments);
  };
  const box = document.createElement('div'); box.style.width = width + 'px'; document.body.appendChild(box);
  window.drawLiveChart({data: %s, parentElement: box});
  CanvasRenderingContext2D.prototype.fillText = fill;
  return drawn;
})"""


@pytest.mark.parametrize("width", [350, 600])
def test_the_waiting_words_fit_the_chart_on_a_phone_too(page, width):
    """Before the first step, the chart says why it is empty: on a phone (a 350-px chart) the line ran
    past the right edge ("... once the first steps are d"). Now it wraps inside the canvas."""
    page.set_content("<html><body style='margin:0'></body></html>")
    page.evaluate(_LOAD, open(JS, encoding="utf-8").read())
    drawn = page.evaluate(_TEXTS % json.dumps(figures.live_loss_spec([])), width)
    words = [d for d in drawn if d["text"] != figures.live_loss_spec([])["title"]]
    assert " ".join(d["text"] for d in words) == "The loss of each step appears here once the first steps are done."
    assert all(d["right"] <= width for d in words), words  # (how many lines depends on the font)


# the chart with a feed: fetch is replaced by replies given in order (the last one repeats)
_FEED = """(async ([first, replies]) => {
  const asked = [], triggers = [];
  window.fetch = async (url) => {
    asked.push(url);
    const reply = replies[Math.min(asked.length - 1, replies.length - 1)];
    return {ok: true, status: 200, json: async () => reply};
  };
  const box = document.createElement('div'); box.style.width = '600px'; document.body.appendChild(box);
  const cleanup = window.drawLiveChart({data: first, parentElement: box,
                                        setTriggerValue: (name, value) => triggers.push([name, value])});
  const text = () => box.querySelector('.signlab-live-progress-text').textContent;
  const before = text();
  await new Promise((done) => setTimeout(done, 700));
  cleanup();
  const after = asked.length;
  await new Promise((done) => setTimeout(done, 300));
  const c = box.querySelector('canvas.signlab-live-chart');
  return {asked, triggers, before, text: text(), points: +c.dataset.points, lastX: c.dataset.lastX,
          shown: box.querySelector('.signlab-live-progress').style.display !== 'none',
          askedAfterCleanup: asked.length - after};
})"""


def _status(state: str, kind: str, text: str, progress: float | None) -> dict:
    return {"state": state, "kind": kind, "text": text, "progress": progress}


def test_live_chart_follows_its_feed_and_asks_for_a_redraw_once_when_the_run_ends(page):
    running = _status("running", "progress", "epoch 1/2 · 9,000 images/s", 0.25)
    first = {**figures.live_loss_spec(_batches([3.0, 2.0])), "run": "r1", "feed": "/api/feed?token=t",
             "feedMs": 50, "status": running}
    replies = [
        {"v": 10, "status": _status("running", "progress", "epoch 2/2 · 9,500 images/s", 0.75),
         "spec": figures.live_loss_spec(_batches([3.0, 2.0, 1.5, 1.2]))},
        {"v": 10, "status": _status("running", "progress", "epoch 2/2 · 9,500 images/s", 0.75)},  # nothing new
        {"v": 12, "status": _status("completed", "success", "Finished", None),
         "spec": figures.live_loss_spec(_batches([3.0, 2.0, 1.5, 1.2, 1.0]))},
    ]
    page.set_content("<html><body style='margin:0'></body></html>")
    page.evaluate(_LOAD, open(JS, encoding="utf-8").read())
    got = page.evaluate(_FEED, [first, replies])
    assert got["before"] == running["text"]  # the page's progress line, drawn at once
    assert got["asked"][0] == "/api/feed?token=t" and got["asked"][1] == "/api/feed?token=t&v=10"
    assert len(got["asked"]) >= 4  # it kept asking every feedMs
    assert got["points"] == 5 and float(got["lastX"]) == 5  # the newest lines are drawn
    assert got["triggers"] == [["moved", "completed"]]  # once, however often the feed repeats it
    assert not got["shown"]  # the run ended: no progress line (the page's redraw says how it ended)
    assert got["askedAfterCleanup"] <= 1  # unmounted: it stops asking (one request may be in flight)


def test_live_chart_stops_asking_when_its_feed_has_ended(page):
    """The page revokes the feed's token as the run stops; the chart may ask once more before the
    redraw removes it. The feed then says "ended" (a 404 put an error in the console at the end of
    every run) and the chart stops asking, keeping what it drew."""
    running = _status("running", "progress", "epoch 1/2", 0.5)
    first = {**figures.live_loss_spec(_batches([3.0, 2.0])), "run": "r1", "feed": "/api/feed?token=t",
             "feedMs": 50, "status": running}
    replies = [{"v": 10, "status": running, "spec": figures.live_loss_spec(_batches([3.0, 2.0, 1.5]))},
               {"ended": True}]
    page.set_content("<html><body style='margin:0'></body></html>")
    page.evaluate(_LOAD, open(JS, encoding="utf-8").read())
    got = page.evaluate(_FEED, [first, replies])
    assert len(got["asked"]) == 2  # 700 ms at 50 ms a request: it would have asked about 14 times
    assert got["points"] == 3 and got["triggers"] == []
