"use strict";
async function refresh() {
  const status = document.getElementById("status-filter").value;
  const page = await api(`/sweeps?limit=100${status ? `&status=${status}` : ""}`);
  const body = document.querySelector("#sweeps tbody");
  const rows = page.items.map((sweep) => {
    const done = Object.entries(sweep.trial_counts)
      .filter(([name]) => !["pending", "running"].includes(name))
      .reduce((sum, [, count]) => sum + count, 0);
    const share = sweep.num_trials ? (100 * done) / sweep.num_trials : 0;
    return el("tr", { "data-sweep": sweep.id },
      el("td", {}, el("input", { type: "checkbox", class: "pick", value: sweep.id, "aria-label": `compare sweep ${sweep.id}` })),
      el("td", {}, sweep.id),
      el("td", {}, el("a", { href: `/sweeps/${sweep.id}` }, sweep.name)),
      el("td", {}, sweep.status),
      el("td", {}, el("span", { class: "bar" }, el("div", { style: `width:${share}%`, class: sweep.status })), ` ${done} / ${sweep.num_trials}`),
      el("td", {}, fmt(sweep.best_objective)),
      el("td", {}, new Date(sweep.created_at).toLocaleString()));
  });
  const picked = new Set(chosen());
  body.replaceChildren(...rows);
  for (const box of body.querySelectorAll("input.pick")) box.checked = picked.has(box.value);
}

function chosen() {
  // The ticked sweeps, oldest first (the table lists the newest first).
  return [...document.querySelectorAll("#sweeps input.pick:checked")].map((box) => box.value)
    .sort((a, b) => Number(a) - Number(b));
}

document.getElementById("sweeps").addEventListener("change", () => {
  document.getElementById("compare").disabled = chosen().length < 1;
});
document.getElementById("compare").addEventListener("click", () => {
  window.location.assign(`/compare?sweeps=${chosen().join(",")}`);
});

document.getElementById("status-filter").addEventListener("change", refresh);
document.getElementById("submit").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errors = document.getElementById("submit-errors");
  const result = document.getElementById("submit-result");
  errors.replaceChildren();
  result.textContent = "";
  try {
    const spec = await api("/specs/parse", {
      method: "POST", headers: { "content-type": "text/plain" },
      body: document.getElementById("spec").value,
    });
    const sweep = await api("/sweeps", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(spec),
    });
    result.replaceChildren("submitted: ", el("a", { href: `/sweeps/${sweep.id}` }, `sweep ${sweep.id}`));
    refresh();
  } catch (error) {
    if (error.body) errors.replaceChildren(errorList(error.body.detail));
    else errors.replaceChildren(el("p", { class: "error" }, String(error)));
  }
});
poll(refresh, () => false, 3000);
