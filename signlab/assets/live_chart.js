// signlab's live line chart: the loss lines of signlab.figures.live_loss_spec drawn on a <canvas>.
//
// Used only while a run trains (signlab.ui.live_chart). A plotly chart in Streamlit is redrawn
// whole on every poll, ~100 ms of the browser's CPU each time; on a 2-core laptop that time is
// taken from the training beside it (bench/small_waits.py). Drawing the lines on a canvas costs a
// few milliseconds. Once the run stops, the page draws the same figure with plotly (hover, zoom).
//
// data: {title, xTitle, yTitle, height, traces: [{x, y, name, color, width, opacity}], run,
//        feed?, feedMs?, status?: {state, kind, text, progress}}
// With `feed` (the URL of signlab.live's route, with this session's token) the chart asks the
// server itself every `feedMs` for new points and the run's progress line, which it draws above
// the chart: no Streamlit rerun, so the browser does not re-render the page to move them. When
// the run's state is no longer `status.state` (it ended, paused…) it sends the trigger "moved", and the
// page redraws for the new state.

function niceTicks(lo, hi, n) {
  // at most ~2n ticks; a range too small to step through (or not finite) gets its two ends
  const raw = (hi - lo) / n;
  if (!(raw > 0) || !Number.isFinite(raw) || raw < 1e-12 * Math.max(1, Math.abs(lo))) return [lo];
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let k = Math.ceil(lo / step); k * step <= hi + 1e-9 * step && ticks.length <= 2 * n; k++) {
    ticks.push(+(k * step).toPrecision(12));
  }
  return ticks;
}

function label(v) {
  return Math.abs(v) >= 1000 ? v.toLocaleString("en-US") : String(+v.toPrecision(4));
}

function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

function lastX(spec) {
  const t = (spec.traces || [])[0];
  return t && t.x.length ? t.x[t.x.length - 1] : -Infinity;
}

function draw(parentElement, data) {
  let canvas = parentElement.querySelector("canvas.signlab-live-chart");
  if (!canvas) {
    canvas = document.createElement("canvas");
    canvas.className = "signlab-live-chart";
    canvas.setAttribute("role", "img");
    parentElement.appendChild(canvas);
  }
  const traces = data.traces || [];
  const H = data.height || 320;
  const W = Math.max(parentElement.clientWidth || 0, 300);
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = "100%";
  canvas.style.height = H + "px";
  canvas.width = Math.round(W * dpr);
  canvas.height = Math.round(H * dpr);
  canvas.setAttribute("aria-label", data.title || "chart");
  // what a test reads: the drawn data, the first trace's point count and last x (the live state)
  canvas.signlabData = data;
  canvas.dataset.points = String(traces.length ? traces[0].x.length : 0);
  canvas.dataset.lastX = String(traces.length && traces[0].x.length ? traces[0].x[traces[0].x.length - 1] : "");

  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  const family = getComputedStyle(parentElement).fontFamily || "sans-serif";
  const font = "12px " + family;
  const L = 62, R = 16, T = 56, B = 44, pw = W - L - R, ph = H - T - B;

  ctx.font = "600 16px " + family;
  ctx.fillStyle = "#1b1f24";
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  ctx.fillText(data.title || "", 4, 4);

  let [x0, x1] = extent(traces.flatMap((t) => t.x));
  let [y0, y1] = extent(traces.flatMap((t) => t.y));
  if (!Number.isFinite(x0) || !Number.isFinite(y0)) {  // no step logged yet: say so where the legend goes
    ctx.font = font;
    ctx.fillStyle = "#6b7280";
    ctx.textBaseline = "middle";
    // wrapped to the canvas: on a phone (a 350-px chart) one line ran past the right edge
    const x = W - L - R < 360 ? 4 : L, room = W - x - R;
    let line = "", y = 38;
    for (const word of "The loss of each step appears here once the first steps are done.".split(" ")) {
      const longer = line ? line + " " + word : word;
      if (line && ctx.measureText(longer).width > room) {
        ctx.fillText(line, x, y);
        line = word;
        y += 16;
      } else {
        line = longer;
      }
    }
    ctx.fillText(line, x, y);
    return;
  }
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }  // one step: in the middle, as plotly's chart shows it
  // a flat line (one point, or values equal but for rounding) gets a range around it
  const flat = y1 - y0 <= 1e-9 * Math.max(1, Math.abs(y0), Math.abs(y1));
  const pad = flat ? Math.max(Math.abs(y0) * 0.1, 0.5) : (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (v) => L + ((v - x0) / (x1 - x0)) * pw;
  const sy = (v) => T + (1 - (v - y0) / (y1 - y0)) * ph;

  // grid and ticks, in plotly_white's colours
  ctx.font = font;
  ctx.fillStyle = "#444";
  ctx.strokeStyle = "#ebf0f8";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of niceTicks(y0, y1, 5)) {
    const y = sy(v);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(L + pw, y); ctx.stroke();
    ctx.fillText(label(v), L - 6, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const v of niceTicks(x0, x1, 6)) {
    const x = sx(v);
    ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, T + ph); ctx.stroke();
    ctx.fillText(label(v), x, T + ph + 6);
  }
  ctx.fillText(data.xTitle || "", L + pw / 2, T + ph + 24);
  ctx.save();
  ctx.translate(14, T + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(data.yTitle || "", 0, -6);
  ctx.restore();

  let legendX = L;
  for (const t of traces) {
    const alpha = t.opacity == null ? 1 : t.opacity;
    ctx.strokeStyle = t.color || "#1f77b4";
    ctx.lineWidth = t.width || 2;
    ctx.lineJoin = "round";
    ctx.globalAlpha = alpha;
    ctx.beginPath(); ctx.moveTo(legendX, 38); ctx.lineTo(legendX + 24, 38); ctx.stroke();
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#444";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(t.name || "", legendX + 30, 38);
    legendX += 44 + ctx.measureText(t.name || "").width;

    ctx.save();
    ctx.beginPath(); ctx.rect(L, T, pw, ph); ctx.clip();
    ctx.globalAlpha = alpha;
    ctx.beginPath();
    const dots = [];  // points with no neighbour to join (the first step, a step between gaps)
    let run = 0;
    for (let i = 0; i <= t.x.length; i++) {
      const y = i < t.x.length ? t.y[i] : NaN;
      if (!Number.isFinite(y)) {  // a gap, as plotly draws None
        if (run === 1) dots.push(i - 1);
        run = 0;
        continue;
      }
      const px = sx(t.x[i]), py = sy(y);
      if (run) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      run++;
    }
    ctx.stroke();
    ctx.fillStyle = t.color || "#1f77b4";
    for (const i of dots) {
      ctx.beginPath(); ctx.arc(sx(t.x[i]), sy(t.y[i]), Math.max(2, t.width || 2), 0, 2 * Math.PI); ctx.fill();
    }
    ctx.restore();
  }
}

