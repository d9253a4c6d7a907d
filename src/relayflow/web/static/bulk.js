// A bulk operation's page: the progress bar and counts follow the workers, once a second,
// until the operation has finished.
(function () {
  "use strict";
  const PERIOD_MS = 1000;

  function show(box, progress) {
    const field = (name) => box.querySelector('[data-field="' + name + '"]');
    const number = (n) => n.toLocaleString("en-US");
    field("bar").value = progress.acted;
    field("bar").textContent = progress.percent + "%";
    for (const name of ["acted", "done", "skipped", "failed"]) field(name).textContent = number(progress[name]);
    if (progress.status !== box.dataset.status) window.location.reload();  // finished: the whole page
  }

  async function follow(box) {
    while (box.dataset.status === "RUNNING") {
      await new Promise((resolve) => setTimeout(resolve, PERIOD_MS));
      if (document.hidden) continue;
      try {
        const response = await fetch(box.dataset.progressUrl, { credentials: "same-origin" });
        if (response.ok) show(box, await response.json());
      } catch (err) { /* offline for a moment: the next round tries again */ }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.querySelector("[data-progress-url]");
    if (box) follow(box);
  });
})();
