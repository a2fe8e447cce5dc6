// The distill run page: while a stage runs, its JSON twin is polled and the stages, the loss curve and the eval
// table are updated in place (text via textContent, numbers via setAttribute; never HTML). When the run stops
// being active, or the page needs a part it does not have yet (a first loss curve, a first eval table), the
// page is loaded again so the server renders it whole.
"use strict";

const POLL_MS = 4000;

function stageRow(stage) {
  const row = el("tr", null, "stage", { "data-stage": stage.name });
  row.append(el("th", stage.name), el("td", stage.state, `stage-state state-${stage.state}`),
    el("td", stage.detail, "stage-detail"));
  return row;
}

function updateCurve(curve) {
  const svg = document.querySelector("svg#loss-curve");
  svg.querySelector("polyline.train").setAttribute("points", curve.train);
  svg.querySelector("polyline.val").setAttribute("points", curve.val);
  for (const [group, ticks, attr] of [["g.x-ticks", curve.x_ticks, "x"], ["g.y-ticks", curve.y_ticks, "y"]]) {
    const labels = svg.querySelectorAll(`${group} text`);
    ticks.forEach(([position, label], i) => {
      if (!labels[i]) return;
      labels[i].textContent = label;
      labels[i].setAttribute(attr, attr === "y" ? String(position + 4) : String(position));
    });
  }
}

function updateEval(table) {
  const node = document.querySelector("table#eval-table");
  const head = el("tr");
  head.append(el("th"), ...table.names.map((name) => el("th", name)));
  node.tHead.replaceChildren(head);
  node.tBodies[0].replaceChildren(...table.rows.map((cells) => {
    const row = el("tr");
    cells.forEach((cell, i) => row.append(el(i === 0 ? "th" : "td", cell)));
    return row;
  }));
}

function needsReload(data) {
  const hasCurve = Boolean(document.querySelector("svg#loss-curve"));
  const hasEval = Boolean(document.querySelector("table#eval-table"));
  const stages = document.querySelectorAll("#stages tr.stage").length;
  return !data.active || hasCurve !== Boolean(data.loss_curve) || hasEval !== Boolean(data.eval_table)
    || stages !== data.stages.length;
}

async function poll(root, status) {
  let data = null;
  try {
    const response = await fetch(`/api/distill/run?dir=${encodeURIComponent(root.dataset.dir)}`,
      { headers: { Accept: "application/json" } });
    if (response.ok) data = await response.json();
    else status.textContent = `refresh failed (HTTP ${response.status}); trying again`;
  } catch (err) {
    status.textContent = "refresh failed (server unreachable); trying again";
  }
  if (data) {
    if (needsReload(data)) {
      window.location.reload();
      return;
    }
    document.querySelector("#stages tbody").replaceChildren(...data.stages.map(stageRow));
    if (data.loss_curve) updateCurve(data.loss_curve);
    if (data.eval_table) updateEval(data.eval_table);
    status.textContent = `running: updated ${new Date().toLocaleTimeString()}`;
  }
  window.setTimeout(() => poll(root, status), POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("distill-run");
  if (!root || root.dataset.active !== "true") return;
  window.setTimeout(() => poll(root, document.getElementById("poll-status")), POLL_MS);
});