function drawStatus(parentElement, status) {
  // the progress line, as st.progress draws it: text, then a thin bar
  let box = parentElement.querySelector("div.signlab-live-progress");
  if (!status || status.kind !== "progress") {
    if (box) box.style.display = "none";
    return;
  }
  if (!box) {
    box = document.createElement("div");
    box.className = "signlab-live-progress";
    box.setAttribute("role", "progressbar");
    box.style.cssText = "margin: 0 0 0.75rem 0; font-size: 0.875rem;";
    box.innerHTML = '<div class="signlab-live-progress-text" style="margin-bottom: 0.25rem;"></div>' +
      '<div style="height: 0.5rem; border-radius: 0.25rem; background: var(--st-secondary-background-color, #f0f2f6);">' +
      '<div class="signlab-live-progress-fill" style="height: 100%; border-radius: 0.25rem; ' +
      'background: var(--st-primary-color, #1f77b4);"></div></div>';
    parentElement.insertBefore(box, parentElement.firstChild);
  }
  box.style.display = "";
  const p = Math.max(0, Math.min(1, status.progress || 0));
  box.querySelector(".signlab-live-progress-text").textContent = status.text || "";
  box.querySelector(".signlab-live-progress-fill").style.width = (100 * p).toFixed(1) + "%";
  box.setAttribute("aria-valuenow", String(Math.round(100 * p)));
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let state = parentElement.__signlabLive;
  if (!state || state.run !== data.run) {  // another run drawn in the same place: forget the old one's lines
    if (state) clearInterval(state.timer);
    state = parentElement.__signlabLive = { run: data.run };
  }
  // the newer of the page's data and what the feed last brought (a poll may bring older data)
  if (!state.spec || lastX(data) >= lastX(state.spec)) state.spec = data;
  draw(parentElement, state.spec);
  state.status = data.status || state.status;
  drawStatus(parentElement, state.status);
  state.drawnState = data.status && data.status.state;
  state.trigger = setTriggerValue;
  if (!data.feed) return undefined;
  if (state.feed !== data.feed) {
    clearInterval(state.timer);
    state.feed = data.feed;
    state.version = undefined;
    state.busy = false;
    state.timer = setInterval(async () => {
      if (state.busy || document.hidden) return;  // a hidden tab asks nothing
      state.busy = true;
      try {
        const sep = state.feed.includes("?") ? "&" : "?";
        const r = await fetch(state.feed + (state.version === undefined ? "" : sep + "v=" + state.version),
                              { cache: "no-store" });
        if (r.status === 404) { clearInterval(state.timer); return; }  // the token expired: the page's poll goes on
        if (!r.ok) return;
        const reply = await r.json();
        if (reply.ended) { clearInterval(state.timer); return; }  // the page stopped following the run
        state.version = reply.v;
        if (reply.status) {
          state.status = reply.status;
          drawStatus(parentElement, reply.status);
          if (state.drawnState && reply.status.state !== state.drawnState && state.moved !== reply.status.state) {
            state.moved = reply.status.state;  // once per new state: the page's redraw follows it
            state.trigger("moved", reply.status.state);
          }
        }
        if (reply.spec && lastX(reply.spec) >= lastX(state.spec)) {
          state.spec = reply.spec;
          draw(parentElement, state.spec);
        }
      } catch (e) {
        // the server restarted or the network dropped: try again at the next tick
      } finally {
        state.busy = false;
      }
    }, data.feedMs || 500);
  }
  return () => { clearInterval(state.timer); state.feed = undefined; };
}
