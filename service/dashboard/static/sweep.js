"use strict";
const sweepId = Number(location.pathname.split("/").pop());
let sweep = null;
let sort = { key: "best_objective", order: null };
const finished = () => sweep && !["pending", "running"].includes(sweep.status);

function byFamily(families, seriesOf) {
  return families.map((family) => ({ name: family.optimizer, color: color(family.optimizer), ...seriesOf(family) }));
}

function points(family, ...extra) {
  return family.x.map((x, i) => [x, family.y[i], ...extra.map((column) => column[i])]);
}

function openTrialOnClick(chart) {
  // Points carry their trial id as the third value; off() first, as every poll draws again.
  chart.off("click");
  chart.on("click", (event) => { location.href = `/trials/${event.data[2]}`; });
}

async function drawLeaderboard() {
  const board = await api(`/sweeps/${sweepId}/leaderboard`);
  // One rule names every objective shown: the sweep's summary (its last epoch or its best).
  document.getElementById("board-metric").textContent = `${board.metric} (${board.mode}, ${board.epoch} epoch)`;
  document.getElementById("board-objective").textContent = `${board.metric} (${board.epoch} epoch)`;
  document.getElementById("trials-objective").textContent = `objective (${board.epoch} epoch)`;
  document.querySelector("#leaderboard tbody").replaceChildren(...board.entries.map((entry) => {
    let value = entry.repeats > 1
      ? `${fmt(entry.objective_mean)} ± ${fmt(entry.objective_std)} (${entry.repeats})` : fmt(entry.trial.objective);
    if (entry.objective_ci95) value += ` [${fmt(entry.objective_ci95[0])}, ${fmt(entry.objective_ci95[1])}]`;
    if (entry.p_value !== null && entry.p_value !== undefined) {
      value += entry.tied_with_leader ? ` · tied with #1 (p=${fmt(entry.p_value)})` : ` · behind #1 (p=${fmt(entry.p_value)})`;
    }
    // A family whose trials were all stopped early ranks after the full-length ones, marked.
    if (entry.stopped_at !== null && entry.stopped_at !== undefined) value += ` (stopped at epoch ${entry.stopped_at})`;
    return el("tr", { "data-optimizer": entry.optimizer },
      el("td", {}, entry.rank), el("td", {}, entry.optimizer), el("td", {}, value),
      el("td", {}, el("a", { href: `/sweeps/${sweepId}/trials/${entry.trial.number}` }, entry.trial.number)),
      el("td", {}, entry.trial.epochs_run),
      el("td", {}, hparamText(entry.trial.hyperparameters, entry.trial.settings)), el("td", {}, entry.ranked_trials));
  }));
  if (!board.entries.length) {  // "no data", not an empty table under a note about seeds
    document.querySelector("#leaderboard tbody").replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" },
      finished() ? "no trial finished with a finite objective" : "no trial has finished yet")));
  }
  document.getElementById("board-statistics").textContent = board.entries.length ? board.statistics ?? "" : "";
  const report = await api(`/sweeps/${sweepId}/report`);
  document.getElementById("verdict").textContent = report.verdict;  // first: what to pick, and why
  document.getElementById("warm-start").textContent = report.warm_start ? report.warm_start.summary : "";
  if (report.scale_study) await drawScale(report.scale_study);
  document.getElementById("report-lines").replaceChildren(
    ...report.families.map((family) => el("li", { "data-optimizer": family.optimizer }, family.summary)));
}

// The curves chart finds the point under the mouse itself: its lines carry no symbols (tens of
// thousands of them would slow every frame), so ECharts has no element to hover or click.
const HOVER_PX = 16;
const curvesShown = { metric: "", series: [], hiddenFamilies: {}, log: false };

function scaled(value) {
  // Distances on the y axis as drawn: log10 on a log axis.
  return curvesShown.log ? Math.log10(value) : value;
}

