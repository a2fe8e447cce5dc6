// The trajectory table: the Compare button is live once exactly two runs are ticked.
"use strict";

function tickedRuns() {
  return Array.from(document.querySelectorAll("#runs input.pick:checked")).map((box) => box.value);
}

function updateCompare() {
  const button = document.getElementById("compare-button");
  const hint = document.getElementById("compare-hint");
  if (!button) return;
  const ticked = tickedRuns();
  button.disabled = ticked.length !== 2;
  hint.textContent = ticked.length === 2 ? "" : `tick two runs (${ticked.length} ticked)`;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("compare-form");
  if (!form) return;
  form.addEventListener("change", updateCompare);
  form.addEventListener("submit", (event) => {
    const ticked = tickedRuns();
    event.preventDefault();
    if (ticked.length !== 2) return;
    const query = new URLSearchParams({ a: ticked[0], b: ticked[1] });
    window.location.assign(`/trajectories/compare?${query}`);
  });
  updateCompare();
});
