// Shared helpers for the dashboard pages: API calls, formatting, family colours, polling.
"use strict";

const API = "/api/v1";
const FAMILY_COLORS = {
  sgd: "#7f7f7f", momentum: "#1f77b4", nesterov: "#17becf", adagrad: "#2ca02c",
  adadelta: "#bcbd22", rmsprop: "#9467bd", adam: "#d62728", adamw: "#ff7f0e",
  adamax: "#8c564b", nadam: "#e377c2", radam: "#aec7e8", lion: "#ffbb78",
  adafactor: "#98df8a", muon: "#ff9896", schedulefree_adamw: "#c5b0d5",
  schedulefree_sgd: "#c49c94", prodigy: "#f7b6d2",
};
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

function color(family) {
  if (FAMILY_COLORS[family]) return FAMILY_COLORS[family];
  let hash = 0;
  for (const ch of family) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

let csrfToken = null;

async function csrf() {
  // The session's CSRF token, sent with every request that changes something.
  if (csrfToken === null) {
    const response = await fetch(`${API}/session`);
    if (response.ok) csrfToken = (await response.json()).csrf_token;
  }
  return csrfToken;
}

async function api(path, options = {}) {
  const method = (options.method ?? "GET").toUpperCase();
  const headers = new Headers(options.headers ?? {});
  if (!["GET", "HEAD"].includes(method)) headers.set("X-CSRF-Token", await csrf() ?? "");
  const response = await fetch(API + path, { ...options, headers });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (response.status === 401) {  // signed out (the session ended, or its token was revoked)
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
  }
  if (!response.ok) {
    const error = new Error(`${response.status}`);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") return value;
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? value.toPrecision(4) : value.toExponential(3);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function hparamText(hyperparameters, settings) {
  // A trial's hyperparameters, then the training settings its sweep searched (batch size, clipping).
  const shown = Object.entries(hyperparameters)
    .map(([key, value]) => `${key}=${Array.isArray(value) ? `(${value.map(fmt).join(", ")})` : fmt(value)}`);
  for (const [key, value] of Object.entries(settings ?? {})) {
    if (value !== null && typeof value === "object") {  // a schedule: its kind and parameters
      const inner = Object.entries(value).filter(([name]) => name !== "kind").map(([name, v]) => `${name}=${fmt(v)}`);
      shown.push(`${key}=${value.kind}${inner.length ? `(${inner.join(",")})` : ""}`);
    } else {
      shown.push(`${key}=${value === null ? "none" : fmt(value)}`);
    }
  }
  return shown.join(" ");
}

function errorList(detail) {
  // FastAPI's 422 shape: [{loc: ["body", "space", "lr"], msg: "..."}], or a string; a
  // message that names its field again says it once.
  const list = el("ul", { class: "errors" });
  const items = Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail) }];
  for (const item of items) {
    const loc = item.loc || [];
    const field = (["body", "query", "path"].includes(loc[0]) ? loc.slice(1) : loc).join(".");
    const message = String(item.msg).replace(/^Value error, /, "");
    const said = message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
    list.append(el("li", { class: "error", "data-field": field }, el("b", {}, field || "spec"), ": ", said));
  }
  return list;
}

function poll(refresh, isDone, every = 2000) {
  // Refresh now and every `every` ms until isDone() says the page shows a finished state.
  let timer = null;
  const tick = async () => {
    try { await refresh(); } catch (error) { console.error(error); }
    if (!isDone()) timer = setTimeout(tick, every);
  };
  tick();
  return () => clearTimeout(timer);
}

// ECharts is loaded with `defer`: pages fetch their data while it parses, and draw once
// DOMContentLoaded says it has run.
const echartsReady = new Promise((resolve) => {
  if (document.readyState !== "loading") resolve();
  else document.addEventListener("DOMContentLoaded", () => resolve());
});

// Shared look: room for a title, a legend under it and axis names; no animation (charts redraw
// on every poll, and the first frame should be the final one).
const BASE_OPTION = {
  animation: false,
  textStyle: { fontFamily: "system-ui, sans-serif" },
  title: { left: 4, top: 0, textStyle: { fontSize: 14, fontWeight: 600 } },
  legend: { top: 24, left: "center", type: "scroll" },
  grid: { left: 64, right: 24, top: 64, bottom: 48 },
  tooltip: { trigger: "item", confine: true },
};

function valueAxis(name, extra = {}) {
  return { type: "value", name, nameLocation: "middle", nameGap: 30, scale: true, ...extra };
}

function chartOf(div) {
  // The div's ECharts instance (canvas renderer), made on first use.
  let chart = echarts.getInstanceByDom(div);
  if (!chart) {
    chart = echarts.init(div, null, { renderer: "canvas" });
    chart.setOption(BASE_OPTION, { lazyUpdate: true });  // each chart's own option merges into it
    // Follows its div, whether the window or the grid around it (a card added beside it) changed.
    new ResizeObserver(([entry]) => {
      const { width, height } = entry.contentRect;
      if (Math.round(width) !== chart.getWidth() || Math.round(height) !== chart.getHeight()) chart.resize();
    }).observe(div);
  }
  return chart;
}

function draw(div, option) {
  // Series are replaced (a poll may bring fewer); other state, such as which legend entries
  // are switched off, survives the redraw. data-drawn="1" marks the first frame, for tests.
  const chart = chartOf(div);
  // A chart with no point says so, rather than showing empty axes.
  const empty = !(option.series ?? []).some((series) => (series.data ?? []).length);
  const noData = { id: "no-data", type: "text", left: "center", top: "middle", invisible: !empty,
    style: { text: "no data", fill: "#667085", fontSize: 14 } };
  chart.setOption({ ...option, graphic: [noData] }, { replaceMerge: ["series"] });
  div.dataset.drawn = "1";
  div.dataset.empty = empty ? "1" : "";
  return chart;
}

async function signOut() {
  await api("/session", { method: "DELETE" });
  window.location.assign("/login");
}

document.addEventListener("DOMContentLoaded", () => {
  // Who is signed in, and a way out, in every page's header.
  const header = document.querySelector("header");
  if (!header || document.body.dataset.page === "login") return;
  api("/session").then((session) => {
    header.append(el("span", { class: "user muted" }, session.user.name, " ",
      el("button", { id: "sign-out", type: "button", onclick: signOut }, "sign out")));
  }).catch(() => {});
});
