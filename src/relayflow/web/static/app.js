// relayflow pages: small enhancements; every page works without them.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Times: shown in the viewer's timezone, UTC kept in the title (hover).
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const formats = {
    datetime: { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" },
    date: { year: "numeric", month: "short", day: "numeric" },
    time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
  };
  function relative(date) {
    const seconds = Math.round((date - Date.now()) / 1000);
    const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size || unit === "second") return rtf.format(Math.round(seconds / size), unit);
    }
    return "";
  }
  function localize(root) {
    root.querySelectorAll("time[data-local]").forEach((el) => {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      const style = el.dataset.local;
      const utc = date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
      el.title = utc + " · shown in " + zone;
      el.textContent = style === "relative" ? relative(date)
        : new Intl.DateTimeFormat(undefined, formats[style] || formats.datetime).format(date);
    });
  }

  // Confirmation dialogs: <button data-dialog="id"> opens <dialog id>, [data-close] closes it.
  function wireDialogs(root) {
    root.querySelectorAll("[data-dialog]").forEach((button) => {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.addEventListener("click", () => {
        const dialog = document.getElementById(button.dataset.dialog);
        if (dialog && dialog.showModal) dialog.showModal();
      });
    });
    root.querySelectorAll("dialog [data-close]").forEach((button) => {
      button.addEventListener("click", () => button.closest("dialog").close());
    });
  }

  // Live regions: an element with data-live-url is replaced by a fresh render of itself
  // every few seconds until the server sends one without data-live-url (it finished).
  function pollLive(el) {
    const url = el.dataset.liveUrl;
    const every = Number(el.dataset.liveInterval || 2000);
    setTimeout(async () => {
      if (!el.isConnected) return;
      el.setAttribute("aria-busy", "true");
      try {
        const response = await fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
        if (response.ok) {
          const html = (await response.text()).trim();
          if (html) {
            const holder = document.createElement(el.tagName === "TR" ? "tbody" : "div");
            holder.innerHTML = html;
            const fresh = holder.firstElementChild;
            if (fresh) {
              el.replaceWith(fresh);
              enhance(fresh.parentNode || document);
              document.dispatchEvent(new CustomEvent("relayflow:live", { detail: fresh }));
              return;
            }
          }
        }
      } catch (err) { /* offline for a moment: try again */ }
      el.removeAttribute("aria-busy");
      pollLive(el);
    }, every);
  }
  function wireLive(root) {
    root.querySelectorAll("[data-live-url]").forEach((el) => {
      if (el.dataset.liveWired) return;
      el.dataset.liveWired = "1";
      pollLive(el);
    });
  }

  function wireMisc(root) {
    root.querySelectorAll("select[data-autosubmit]").forEach((select) => {
      select.addEventListener("change", () => select.form.requestSubmit());
    });
    root.querySelectorAll("[data-copy]").forEach((button) => {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.addEventListener("click", async () => {
        const source = document.getElementById(button.dataset.copy);
        const text = source ? (source.value || source.textContent) : button.dataset.copyText;
        try { await navigator.clipboard.writeText(text.trim()); button.textContent = "Copied"; }
        catch (err) { if (source && source.select) source.select(); button.textContent = "Press Ctrl+C"; }
        setTimeout(() => { button.textContent = button.dataset.label || "Copy"; }, 2000);
      });
    });
    // Custom date range: the from/to fields only matter when "custom" is chosen.
    root.querySelectorAll("select[data-range]").forEach((select) => {
      const custom = document.getElementById(select.dataset.range);
      const sync = () => { if (custom) custom.hidden = select.value !== "custom"; };
      select.addEventListener("change", sync);
      sync();
    });
  }

  // Loading state: a submitted form says so and cannot be sent twice by a double click.
  function wireForms(root) {
    root.querySelectorAll("form").forEach((form) => {
      if (form.dataset.wiredSubmit) return;
      form.dataset.wiredSubmit = "1";
      form.addEventListener("submit", (event) => {
        const button = form.querySelector('button[type="submit"], button:not([type])');
        // After this tick, so the browser has already read the form's fields and any
        // script handling the submit itself has had its say.
        setTimeout(() => {
          if (event.defaultPrevented) return;
          form.setAttribute("aria-busy", "true");
          if (!button) return;
          button.disabled = true;
          button.dataset.label = button.textContent;
          button.textContent = form.method.toLowerCase() === "get" ? "Loading…" : "Working…";
        }, 0);
      });
    });
  }
  // Coming back with the Back button restores a page from cache with its buttons disabled.
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    document.querySelectorAll("form[aria-busy]").forEach((form) => {
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[disabled][data-label]").forEach((b) => {
        b.disabled = false; b.textContent = b.dataset.label;
      });
    });
  });

  function enhance(root) {
    localize(root);
    wireDialogs(root);
    wireLive(root);
    wireMisc(root);
    wireForms(root);
  }

  window.relayflow = { enhance, csrf };
  document.addEventListener("DOMContentLoaded", () => enhance(document));
})();
