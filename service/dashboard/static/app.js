// Shared helpers for the dashboard pages: API calls, formatting, family colours, polling.
"use strict";

const API = "/api/v1";
const FAMILY_COLORS = {
  sgd: "#7f7f7f", momentum: "#1f77b4", nesterov: "#17becf", adagrad: "#2ca02c",
  adadelta: "#bcbd22", rmsprop: "#9467bd", adam: "#d62728", adamw: "#ff7f0e",
  adamax: "#8c564b", nadam: "#e377c2",
};
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

function color(family) {
  if (FAMILY_COLORS[family]) return FAMILY_COLORS[family];
  let hash = 0;
  for (const ch of family) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

async function api(path, options) {
  const response = await fetch(API + path, options);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
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

function hparamText(hparams) {
  return Object.entries(hparams)
    .map(([key, value]) => `${key}=${Array.isArray(value) ? `(${value.map(fmt).join(", ")})` : fmt(value)}`)
    .join(" ");
}

function errorList(detail) {
  // FastAPI's 422 shape: [{loc: ["body", "space", "lr"], msg: "..."}], or a string.
  const list = el("ul", { class: "errors" });
  const items = Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail) }];
  for (const item of items) {
    const field = (item.loc || []).filter((part) => part !== "body").join(".");
    list.append(el("li", { class: "error", "data-field": field }, el("b", {}, field || "spec"), ": ", item.msg));
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

// Plotly is loaded with `defer`: pages fetch their data while it parses, and draw once
// DOMContentLoaded says it has run.
const plotlyReady = new Promise((resolve) => {
  if (document.readyState !== "loading") resolve();
  else document.addEventListener("DOMContentLoaded", () => resolve());
});

const PLOT_CONFIG = { displaylogo: false, responsive: true };
const BASE_LAYOUT = { margin: { l: 56, r: 12, t: 28, b: 44 }, legend: { orientation: "h" } };
