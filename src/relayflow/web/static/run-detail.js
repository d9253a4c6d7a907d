// Run detail: keeps the live region pleasant while it re-renders every few seconds.
// - steps a person opened or closed stay so across re-renders;
// - a status change is announced to screen readers, and Cancel/Retry follow the status.
(function () {
  "use strict";
  const opened = new Map(); // step seq -> open?
  let status = null;

  document.addEventListener("toggle", (event) => {
    const details = event.target;
    if (details instanceof HTMLDetailsElement && details.dataset.step !== undefined) {
      opened.set(details.dataset.step, details.open);
    }
  }, true);

  function syncActions(current) {
    document.querySelectorAll("[data-show-when]").forEach((el) => {
      el.hidden = !el.dataset.showWhen.split(" ").includes(current);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const region = document.getElementById("run-live");
    if (region) status = region.dataset.status;
  });

  document.addEventListener("relayflow:live", (event) => {
    const fresh = event.detail;
    if (!fresh || fresh.id !== "run-live") return;
    fresh.querySelectorAll("details[data-step]").forEach((details) => {
      const wanted = opened.get(details.dataset.step);
      if (wanted !== undefined) details.open = wanted;
    });
    const now = fresh.dataset.status;
    if (now && now !== status) {
      status = now;
      syncActions(now);
      const badge = fresh.querySelector(".run-status .badge");
      const announce = document.getElementById("run-announce");
      if (announce && badge) announce.textContent = "Run status is now " + badge.textContent + ".";
    }
  });
})();