function curvePointAt(chart, x, y) {
  // The point of a visible curve nearest to pixel (x, y), if it is within HOVER_PX.
  const [x0, y0] = chart.convertFromPixel("grid", [x, y]);
  const [x1, y1] = chart.convertFromPixel("grid", [x + 1, y + 1]);
  let found = null;
  let nearest = HOVER_PX ** 2;
  for (const series of curvesShown.series) {
    if (curvesShown.hiddenFamilies[series.name]) continue;
    for (const point of series.data) {
      if (point[1] === null) continue;
      const dx = (point[0] - x0) / (x1 - x0);
      const dy = (scaled(point[1]) - scaled(y0)) / (scaled(y1) - scaled(y0));
      if (dx * dx + dy * dy < nearest) {
        nearest = dx * dx + dy * dy;
        found = point;
      }
    }
  }
  return found;
}

function hoverCurves(chart) {
  let hovered = null;
  const zr = chart.getZr();
  zr.on("mousemove", (event) => {
    hovered = curvePointAt(chart, event.offsetX, event.offsetY);
    zr.setCursorStyle(hovered ? "pointer" : "default");
    if (!hovered) {
      chart.dispatchAction({ type: "hideTip" });
      return;
    }
    const [x, y] = chart.convertToPixel("grid", hovered.slice(0, 2));
    chart.dispatchAction({ type: "showTip", x, y,
      tooltip: `trial ${hovered[3]}, epoch ${hovered[0]}<br>${curvesShown.metric}: <b>${fmt(hovered[1])}</b>` });
  });
  zr.on("globalout", () => { hovered = null; });
  zr.on("click", () => { if (hovered) location.href = `/trials/${hovered[2]}`; });
  chart.on("legendselectchanged", (event) => {
    curvesShown.hiddenFamilies = Object.fromEntries(Object.entries(event.selected).map(([name, shown]) => [name, !shown]));
  });
}

async function drawCurves() {
  const curves = await api(`/sweeps/${sweepId}/curves?max_points=200&limit=300`);
  await echartsReady;
  // One series per family (its curves joined by gaps) and one per family's best: a few series
  // draw far faster than hundreds, whatever the sweep's size. A point is [epoch, value, trial id,
  // trial number]; a point with no value ends a curve.
  // A log y axis (for losses that span decades, or a run that diverged) shows no value <= 0.
  curvesShown.log = document.getElementById("curves-scale").value === "log";
  const shown = (value) => (curvesShown.log && !(value > 0) ? null : value);
  const byId = new Map();
  for (const curve of curves.curves) {
    const best = curve.best_in_family;
    const id = `${curve.optimizer}${best ? " (best)" : ""}`;
    if (!byId.has(id)) {
      // Both share the family's name, so one legend entry switches a family's curves on and off.
      byId.set(id, { id, name: curve.optimizer, type: "line", data: [], showSymbol: false, silent: true,
        z: best ? 3 : 2, color: color(curve.optimizer), lineStyle: { width: best ? 3 : 1, opacity: best ? 1 : 0.35 } });
    }
    const data = byId.get(id).data;
    curve.steps.forEach((step, i) => data.push([step, shown(curve.values[i]), curve.trial_id, curve.number]));
    data.push([null, null, null, null]);
  }
  // Best curves first: the legend takes each family's style from its first series.
  curvesShown.metric = curves.metric;
  curvesShown.series = [...byId.values()].sort((a, b) => b.z - a.z);
  const div = document.getElementById("chart-curves");
  const firstDraw = !div.dataset.drawn;
  const chart = draw(div, {
    title: { text: `Learning curves: ${curves.metric} (${curves.curves.length} of ${curves.total_trials} trials; best per family bold)` },
    tooltip: { triggerOn: "none" },
    xAxis: valueAxis("epoch", { minInterval: 1 }),
    yAxis: valueAxis(curves.metric, { nameGap: 48, type: curvesShown.log ? "log" : "value" }),
    series: curvesShown.series,
  });
  if (firstDraw) hoverCurves(chart);
}

