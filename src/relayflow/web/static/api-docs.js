// Starts Swagger UI on /api/docs (templates/api_docs.html). A file of its own, not an
// inline script: the pages' Content-Security-Policy runs scripts from this origin only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") return;
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis,
              window.SwaggerUIBundle.SwaggerUIStandalonePreset],
    showExtensions: true,
    showCommonExtensions: true,
    // The online validator would send the document to validator.swagger.io: nothing
    // leaves this server.
    validatorUrl: null,
  });
})();
