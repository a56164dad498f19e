"use strict";
// A trial is named by its number in its sweep (/sweeps/1/trials/6), as the leaderboard, the
// report and the CLI name it; /trials/{id} (its id in the API) moves to that address.
const parts = location.pathname.split("/");
const byNumber = parts[1] === "sweeps";
let trialId = byNumber ? null : Number(parts.pop());
let finished = false;

async function refresh() {
  const trial = await api(byNumber ? `/sweeps/${parts[2]}/trials/${parts[4]}` : `/trials/${trialId}`);
  trialId = trial.id;
  const named = `/sweeps/${trial.sweep_id}/trials/${trial.number}`;
  if (location.pathname !== named) history.replaceState(null, "", named);
  finished = !["pending", "running"].includes(trial.status);
  document.title = `optisweep: sweep ${trial.sweep_id}, trial ${trial.number}`;
  document.getElementById("title").textContent = `Sweep ${trial.sweep_id}, trial ${trial.number} (${trial.optimizer})`;
  document.getElementById("crumb").textContent = `trial ${trial.number}`;
  const link = document.getElementById("sweep-link");
  link.href = `/sweeps/${trial.sweep_id}`;
  link.textContent = `sweep ${trial.sweep_id}`;
  const facts = [
    ["status", trial.status], ["hyperparameters", hparamText(trial.hyperparameters, trial.settings)],
    ["objective", fmt(trial.objective)], ["best objective", fmt(trial.best_objective)],
    ["epochs", trial.epochs_run], ["attempt", trial.attempt], ["seed", trial.seed],
    ["pack", trial.pack_id ?? "–"], ["device", trial.device ?? "–"],
    ["checkpoint", trial.checkpoint_path ? `${trial.checkpoint_path} (epoch ${trial.checkpoint_epoch})` : "–"],
    ["started", trial.started_at ?? "–"], ["finished", trial.finished_at ?? "–"],
    ["error", trial.error ?? "–"],
  ];
  document.querySelector("#facts tbody").replaceChildren(
    ...facts.map(([name, value]) => el("tr", {}, el("th", {}, name), el("td", { "data-fact": name }, value))));
  const events = await api(`/trials/${trialId}/events`);
  const created = el("tr", { "data-status": "created" }, el("td", {}, trial.created_at), el("td", {}, "created"),
    el("td", {}, "–"), el("td", {}, `trial ${trial.number} of sweep ${trial.sweep_id}`));
  document.querySelector("#events tbody").replaceChildren(created, ...events.map((event) =>
    el("tr", { "data-status": event.status }, el("td", {}, event.at), el("td", {}, event.status),
      el("td", {}, event.attempt), el("td", {}, event.detail ?? "–"))));
  if (trial.hyperparameter_history?.length) {
    document.getElementById("history").replaceChildren(el("ul", {}, ...trial.hyperparameter_history.map((h) =>
      el("li", {}, `epoch ${h.epoch}: took trial `,
        el("a", { href: `/trials/${h.source_trial_id}` }, h.source_trial ?? `id ${h.source_trial_id}`),
        ` → ${hparamText(h.hyperparameters)}`))));
  }
  const metrics = await api(`/trials/${trialId}/metrics`);
  await echartsReady;
  const box = document.getElementById("curves");
  for (const series of metrics.series) {
    let div = document.getElementById(`metric-${series.name}`);
    if (!div) {
      div = el("div", { class: "card chart", id: `metric-${series.name}` });
      box.append(div);
    }
    const values = series.values.map((v) => (typeof v === "number" ? v : null));
    draw(div, {
      title: { text: series.name },
      legend: { show: false },
      grid: { top: 44 },
      tooltip: { trigger: "axis", formatter: ([{ data }]) => `epoch ${data[0]}<br>${series.name}: <b>${fmt(data[1])}</b>` },
      xAxis: valueAxis("epoch", { minInterval: 1 }),
      yAxis: valueAxis(series.name, { nameGap: 48 }),
      series: [{ type: "line", name: series.name, color: color(trial.optimizer), symbolSize: 6,
        data: series.steps.map((step, i) => [step, values[i]]) }],
    });
  }
}
poll(refresh, () => finished);