async function drawLr() {
  const lr = await api(`/sweeps/${sweepId}/lr-sensitivity?max_points=500`);
  await echartsReady;
  const named = `${lr.metric} (${sweep?.spec.objective.summary ?? "last"} epoch)`;  // the trial's objective
  const chart = draw(document.getElementById("chart-lr"), {
    title: { text: `lr sensitivity: ${named}` },
    tooltip: { formatter: ({ seriesName, data }) => `${seriesName}: lr ${fmt(data[0])}<br>${lr.metric}: <b>${fmt(data[1])}</b>` },
    xAxis: valueAxis("lr", { type: "log" }),
    yAxis: valueAxis(named, { nameGap: 48 }),
    series: byFamily(lr.families, (f) => ({ type: "scatter", symbolSize: 6, data: points(f, f.trial_ids) })),
  });
  openTrialOnClick(chart);
}

async function drawScale(study) {
  // A scale study: each family's best lr at each size (its basin as a bar), the fitted rule
  // log lr* = a + b log size as a line, and the lr it predicts at the size asked (a diamond).
  document.getElementById("scale-card").hidden = false;
  document.getElementById("scale-summary").textContent = study.summary;
  await echartsReady;
  const sizes = [...study.sizes, ...(study.predict ? [study.predict] : [])];
  const [first, last] = [Math.min(...sizes), Math.max(...sizes)];
  const series = study.families.flatMap((family) => {
    const tint = color(family.optimizer);
    const found = [
      { type: "scatter", name: family.optimizer, color: tint, symbolSize: 9,
        data: family.points.map((p) => [p.size, p.best_lr]) },
      { type: "custom", name: family.optimizer, color: tint, data: family.points
        .filter((p) => p.basin_low !== null).map((p) => [p.size, p.basin_low, p.basin_high]),
      renderItem: (params, api) => {
        const [x, low] = api.coord([api.value(0), api.value(1)]);
        const [, high] = api.coord([api.value(0), api.value(2)]);
        return { type: "line", shape: { x1: x, y1: low, x2: x, y2: high },
          style: { stroke: tint, lineWidth: 2, opacity: 0.5 } };
      } },
    ];
    if (family.slope !== null) {
      const rule = (size) => Math.exp(family.intercept + family.slope * Math.log(size));
      found.push({ type: "line", name: family.optimizer, color: tint, showSymbol: false,
        lineStyle: { type: "dashed" }, data: [[first, rule(first)], [last, rule(last)]] });
    }
    if (family.predicted_lr !== null) {
      found.push({ type: "scatter", name: family.optimizer, color: tint, symbol: "diamond", symbolSize: 14,
        data: [[study.predict, family.predicted_lr]] });
    }
    return found;
  });
  draw(document.getElementById("chart-scale"), {
    title: { text: `Best lr across ${study.field} (scale study)` },
    tooltip: { formatter: ({ seriesName, data }) => `${seriesName}: ${study.field} ${fmt(data[0])}<br>lr <b>${fmt(data[1])}</b>` },
    xAxis: valueAxis(study.field, { type: "log" }),
    yAxis: valueAxis("best lr", { type: "log", nameGap: 48 }),
    series,
  });
}

async function drawBest() {
  const best = await api(`/sweeps/${sweepId}/best-so-far`);
  await echartsReady;
  draw(document.getElementById("chart-best"), {
    title: { text: `Best ${best.metric} so far` },
    tooltip: { trigger: "axis", formatter: (rows) => [`${Math.round(rows[0].axisValue)} epochs spent`,
      ...rows.map((row) => `${row.marker}${row.seriesName}: <b>${fmt(row.data[1])}</b>`)].join("<br>") },
    xAxis: valueAxis("epochs spent (per family)", { minInterval: 1 }),
    yAxis: valueAxis(best.metric, { nameGap: 48 }),
    series: byFamily(best.families, (f) => ({ type: "line", step: "end", showSymbol: false, data: points(f) })),
  });
}

