// The OAuth popup lands here (the callbackUrl given to POST /api/connections). Tell the page
// that opened it, on this origin only, and close: that page then asks for the connection once.
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var message = {type: "ledger:oauth-done", connectionId: params.get("connectionId") || params.get("connected_account_id")};
  if (window.opener && !window.opener.closed) {
    window.opener.postMessage(message, window.location.origin);
    window.close();
  }
})();
