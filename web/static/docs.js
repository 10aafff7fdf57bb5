// Swagger UI (from the flask-swagger-ui package, served by this app) over /openapi.json.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    tryItOutEnabled: true,
    persistAuthorization: false,  // tokens stay in this tab's sessionStorage, not in localStorage
    validatorUrl: null,           // its default badge is fetched from another host
    onComplete: function () {
      var token = sessionStorage.getItem("ledger.sessionToken");
      var key = sessionStorage.getItem("ledger.auditKey");
      if (token) window.ui.preauthorizeApiKey("clerkSession", token);
      if (key) window.ui.preauthorizeApiKey("apiKey", key);
    }
  });
})();