async function drawParallelWhenChanged() {
  const parallel = await api(`/sweeps/${sweepId}/parallel?limit=1000`);
  await echartsReady;
  // Draw again only when the rows changed: most polls bring the same best trials.
  const signature = JSON.stringify(parallel.rows.map((row) => [row.trial_id, row.objective]));
  if (signature !== lastParallel) {
    lastParallel = signature;
    drawParallel(parallel);
  }
}

async function drawPareto() {
  // A multi-objective sweep only: its trials on the first two objectives, the front joined.
  const found = await api(`/sweeps/${sweepId}/objectives?max_points=2000`);
  if (found.objectives.length < 2) return;
  await echartsReady;
  const card = document.getElementById("pareto-card");
  card.hidden = false;
  const [x, y] = found.objectives.map((metric, i) => `${metric} (${found.modes[i]})`);
  const front = found.front;
  const chart = draw(document.getElementById("chart-pareto"), {
    title: { text: `Pareto front: ${found.objectives.join(", ")} (${front.trial_ids.length} trials on it)` },
    tooltip: { formatter: ({ seriesName, data }) => `${seriesName}<br>${x}: <b>${fmt(data[0])}</b><br>${y}: <b>${fmt(data[1])}</b>` },
    xAxis: valueAxis(x),
    yAxis: valueAxis(y, { nameGap: 48 }),
    series: [
      ...byFamily(found.families, (f) => ({ type: "scatter", symbolSize: 6, itemStyle: { opacity: 0.5 }, data: points(f, f.trial_ids) })),
      { name: "pareto front", type: "line", z: 5, color: "#d62728", symbol: "diamond", symbolSize: 11,
        lineStyle: { width: 2 }, data: points(front, front.trial_ids) },
    ],
  });
  openTrialOnClick(chart);
}

function drawCharts() {
  // Each chart draws as soon as its own data arrives.
  return Promise.all([drawCurves(), drawLr(), drawBest(), drawParallelWhenChanged(), drawPareto()]);
}

const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
let lastParallel = null;
function settingOrder(a, b) {
  // Batch sizes and clip norms as categories in numeric order; "full" and "none" last.
  const rank = (v) => (typeof v === "number" ? v : Infinity);
  return rank(a) - rank(b) || String(a).localeCompare(String(b));
}

function drawParallel(parallel) {
  const families = [...new Set(parallel.rows.map((row) => row.optimizer))].sort();
  const objectives = parallel.rows.map((row) => row.objective);
  const [low, high] = objectives.length ? [Math.min(...objectives), Math.max(...objectives)] : [0, 1];
  // Axes above the lines, their labels on a white ground, so they stay readable over 1000 lines.
  const axis = { z: 10, nameLocation: "end", nameGap: 14, nameTextStyle: { fontSize: 13, fontWeight: 600 },
    axisLabel: { backgroundColor: "rgba(255, 255, 255, 0.85)", padding: [1, 3] } };
  const settings = parallel.settings ?? [];
  // A setting with many numeric values (a searched range) is a value axis; others are
  // categories, where no clipping is "none".
  const numeric = new Set(settings.filter((name) => {
    const values = new Set(parallel.rows.map((row) => row[name]));
    return values.size > 10 && [...values].every((v) => typeof v === "number");
  }));
  const settingValue = (row, name) => {
    if (numeric.has(name)) return row[name];
    return String(row[name] === null ? "none" : row[name]);
  };
  const space = sweep?.spec.space ?? {};
  const axes = [
    { name: "family", type: "category", data: families },
    { name: "lr", type: "log", ...searchedRange(space.lr, parallel.rows.map((row) => row.lr)) },
    { name: "beta1", ...searchedRange(space.beta1, parallel.rows.map((row) => row.beta1)) },
    { name: "beta2", ...searchedRange(space.beta2, parallel.rows.map((row) => row.beta2)) },
    ...settings.map((name) => (numeric.has(name)
      ? { name: name.replaceAll("_", " "), scale: true }
      : { name: name.replaceAll("_", " "), type: "category",
        data: [...new Set(parallel.rows.map((row) => (row[name] === null ? "none" : row[name])))]
          .sort(settingOrder).map(String) })),
    { name: parallel.metric, scale: true },
  ];
  const metricDim = axes.length - 1;
  draw(document.getElementById("chart-parallel"), {
    title: { text: "Parallel coordinates (best trials; a family without a beta skips its axis)" },
    legend: { show: false },
    tooltip: { show: false },
    parallel: { left: 90, right: 170, top: 70, bottom: 30 },
    parallelAxis: axes.map((one, dim) => ({ dim, ...one, ...axis })),
    visualMap: { type: "continuous", dimension: metricDim, min: low, max: high,
      inRange: { color: VIRIDIS }, calculable: true, right: 24, top: "middle", itemHeight: 200, formatter: fmt },
    series: [{ type: "parallel", name: parallel.metric, lineStyle: { width: 1, opacity: 0.6 },
      // A missing beta is null: ECharts leaves that axis off the line instead of drawing 0.
      data: parallel.rows.map((row) => [row.optimizer, row.lr, row.beta1, row.beta2,
        ...settings.map((name) => settingValue(row, name)), row.objective]) }],
  });
}

