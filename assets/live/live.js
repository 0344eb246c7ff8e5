// chujing live view. Plain JavaScript, no dependencies: an EventSource on /live/events feeds
// the charts (canvas), the decisions table and the transfers panel. Authentication rides on
// the HttpOnly cookie set by "/?token=..." (see src/live/http.rs), so nothing here handles
// the token. Every value from the server is written with textContent, never as HTML.
"use strict";

(function () {
  const ACTIONS = ["allowed", "blocked", "monitored", "failed"];
  const REGIONS = ["mainland", "hk", "mo", "tw", "abroad", "unknown"];
  const REGION_LABEL = { mainland: "mainland (CN)", hk: "Hong Kong", mo: "Macao", tw: "Taiwan", abroad: "abroad", unknown: "unknown" };
  const TIER_LABEL = {
    exempt: "below every threshold: exempt",
    standard_contract_or_certification: "standard contract or certification required",
    security_assessment: "CAC security assessment required",
  };

  const state = {
    windowSecs: 900,
    end: 0,                 // unix second of the last point
    actions: {},            // name -> number[] (oldest first)
    regions: {},
    decisions: [],          // newest first
    seen: new Set(),        // request ids in `decisions`
    capacity: 500,
    transfers: null,
  };

  const $ = (id) => document.getElementById(id);
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue("--" + name).trim() || "#888";
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const fmt = (n) => Number(n).toLocaleString("en-US");

  // ---- time series ---------------------------------------------------------------------

  function applySnapshot(s) {
    state.windowSecs = s.window_secs;
    state.end = s.series.end;
    for (const a of ACTIONS) state.actions[a] = (s.series.actions[a] || []).slice();
    for (const r of REGIONS) state.regions[r] = (s.series.regions[r] || []).slice();
    state.capacity = s.recent_capacity;
    state.decisions = [];
    state.seen = new Set();
    // The snapshot lists newest first; add oldest first so addDecision keeps that order.
    for (let i = s.recent.length - 1; i >= 0; i--) addDecision(s.recent[i], false);
    if (s.transfers) state.transfers = s.transfers;
    renderDecisions();
    renderTransfers();
    scheduleDraw();
  }

  // Puts one second's counts in place, sliding the window forward if it is newer.
  function applyTick(t) {
    if (t.second > state.end) {
      const shift = Math.min(t.second - state.end, state.windowSecs);
      for (const set of [state.actions, state.regions]) {
        for (const k of Object.keys(set)) {
          const v = set[k];
          for (let i = 0; i < shift; i++) v.push(0);
          v.splice(0, Math.max(0, v.length - state.windowSecs));
        }
      }
      state.end = t.second;
    }
    const idx = state.windowSecs - 1 - (state.end - t.second);
    if (idx < 0) return;
    for (const a of ACTIONS) if (state.actions[a]) state.actions[a][idx] = t.actions[a] || 0;
    for (const r of REGIONS) if (state.regions[r]) state.regions[r][idx] = t.regions[r] || 0;
    scheduleDraw();
  }

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      drawChart($("chart-actions"), state.actions, ACTIONS);
      drawChart($("chart-regions"), state.regions, REGIONS);
      renderLegend($("legend-actions"), state.actions, ACTIONS, (k) => k, "");
      renderLegend($("legend-regions"), state.regions, REGIONS, (k) => REGION_LABEL[k], "region-");
    });
  }

  // Top of the y axis: four gridline steps of 1, 2 or 5 × 10^k, so every label is a whole
  // number of requests per second.
  function niceMax(v) {
    const step = Math.max(v / 4, 1);
    const p = Math.pow(10, Math.floor(Math.log10(step)));
    for (const m of [1, 2, 5, 10]) if (m * p >= step) return 4 * m * p;
    return 40 * p;
  }

  function drawChart(canvas, series, keys) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 640, h = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const left = 40, right = 8, top = 10, bottom = 22;
    const pw = w - left - right, ph = h - top - bottom;
    let max = 0;
    for (const k of keys) for (const v of series[k] || []) if (v > max) max = v;
    const ymax = niceMax(max);
    const n = state.windowSecs;
    const x = (i) => left + (pw * i) / (n - 1);
    const y = (v) => top + ph - (ph * v) / ymax;

    g.font = "11px system-ui, sans-serif";
    g.strokeStyle = "#dde1e8";
    g.fillStyle = "#6b7385";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4;
      g.beginPath();
      g.moveTo(left, Math.round(y(v)) + 0.5);
      g.lineTo(w - right, Math.round(y(v)) + 0.5);
      g.stroke();
      g.fillText(fmt(v), left - 4, y(v));
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    for (const m of [15, 10, 5, 0]) {
      const i = n - 1 - m * 60;
      g.fillText(m === 0 ? "now" : "-" + m + " min", Math.min(Math.max(x(i), left + 16), w - right - 14), h - bottom + 6);
    }
    keys.forEach((k, n) => {
      const v = series[k];
      if (!v || !v.some((c) => c > 0)) return;
      g.strokeStyle = css(k);
      // Earlier series are drawn wider so equal values stay visible under later ones.
      g.lineWidth = Math.max(1.5, 3.5 - n);
      g.beginPath();
      for (let i = 0; i < v.length; i++) {
        const px = x(i), py = y(v[i]);
        if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
      }
      g.stroke();
    });
  }

  function renderLegend(table, series, keys, label, idPrefix) {
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const k of keys) {
      const v = series[k] || [];
      const total = v.reduce((a, b) => a + b, 0);
      const last = v.length ? v[v.length - 1] : 0;
      const tr = el("tr");
      tr.dataset.series = k;
      const name = el("td");
      const sw = el("span", null, "swatch");
      sw.style.background = css(k);
      name.append(sw, label(k));
      const lastTd = el("td", fmt(last));
      lastTd.id = "rate-" + idPrefix + k;
      const totalTd = el("td", fmt(total));
      totalTd.id = "total-" + idPrefix + k;
      tr.append(name, lastTd, totalTd);
      body.append(tr);
    }
  }

  // ---- decisions -----------------------------------------------------------------------

  function addDecision(d, render) {
    if (state.seen.has(d.request_id)) return;
    state.seen.add(d.request_id);
    state.decisions.unshift(d);
    while (state.decisions.length > state.capacity) {
      state.seen.delete(state.decisions.pop().request_id);
    }
    if (render) renderDecisions();
  }

  function currentFilter() {
    return {
      reason: $("filter-reason").value,
      country: $("filter-country").value,
      transfer: $("filter-transfer").value,
    };
  }

  // Keeps each select's options equal to the values present (plus the current choice).
  function refreshOptions(select, values) {
    const chosen = select.value;
    const all = new Set(values);
    if (chosen) all.add(chosen);
    const wanted = ["", ...[...all].sort()];
    const have = [...select.options].map((o) => o.value);
    if (wanted.length === have.length && wanted.every((v, i) => v === have[i])) return;
    select.replaceChildren();
    for (const v of wanted) {
      const o = el("option", v === "" ? "any" : v === "-" ? "(none)" : v);
      o.value = v;
      select.append(o);
    }
    select.value = chosen;
  }

  const field = (v) => (v === null || v === undefined || v === "" ? "-" : v);

  function renderDecisions() {
    const ds = state.decisions;
    refreshOptions($("filter-reason"), ds.map((d) => field(d.reason)));
    refreshOptions($("filter-country"), ds.map((d) => field(d.country)));
    refreshOptions($("filter-transfer"), ds.map((d) => field(d.transfer)));
    const f = currentFilter();
    const shown = ds.filter((d) =>
      (!f.reason || field(d.reason) === f.reason) &&
      (!f.country || field(d.country) === f.country) &&
      (!f.transfer || field(d.transfer) === f.transfer));
    const body = $("decisions-body");
    body.replaceChildren();
    for (const d of shown) {
      const tr = el("tr");
      tr.dataset.requestId = d.request_id;
      tr.title = "request " + d.request_id + " — click for the full audit event";
      const time = el("td", new Date(d.time).toLocaleTimeString("en-GB"));
      time.title = d.time;
      const action = el("td");
      action.append(el("span", d.action === "blocked" ? "blocked" : "would block", "badge badge-" + d.action));
      const cats = el("td");
      for (const c of d.categories || []) cats.append(el("span", c, "cat"));
      const subjects = el("td", d.sensitive_subjects ? d.subjects + " (" + d.sensitive_subjects + " sensitive)" : d.subjects);
      tr.append(time, action, el("td", field(d.client)), el("td", d.host), el("td", field(d.country)),
        el("td", field(d.reason)), cats, subjects, el("td", field(d.transfer)));
      tr.addEventListener("click", () => showDetail(d.request_id));
      body.append(tr);
    }
    $("decisions-empty").hidden = ds.length > 0;
    $("decisions-count").textContent = ds.length
      ? "showing " + shown.length + " of the latest " + ds.length
      : "";
  }

  async function showDetail(id) {
    const dialog = $("detail");
    $("detail-id").textContent = id;
    $("detail-json").textContent = "loading…";
    if (!dialog.open) dialog.showModal();
    try {
      const resp = await fetch("/live/event/" + encodeURIComponent(id), { credentials: "same-origin" });
      const body = await resp.json();
      $("detail-json").textContent = resp.ok ? JSON.stringify(body, null, 2) : body.message;
    } catch (e) {
      $("detail-json").textContent = "could not load the audit event: " + e;
    }
  }

  // ---- transfers -----------------------------------------------------------------------

  function bar(value, cap, warnAt) {
    const b = el("div", null, "bar");
    const fill = el("div", null, "fill");
    const pct = cap ? Math.min(100, (100 * value) / cap) : 0;
    fill.style.width = pct + "%";
    if (cap && value >= cap) fill.classList.add("over");
    else if (cap && value >= cap * (warnAt || 0.8)) fill.classList.add("warn");
    b.append(fill, el("span", fmt(value) + (cap ? " / " + fmt(cap) : " (no cap)"), "label"));
    return b;
  }

  function renderTransfers() {
    const view = state.transfers;
    $("transfers-missing").hidden = !!view;
    $("transfers-table").hidden = !view;
    if (!view) return;
    const body = $("transfers-body");
    body.replaceChildren();
    for (const t of view.transfers) {
      const tr = el("tr");
      tr.dataset.transfer = t.id;
      const expired = t.validity === "expired";
      if (expired) tr.className = "expired-row";
      const valid = el("td", (t.valid_from || "…") + " – " + (t.valid_until || "…"));
      let daysText = t.days_left === null || t.days_left === undefined ? "no end date" : t.days_left;
      if (expired) daysText = "expired";
      if (t.validity === "not_yet_valid") daysText = "not yet valid";
      const days = el("td", daysText, expired ? "expired" : t.validity === "not_yet_valid" ? "not-yet" : "");
      const ind = el("td");
      ind.append(t.individuals === null || t.individuals === undefined
        ? el("span", "not reported", "muted")
        : bar(t.individuals, t.max_individuals_per_year));
      const sens = el("td");
      sens.append(t.sensitive_individuals === null || t.sensitive_individuals === undefined
        ? el("span", "not reported", "muted")
        : bar(t.sensitive_individuals, t.max_sensitive_individuals_per_year));
      tr.append(el("td", t.id), el("td", t.legal_basis.replace(/_/g, " ")), valid, days, ind, sens);
      body.append(tr);
    }
    const s = view.statutory, th = view.thresholds;
    $("statutory-year").textContent = s.year ? "(" + s.year + ")" : "";
    const box = $("statutory");
    box.replaceChildren();
    const row = (name, value, cap) => {
      const r = el("div", null, "statutory-row");
      r.append(el("span", name, "name"), bar(value, cap, 0.8));
      box.append(r);
    };
    row("individuals vs standard-contract threshold", s.individuals, th.contract);
    row("individuals vs security-assessment threshold", s.individuals, th.assessment);
    row("sensitive-PI individuals vs security-assessment threshold", s.sensitive_individuals, th.sensitive_assessment);
    const tier = el("p", TIER_LABEL[view.tier] || view.tier, "tier");
    tier.id = "statutory-tier";
    box.append(tier);
  }

  // ---- connection ----------------------------------------------------------------------

  function setConn(text, cls) {
    const c = $("conn");
    c.textContent = text;
    c.className = "conn " + cls;
  }

  function connect() {
    const es = new EventSource("/live/events", { withCredentials: true });
    const on = (name, fn) => es.addEventListener(name, (e) => {
      try { fn(JSON.parse(e.data)); } catch (err) { console.error("live view: bad " + name + " event", err); }
    });
    on("snapshot", (s) => { applySnapshot(s); setConn("live", "conn-ok"); });
    on("tick", applyTick);
    on("decision", (d) => addDecision(d, true));
    on("transfers", (t) => { state.transfers = t; renderTransfers(); });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // A 401/403 closes the stream for good: the cookie is missing or stale.
        setConn("not authorised — open /?token=<admin token>", "conn-bad");
      } else {
        setConn("reconnecting…", "conn-wait");
      }
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const id of ["filter-reason", "filter-country", "filter-transfer"]) {
      $(id).addEventListener("change", renderDecisions);
    }
    for (const a of ACTIONS) state.actions[a] = new Array(state.windowSecs).fill(0);
    for (const r of REGIONS) state.regions[r] = new Array(state.windowSecs).fill(0);
    window.addEventListener("resize", scheduleDraw);
    scheduleDraw();
    connect();
  });
})();
