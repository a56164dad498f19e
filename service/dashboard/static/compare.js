// The comparison page: several sweeps side by side (GET /comparisons), a performance profile
// per family drawn with ECharts, and per sweep each family's time to its target.
"use strict";

const query = new URLSearchParams(window.location.search);

function fillForm() {
  document.getElementById("sweeps").value = query.get("sweeps") || "";
  document.getElementById("target").value = query.getAll("target").join(" ");
  document.getElementById("fraction").value = query.get("fraction") || "0.95";
  document.getElementById("measure").value = query.get("measure") || "auto";
}

function share(profile, taus, tau) {
  const index = taus.findIndex((t) => Math.abs(t - tau) < 1e-9);
  return profile.shares[index];
}

function profileRows(found) {
  const sweeps = found.sweeps.length;
  return found.profiles.map((profile) => el("tr", { "data-optimizer": profile.optimizer },
    el("td", {}, el("span", { class: "swatch", style: `background:${color(profile.optimizer)}` }), profile.optimizer),
    el("td", {}, profile.area.toFixed(3)),
    el("td", {}, `${Math.round(share(profile, found.taus, 1) * sweeps)} of ${sweeps}`),
    el("td", {}, `${Math.round(share(profile, found.taus, 2) * sweeps)} of ${sweeps}`)));
}

function sweepSection(found, sweep) {
  const direction = sweep.mode === "max" ? ">=" : "<=";
  const rows = found.results.filter((row) => row.sweep_id === sweep.sweep_id).map((row) =>
    el("tr", { "data-optimizer": row.optimizer },
      el("td", {}, row.optimizer),
      el("td", {}, fmt(row.best_objective)),
      el("td", {}, `${row.reached} / ${row.trials}`),
      el("td", {}, fmt(row.epochs_to_target)),
      el("td", {}, fmt(row.seconds_to_target)),
      el("td", {}, row.ratio === null ? fmt(null) : `${fmt(row.ratio)}x`),
      el("td", {}, fmt(row.fastest_trial)),
      el("td", {}, fmt(row.tuning_trials))));
  const head = ["optimizer", "best", "reached", "epochs", "seconds", "vs fastest", "fastest trial", "tuning trials"];
  return el("div", { class: "sweep", "data-sweep": sweep.sweep_id },
    el("h2", {}, el("a", { href: `/sweeps/${sweep.sweep_id}` }, `sweep ${sweep.sweep_id} ${sweep.name}`),
      el("span", { class: "muted" }, ` ${sweep.workload}: ${sweep.metric} ${direction} ${fmt(sweep.target)}`)),
    el("p", { class: "muted" }, `target: ${sweep.target_rule}`),
    el("table", {}, el("thead", {}, el("tr", {}, ...head.map((name) => el("th", {}, name)))),
      el("tbody", {}, ...rows)));
}

const DASHES = ["solid", "dashed", "dotted"];

async function drawProfiles(found) {
  // Families with equal profiles would hide each other: each of them is drawn a little apart
  // (its true share stays the point's third value, which the tooltip shows) and dashed apart.
  const alike = {};
  for (const profile of found.profiles) (alike[profile.shares.join()] ??= []).push(profile.optimizer);
  await echartsReady;
  draw(document.getElementById("chart-profile"), {
    title: { text: `Performance profile (${found.measure} to target)` },
    tooltip: { trigger: "axis", formatter: (rows) => [`tau ${fmt(rows[0].axisValue)}`,
      ...rows.map((row) => `${row.marker}${row.seriesName}: <b>${Math.round(row.data[2] * 100)}%</b>`)].join("<br>") },
    xAxis: valueAxis("tau (x the fastest family's time)", { min: 1, max: 4 }),
    yAxis: valueAxis("share of sweeps", { min: -0.05, max: 1.05, nameGap: 40 }),
    series: found.profiles.map((profile) => {
      const same = alike[profile.shares.join()];
      const k = same.indexOf(profile.optimizer);
      const apart = (k - (same.length - 1) / 2) * 0.015;
      return {
        name: profile.optimizer, type: "line", step: "end", showSymbol: false,
        color: color(profile.optimizer), lineStyle: { width: 2, type: DASHES[k % DASHES.length] },
        data: found.taus.map((tau, i) => [tau, profile.shares[i] + apart, profile.shares[i]]),
      };
    }),
  });
}

async function load() {
  const errors = document.getElementById("errors");
  errors.replaceChildren();
  if (!query.get("sweeps")) {
    errors.replaceChildren(el("p", { class: "muted" }, "Name the sweeps to compare (pick them on the sweeps page)."));
    return;
  }
  try {
    const found = await api(`/comparisons?${query.toString()}`);
    document.getElementById("title").textContent = `Compare sweeps ${found.sweeps.map((s) => s.sweep_id).join(", ")}`;
    document.getElementById("measure-text").textContent = `by ${found.measure} to target`;
    document.querySelector("#profiles tbody").replaceChildren(...profileRows(found));
    document.getElementById("per-sweep").replaceChildren(...found.sweeps.map((sweep) => sweepSection(found, sweep)));
    document.getElementById("notes").replaceChildren(...found.notes.map((note) => el("li", {}, note)));
    await drawProfiles(found);
  } catch (error) {
    if (error.body) errors.replaceChildren(errorList(error.body.detail));
    else errors.replaceChildren(el("p", { class: "error" }, String(error)));
  }
}

document.getElementById("options").addEventListener("submit", (event) => {
  event.preventDefault();
  const next = new URLSearchParams();
  next.set("sweeps", document.getElementById("sweeps").value.replace(/\s+/g, ""));
  for (const target of document.getElementById("target").value.split(/\s+/).filter(Boolean)) next.append("target", target);
  next.set("fraction", document.getElementById("fraction").value);
  next.set("measure", document.getElementById("measure").value);
  window.location.search = next.toString();
});

fillForm();
load();
