// Settings pages: small enhancements; every form works without them.
(function () {
  "use strict";

  // Provider forms: show only the fieldset of the chosen type. Hidden fieldsets are also
  // disabled, so they are not submitted (the server reads only the chosen type's fields).
  function wireProviderForms() {
    document.querySelectorAll("form[data-provider-form]").forEach((form) => {
      const select = form.querySelector("select[data-provider-type]");
      if (!select) return;
      const sync = () => {
        form.querySelectorAll("fieldset[data-provider-fields]").forEach((fieldset) => {
          const off = fieldset.dataset.providerFields !== select.value;
          fieldset.hidden = off;
          fieldset.disabled = off;
        });
      };
      select.addEventListener("change", sync);
      sync();
    });
  }

  // A new API key is on this page once: replace the history entry of the POST with a GET
  // of the list, so reloading (or coming back) neither shows it again nor creates another.
  function forgetCreatedKey() {
    if (document.querySelector("[data-key-created]") && window.history.replaceState) {
      window.history.replaceState(null, "", "/settings/keys");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    wireProviderForms();
    forgetCreatedKey();
  });
})();