function searchedRange(param, values) {
  // An axis spans what the sweep searched (a range's ends, the listed values), or, for a value
  // it fixed or drew elsewhere, the values drawn, a hair apart when they are all one value
  // (ECharts would pad a lone 0.9 out to 0.4..1.4).
  const numbers = (param?.values ?? values).filter((v) => typeof v === "number");
  if (param && typeof param.low === "number") return { min: param.low, max: param.high };
  if (!numbers.length) return { scale: true };
  const [low, high] = [Math.min(...numbers), Math.max(...numbers)];
  const pad = low === high ? Math.max(Math.abs(low) * 0.001, 1e-9) : 0;
  return { min: low - pad, max: high + pad };
}

async function drawImportance() {
  // Across families (family, lr, and betas only if every family has them), or within one.
  const family = document.getElementById("importance-family").value;
  const found = await api(`/sweeps/${sweepId}/importance${family ? `?optimizer=${encodeURIComponent(family)}` : ""}`);
  await echartsReady;
  const names = Object.keys(found.importances);
  draw(document.getElementById("chart-importance"), {
    title: { text: `Hyperparameter importance (${found.method}, ${found.trials} ${found.optimizer ?? "trials"}${found.optimizer ? " trials" : ""})` },
    legend: { show: false },
    grid: { left: 80, top: 44 },
    xAxis: valueAxis("importance", { scale: false }),
    yAxis: { type: "category", data: names, inverse: true },
    series: [{ type: "bar", name: "importance", data: names.map((name) => found.importances[name]), color: "#2f6fde" }],
  });
}

function originLink(origin) {
  // A configuration an earlier sweep measured first (search.warm_start): a link to that trial.
  const found = origin ? /^sweep (\d+) trial (\d+)$/.exec(origin) : null;
  if (!found) return [];
  return [" ", el("a", { class: "muted origin", href: `/sweeps/${found[1]}/trials/${found[2]}`,
    title: "an earlier sweep measured this configuration first (warm start)" }, `from ${origin}`)];
}

async function drawTrials() {
  const optimizer = document.getElementById("filter-optimizer").value;
  const status = document.getElementById("filter-status").value;
  const params = new URLSearchParams({ limit: "500", sort: sort.key });
  if (sort.order) params.set("order", sort.order);
  if (optimizer) params.set("optimizer", optimizer);
  if (status) params.set("status", status);
  const page = await api(`/sweeps/${sweepId}/trials?${params}`);
  document.querySelector("#trials tbody").replaceChildren(...page.items.map((trial) =>
    el("tr", { "data-trial": trial.id },
      el("td", {}, el("a", { href: `/sweeps/${sweepId}/trials/${trial.number}` }, trial.number), ...originLink(trial.origin)),
      el("td", {}, trial.optimizer),
      el("td", {}, trial.status), el("td", {}, fmt(trial.objective)), el("td", {}, fmt(trial.best_objective)),
      el("td", {}, trial.epochs_run), el("td", {}, hparamText(trial.hyperparameters, trial.settings)))));
}

