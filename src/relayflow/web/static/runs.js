// Run history: the viewer's timezone for the server, tidy filter URLs, live chips and chart.
(function () {
  "use strict";
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const REFRESH_MS = 15000; // chips and chart; paused while the tab is hidden

  // The server draws the chart and reads custom from/to times in this zone.
  // IANA names are letters, digits and / _ + -, all allowed in a cookie as they are.
  const saved = document.cookie.split("; ").find((c) => c.startsWith("rf_tz="));
  if (!saved || saved.slice(6) !== zone) {
    document.cookie = "rf_tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
  }

  // Submit only the filters that are set, so URLs stay short enough to read and share.
  function wireFilters(form) {
    const range = form.elements.range;
    const tz = form.elements.tz;
    if (tz && !tz.value && !form.elements.from.value && !form.elements.to.value) {
      tz.value = zone;
      form.querySelectorAll("[data-zone-name]").forEach((el) => { el.textContent = zone; });
    }
    range.addEventListener("change", () => { if (range.value !== "custom") form.requestSubmit(); });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const custom = range.value === "custom";
      const params = new URLSearchParams();
      for (const [name, value] of new FormData(form)) {
        if (!value) continue;
        if (!custom && (name === "from" || name === "to" || name === "tz")) continue;
        if (name === "range" && value === "30d") continue; // the default
        params.append(name, value);
      }
      const query = params.toString().replace(/%2C/g, ",").replace(/%3A/g, ":");
      window.location.assign(form.action + (query ? "?" + query : ""));
    });
  }

  // Chips and chart again from the server: counts change in place (focus stays where it
  // is), and the chart is swapped only when nobody is reading its table.
  async function refresh(box) {
    try {
      const response = await fetch(box.dataset.summaryUrl, {
        headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
      if (!response.ok) return;
      const holder = document.createElement("div");
      holder.innerHTML = (await response.text()).trim();
      const fresh = holder.firstElementChild;
      if (!fresh) return;
      fresh.querySelectorAll("[data-chip]").forEach((chip) => {
        const mine = box.querySelector('[data-chip="' + chip.dataset.chip + '"] [data-count]');
        if (mine) mine.textContent = chip.querySelector("[data-count]").textContent;
      });
      const figure = box.querySelector("figure.volume");
      const next = fresh.querySelector("figure.volume");
      if (figure && next && !figure.contains(document.activeElement) && !figure.querySelector("details[open]")) {
        figure.replaceWith(next);
        box.dataset.chartZone = fresh.dataset.chartZone;
      }
    } catch (err) { /* offline for a moment: the next round tries again */ }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("form[data-run-filters]");
    if (form) wireFilters(form);
    const box = document.querySelector("[data-summary-url]");
    if (!box) return;
    if (box.dataset.chartZone !== zone) refresh(box); // first visit: drawn before the cookie
    setInterval(() => { if (!document.hidden) refresh(box); }, REFRESH_MS);
  });
})();
