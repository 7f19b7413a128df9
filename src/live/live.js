// The live page: polls /api/overview and redraws. No framework, no build step.
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const LEAD_ORDER = ["completed", "exhausted", "skipped", "canceled", "in_progress", "pending"];

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children || []) e.append(c);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function colour(status) {
  return `var(--${status}, var(--pending))`;
}

// "in 3 h 20 min" from an RFC 3339 instant, relative to the daemon's now.
function until(iso, now) {
  let min = Math.round((Date.parse(iso) - Date.parse(now)) / 60000);
  if (min <= 0) return "now";
  const d = Math.floor(min / 1440); min -= d * 1440;
  const h = Math.floor(min / 60); min -= h * 60;
  return "in " + [d && `${d} d`, h && `${h} h`, min && `${min} min`].filter(Boolean).join(" ");
}

function counts(map, attr, order) {
  const keys = order ? order.filter((k) => k in map).concat(Object.keys(map).filter((k) => !order.includes(k)))
                     : Object.keys(map);
  return el("ul", { class: "counts" }, keys.map((k) =>
    el("li", {}, [
      el("span", { class: "dot", style: `background:${colour(k)}` }),
      k.replace("_", " ") + " ",
      el("span", { class: "n", [attr]: k }, [String(map[k])]),
    ])));
}

function progress(c) {
  const total = Object.values(c.leads).reduce((a, b) => a + b, 0);
  const stack = el("div", { class: "stack", role: "img", "aria-label": "leads by status" },
    LEAD_ORDER.filter((s) => c.leads[s] > 0).map((s) =>
      el("div", { style: `width:${(100 * c.leads[s]) / total}%;background:${colour(s)}`,
                  title: `${s} ${c.leads[s]}` })));
  return [el("h3", {}, [`Leads (${total})`]), stack, counts(c.leads, "data-lead", LEAD_ORDER)];
}

function gauge(label, live, max, key) {
  const pct = max > 0 ? Math.min(100, (100 * live) / max) : 0;
  return [
    el("span", {}, [label]),
    el("div", {}, [
      el("div", { class: "meter" + (live >= max ? " full" : "") }, [el("div", { style: `width:${pct}%` })]),
      el("span", { "data-limit": key }, [`${live} of ${max} (${key})`]),
    ]),
  ];
}

// Calls per minute over the last hour, one bar a minute, the current minute last.
function chart(perMinute, limit) {
  const W = 600, H = 130, left = 34, bottom = 18, top = 8;
  const plotW = W - left - 4, plotH = H - top - bottom;
  const peak = Math.max(1, ...perMinute);
  const s = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
                         "aria-label": "calls per minute, last hour" });
  s.append(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: W - 4, y2: top + plotH }));
  s.append(svg("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, String(peak)));
  s.append(svg("text", { x: left - 4, y: top + plotH, "text-anchor": "end" }, "0"));
  s.append(svg("text", { x: left, y: H - 4 }, "60 min ago"));
  s.append(svg("text", { x: W - 4, y: H - 4, "text-anchor": "end" }, "now"));
  const step = plotW / perMinute.length;
  perMinute.forEach((n, i) => {
    const h = (plotH * n) / peak;
    const bar = svg("rect", { class: "bar", x: (left + i * step + 1).toFixed(1), y: (top + plotH - h).toFixed(1),
                              width: Math.max(1, step - 2).toFixed(1), height: h.toFixed(1) });
    bar.append(svg("title", {}, `${perMinute.length - 1 - i} min ago: ${n} calls`));
    s.append(bar);
  });
  const hour = perMinute.reduce((a, b) => a + b, 0);
  return [
    el("h3", {}, ["Calls per minute, last hour"]),
    s,
    el("p", { class: "meta" }, [el("span", { "data-field": "calls_last_hour" }, [String(hour)]),
                                ` calls in the last hour; limit ${limit} a minute (calls_per_minute)`]),
  ];
}

function windowLine(c, now) {
  if (c.window_open) return el("p", { class: "window open", "data-field": "window" }, ["Calling window: open now"]);
  if (!c.next_opening) return el("p", { class: "window", "data-field": "window" }, ["Calling window: no opening within 366 days"]);
  return el("p", { class: "window", "data-field": "window" },
    [`Calling window: next opening ${c.next_opening.replace("T", " ").replace("Z", " UTC")} (${until(c.next_opening, now)})`]);
}

function campaign(c, providers, now) {
  const p = providers.find((x) => x.name === c.provider);
  const title = el("h2", { "data-campaign": c.id }, [c.id]);
  if (c.paused) title.append(el("span", { class: "badge" }, ["paused"]));
  if (p && p.paused) title.append(el("span", { class: "badge" }, [`provider paused`]));
  const live = el("div", { class: "gauge" }, [
    ...gauge("This campaign", c.live_calls, c.max_concurrent, "max_concurrent"),
    ...(p ? gauge(`Provider ${p.name}`, p.live_calls, p.max_concurrent_calls, "max_concurrent_calls") : []),
  ]);
  const parts = [
    title,
    el("p", { class: "meta" }, [`provider ${c.provider}`]),
    windowLine(c, now),
    ...progress(c),
    el("h3", {}, ["Outcomes (attempts)"]),
    counts(c.outcomes, "data-outcome"),
    el("h3", {}, ["Live calls"]),
    live,
    ...chart(c.calls_per_minute, c.calls_per_minute_limit),
  ];
  if (c.unusable_leads > 0) {
    parts.push(el("p", { class: "meta" }, [`${c.unusable_leads} pending leads without a readable next_attempt_at (not dialled)`]));
  }
  return el("section", { class: "campaign" }, parts);
}

function provider(p) {
  const parts = [el("strong", {}, [p.name]), ` ${p.kind} · ${p.live_calls} of ${p.max_concurrent_calls} live · `];
  if (p.paused) {
    parts.push(el("span", { class: "why", "data-paused": p.name },
      [`paused until ${p.paused.until.replace("T", " ").replace("Z", " UTC")}: ${p.paused.reason}`]));
  } else {
    parts.push("placing");
  }
  return el("div", { class: "provider" + (p.paused ? " paused" : "") }, parts);
}

function render(o) {
  document.getElementById("providers").replaceChildren(...o.providers.map(provider));
  const main = document.getElementById("campaigns");
  main.replaceChildren(...o.campaigns.map((c) => campaign(c, o.providers, o.now)));
  if (o.campaigns.length === 0) main.append(el("p", {}, ["No campaigns loaded."]));
  const state = document.getElementById("state");
  state.className = "state";
  state.textContent = `updated ${o.now.replace("T", " ").replace("Z", " UTC")}`;
}

async function poll() {
  try {
    const r = await fetch("/api/overview", { cache: "no-store" });
    const o = await r.json();
    if (!r.ok) throw new Error(o.error || `HTTP ${r.status}`);
    render(o);
  } catch (e) {
    const state = document.getElementById("state");
    state.className = "state error";
    state.textContent = `not updating: ${e.message}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