let importanceDrawn = false;
let importanceAt = 0;
let chartsFinal = false;
async function refresh() {
  // Fetch the charts' data while the sweep itself loads, once it is known: the first time the
  // charts wait for it (their axes span what its spec searched).
  const charts = sweep ? drawCharts() : null;
  sweep = await api(`/sweeps/${sweepId}`);
  document.title = `optisweep: ${sweep.name}`;
  document.getElementById("title").textContent = `${sweep.name} (sweep ${sweep.id})`;
  document.getElementById("crumb").textContent = `sweep ${sweep.id}`;
  document.getElementById("status").textContent = sweep.status;
  const counts = sweep.trial_counts;
  const done = sweep.num_trials - counts.pending - counts.running;
  const progress = document.getElementById("progress");
  progress.style.width = `${sweep.num_trials ? (100 * done) / sweep.num_trials : 0}%`;
  progress.className = sweep.status;  // its colour says how it ended: failed, cancelled, completed
  document.getElementById("progress-text").textContent = `${done} / ${sweep.num_trials}`;
  document.getElementById("counts").textContent = Object.entries(counts).filter(([, n]) => n)
    .map(([name, n]) => `${name} ${n}`).join(" · ");
  document.getElementById("cancel").hidden = finished();  // nothing to cancel once it ended
  document.getElementById("sweep-error").textContent = sweep.error ?? "";
  document.getElementById("sweep-packing").textContent = sweep.packing ?? "";
  for (const id of ["filter-optimizer", "importance-family"]) {
    const select = document.getElementById(id);
    if (select.options.length === 1) {
      for (const name of sweep.spec.space.optimizers) select.append(el("option", {}, name));
    }
  }
  await Promise.all([drawLeaderboard(), charts ?? drawCharts(), drawTrials()]);
  if (finished() && !chartsFinal) {
    // The charts' data was fetched before the status said the sweep ended, so it may lack the
    // last epochs: draw them once more, now that nothing will change.
    chartsFinal = true;
    await drawCharts();
  }
  const now = Date.now();
  if (!importanceDrawn && (finished() || now - importanceAt > 15000)) {
    importanceAt = now;  // fANOVA is costly: at most every 15 s while running, once when done
    await drawImportance();
    importanceDrawn = finished();
  }
}

document.getElementById("csv").href = `${API}/sweeps/${sweepId}/trials.csv`;
document.getElementById("settings").addEventListener("toggle", async (event) => {
  const shown = document.getElementById("spec-yaml");
  if (!event.target.open || shown.textContent) return;
  const response = await fetch(`${API}/sweeps/${sweepId}/spec.yaml`);
  shown.textContent = response.ok ? await response.text() : `could not load the spec (${response.status})`;
});
document.getElementById("copy-spec").addEventListener("click", async (event) => {
  await navigator.clipboard.writeText(document.getElementById("spec-yaml").textContent);
  event.target.textContent = "Copied";
});
document.getElementById("cancel").addEventListener("click", async () => {
  await api(`/sweeps/${sweepId}/cancel`, { method: "POST" });
  refresh();
});
for (const id of ["filter-optimizer", "filter-status"]) document.getElementById(id).addEventListener("change", drawTrials);
document.getElementById("importance-family").addEventListener("change", drawImportance);
document.getElementById("curves-scale").addEventListener("change", drawCurves);
for (const th of document.querySelectorAll("#trials th[data-sort]")) {
  th.addEventListener("click", () => {
    const key = th.dataset.sort;
    sort = { key, order: sort.key === key && sort.order !== "desc" ? "desc" : "asc" };
    drawTrials();
  });
}
poll(refresh, finished);
