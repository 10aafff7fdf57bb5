// The connections page: plain JavaScript over the public API, no build step.
// Read it as a reference frontend: every call below is one an app's own page would make.
(function () {
  "use strict";

  var TOKEN_KEY = "ledger.sessionToken", USER_KEY = "ledger.userId";
  var EVENTS_PATH = "/api/connections/events";
  // Named SSE events the stream may use besides plain "message" (issue 14's event names).
  var EVENT_NAMES = ["connection", "connection.changed", "connection.initiated", "connection.activated",
    "connection.expired", "connection.expiring", "connection.failed", "connection.disconnect_requested",
    "connection.restored", "connection.disconnected", "connection.agents_unbound", "connection.upstream_failed",
    "connection.reconnect_requested", "connection.reconnected"];
  var BROKEN = {EXPIRED: 1, FAILED: 1, INACTIVE: 1};
  var GONE = {DISCONNECTING: 1, DISCONNECTED: 1, REVOKED: 1};

  var $ = function (id) { return document.getElementById(id); };
  var token = sessionStorage.getItem(TOKEN_KEY);
  var cards = new Map();             // connectionId -> {el, data}
  var reconnectSupported = false;
  var source = null;
  var pendingOAuth = new Map();      // connectionId -> popup window

  // -- the session token -------------------------------------------------------------------
  // Production: the embedding app supplies window.ledgerGetToken() or loads ClerkJS (window.Clerk).
  // Sandbox: POST /dev/token mints one for the chosen person. Either way it lives in this tab only.
  function fromApp() {
    return typeof window.ledgerGetToken === "function" || !!(window.Clerk && window.Clerk.session);
  }

  async function getToken() {
    if (typeof window.ledgerGetToken === "function") return await window.ledgerGetToken();
    if (window.Clerk && window.Clerk.session) return await window.Clerk.session.getToken();
    return token;
  }

  async function api(method, path, body) {
    var headers = {"Accept": "application/json"};
    var t = await getToken();
    if (t) headers.Authorization = "Bearer " + t;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    var resp;
    try {
      resp = await fetch(path, {method: method, headers: headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (e) {
      return {ok: false, status: 0, data: null};
    }
    var data = null;
    if (resp.status !== 204) { try { data = await resp.json(); } catch (e) { data = null; } }
    return {ok: resp.ok, status: resp.status, data: data};
  }

  function errorText(r) {
    if (r.status === 0) return "The service could not be reached.";
    return (r.data && r.data.error && r.data.error.message) || ("The request failed (HTTP " + r.status + ").");
  }

  function notice(text, isError) {
    var el = $("notice");
    el.textContent = text || "";
    el.classList.toggle("error", !!isError);
  }

  // -- signing in ---------------------------------------------------------------------------
  function payloadOf(jwt) {
    try {
      var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part));
    } catch (e) { return {}; }
  }

  function setToken(t, user) {
    token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
    sessionStorage.setItem(USER_KEY, user || payloadOf(t).sub || "");
  }

  function signOut() {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    if (source) { source.close(); source = null; }
    streamOpened = false;
    cards.forEach(function (c) { c.el.remove(); });
    cards.clear();
    showSignedIn(false);
    notice("Signed out.");
  }

  function showSignedIn(yes) {
    $("signed-in").hidden = !yes;
    $("signed-out").hidden = yes;
    $("connect-panel").hidden = !yes;
    $("list-panel").hidden = !yes;
    if (yes) $("who").textContent = sessionStorage.getItem(USER_KEY) || "you";
  }

  async function sandboxSignIn(ev) {
    ev.preventDefault();
    var person = $("person").value.trim();
    var r = await api("POST", "/dev/token", {user: person});
    if (!r.ok) { notice(errorText(r), true); return; }
    setToken(r.data.token, r.data.userId);
    await start();
  }

  async function tokenSignIn(ev) {
    ev.preventDefault();
    setToken($("token-input").value.trim());
    $("token-input").value = "";
    await start();
  }

  // -- rendering ----------------------------------------------------------------------------
  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function timeLeft(iso) {
    var ms = new Date(iso) - Date.now();
    if (!(ms > 0)) return "the grace period has ended";
    var min = Math.round(ms / 60000);
    if (min < 60) return min + " min left";
    var h = Math.floor(min / 60);
    if (h < 48) return h + " h " + (min % 60) + " min left";
    return Math.floor(h / 24) + " days left";
  }

  function fact(el, cls, value) {
    var row = el.querySelector(".f-" + cls);
    if (row) row.hidden = !value;
  }

  function render(entry) {
    var el = entry.el, c = entry.data, status = c.status || "UNKNOWN";
    el.dataset.id = c.connectionId;
    el.dataset.status = status;
    el.querySelector(".toolkit").textContent = c.toolkit || "connection";
    var badge = el.querySelector(".badge");
    badge.textContent = status;
    badge.className = "badge status-" + status;
    badge.setAttribute("aria-label", "Status: " + status);
    el.querySelector(".cid").textContent = c.connectionId;
    var agents = c.agents || [];
    el.querySelector(".agents").textContent = agents.length ? agents.join(", ") : "none";
    var scopes = c.scopes && c.scopes.length ? c.scopes.join(" ") : "";
    el.querySelector(".scopes").textContent = scopes; fact(el, "scopes", scopes);
    el.querySelector(".lastused").textContent = when(c.lastUsedAt); fact(el, "lastused", c.lastUsedAt);
    el.querySelector(".uses").textContent = c.useCount ? String(c.useCount) : ""; fact(el, "uses", c.useCount);
    el.querySelector(".expires").textContent = when(c.expiresAt); fact(el, "expires", c.expiresAt);
    el.querySelector(".reason").textContent = c.statusReason || ""; fact(el, "reason", c.statusReason);
    var grace = status === "DISCONNECTING" && c.purgeAt;
    el.querySelector(".purge").textContent = grace ? when(c.purgeAt) + " (" + timeLeft(c.purgeAt) + ")" : "";
    fact(el, "purge", grace);
    el.querySelector(".act-disconnect").hidden = !!GONE[status];
    el.querySelector(".act-undo").hidden = status !== "DISCONNECTING";
    el.querySelector(".act-reconnect").hidden = !(reconnectSupported && BROKEN[status]);
    var timeline = el.querySelector(".timeline");
    if (!timeline.hidden) loadHistory(entry);  // keep an open timeline current
  }

  function upsert(c) {
    if (!c || !c.connectionId) return;
    var entry = cards.get(c.connectionId);
    if (!entry) {
      var el = $("card-template").content.firstElementChild.cloneNode(true);
      entry = {el: el, data: {}};
      cards.set(c.connectionId, entry);
      wire(entry);
      $("connections").prepend(el);
    }
    entry.data = Object.assign({}, entry.data, c);
    render(entry);
    updateCount();
  }

  function updateCount() {
    $("count").textContent = "(" + cards.size + ")";
    $("empty").hidden = cards.size > 0;
  }

  function wire(entry) {
    var el = entry.el;
    el.querySelector(".act-disconnect").addEventListener("click", function () { previewDisconnect(entry); });
    el.querySelector(".act-undo").addEventListener("click", function () { undo(entry); });
    el.querySelector(".act-reconnect").addEventListener("click", function () { reconnect(entry); });
    el.querySelector(".act-history").addEventListener("click", function (ev) {
      var timeline = el.querySelector(".timeline");
      timeline.hidden = !timeline.hidden;
      el.classList.toggle("open", !timeline.hidden);
      ev.currentTarget.setAttribute("aria-expanded", String(!timeline.hidden));
      if (!timeline.hidden) loadHistory(entry);
    });
  }

  async function refreshList() {
    var r = await api("GET", "/api/connections");
    if (!r.ok) {
      notice(errorText(r), true);
      if (r.status === 401) signOut();
      return false;
    }
    r.data.data.forEach(upsert);
    updateCount();
    return true;
  }

  // -- history ------------------------------------------------------------------------------
  var LABELS = {
    "connection.initiated": "Connection started", "connection.activated": "Connected",
    "connection.observed": "Seen at Composio", "connection.status_observed": "Status changed at Composio",
    "connection.expired": "Expired", "connection.failed": "Failed", "connection.used": "Used",
    "connection.disconnect_requested": "Disconnect requested", "connection.disconnect_cancelled": "Disconnect undone",
    "connection.disconnect_completed": "Disconnected", "connection.upstream_disabled": "Disabled at Composio",
    "connection.upstream_enabled": "Enabled again at Composio", "connection.upstream_revoked": "Provider grant revoked",
    "connection.upstream_deleted": "Deleted at Composio", "connection.upstream_missing": "Gone from Composio",
    "connection.provider_action_failed": "A Composio call failed (will retry)",
    "connection.provider_action_dead_lettered": "A Composio call gave up",
    "agent.bound": "Agent bound", "agent.unbound": "Agent unbound"};

  async function loadHistory(entry) {
    var timeline = entry.el.querySelector(".timeline");
    var r = await api("GET", "/api/connections/" + encodeURIComponent(entry.data.connectionId) + "/history");
    timeline.textContent = "";
    if (!r.ok) { timeline.textContent = errorText(r); return; }
    r.data.events.forEach(function (e) {
      var li = document.createElement("li");
      var time = document.createElement("time");
      time.dateTime = e.recorded_at;
      time.textContent = when(e.recorded_at);
      var what = document.createElement("strong");
      what.textContent = LABELS[e.type] || e.type;
      var extra = [];
      if (e.data && e.data.status) extra.push(e.data.status);
      if (e.data && e.data.agent_id) extra.push(e.data.agent_id);
      var actor = e.meta && e.meta.actor ? e.meta.actor.kind + (e.meta.actor.id ? " " + e.meta.actor.id : "") : "";
      var small = document.createElement("span");
      small.className = "meta";
      small.textContent = (extra.length ? extra.join(" · ") + " · " : "") + (actor ? "by " + actor + " · " : "") + "seq " + e.seq;
      li.append(time, " ", what, " ", small);
      timeline.append(li);
    });
  }

  // -- connect and reconnect: a popup, then one read when it is done ------------------------
  function openPopup() {
    // Opened inside the click handler so popup blockers allow it; pointed at the provider later.
    return window.open("about:blank", "ledger-oauth", "popup,width=520,height=680");
  }

  function follow(popup, cid, redirectUrl) {
    if (!redirectUrl) { if (popup) popup.close(); return; }
    if (!popup) { notice("Allow popups, or open the provider's page: " + redirectUrl, true); return; }
    popup.location.href = redirectUrl;
    pendingOAuth.set(cid, popup);
    // The provider sends the popup back to /connect/done, which posts a message; with a provider
    // that does not redirect, the person closes the popup. Both end in one read of the connection.
    var watch = setInterval(function () {
      if (!popup.closed) return;
      clearInterval(watch);
      oauthDone(cid);
    }, 400);
  }

  async function oauthDone(cid) {
    if (!pendingOAuth.has(cid)) return;
    pendingOAuth.delete(cid);
    // While INITIATED, this read asks Composio and records the change (?wait= lets a server that
    // supports it answer as soon as the status moves); the stream then tells every other tab.
    var r = await api("GET", "/api/connections/" + encodeURIComponent(cid) + "?wait=20");
    if (!r.ok) { notice(errorText(r), true); return; }
    upsert(r.data);
    notice(r.data.status === "ACTIVE" ? r.data.toolkit + " is connected." :
      r.data.toolkit + " is " + r.data.status + ": the provider did not finish the sign-in.", r.data.status !== "ACTIVE");
  }

  window.addEventListener("message", function (ev) {
    if (ev.origin !== window.location.origin || !ev.data || ev.data.type !== "ledger:oauth-done") return;
    var cid = ev.data.connectionId;
    if (cid && pendingOAuth.has(cid)) { oauthDone(cid); return; }
    pendingOAuth.forEach(function (_popup, id) { oauthDone(id); });
  });

  async function connect(ev) {
    ev.preventDefault();
    var toolkit = $("toolkit").value.trim();
    var popup = openPopup();
    var r = await api("POST", "/api/connections", {toolkit: toolkit, callbackUrl: window.location.origin + "/connect/done"});
    if (!r.ok) { if (popup) popup.close(); notice(errorText(r), true); return; }
    upsert({connectionId: r.data.connectionId, status: r.data.status, toolkit: toolkit, agents: []});
    notice(r.data.redirectUrl ? "Finish signing in to " + toolkit + " in the popup." : toolkit + " connected.");
    follow(popup, r.data.connectionId, r.data.redirectUrl);
  }

  async function reconnect(entry) {
    var popup = openPopup();
    var cid = entry.data.connectionId;
    var r = await api("POST", "/api/connections/" + encodeURIComponent(cid) + "/reconnect");
    if (r.status === 405 || (r.status === 404 && r.data && r.data.error && r.data.error.message === "No such resource.")) {
      if (popup) popup.close();
      reconnectSupported = false;
      cards.forEach(render);
      notice("This service cannot reconnect in place yet.", true);
      return;
    }
    if (!r.ok) { if (popup) popup.close(); notice(errorText(r), true); return; }
    upsert({connectionId: cid, status: r.data.status});
    follow(popup, cid, r.data.redirectUrl);
  }

  async function probeReconnect() {
    // OPTIONS has no effect and needs no token: 404/405 means the route is not there.
    try {
      var resp = await fetch("/api/connections/probe/reconnect", {method: "OPTIONS"});
      reconnectSupported = resp.ok && /POST/.test(resp.headers.get("Allow") || "POST");
    } catch (e) { reconnectSupported = false; }
    cards.forEach(render);
  }

  // -- disconnect: the dry run first, then a confirmation ----------------------------------
  var dialog = $("disconnect-dialog");

  function para(text, testid) {
    var p = document.createElement("p");
    p.textContent = text;
    if (testid) p.dataset.testid = testid;
    return p;
  }

  async function previewDisconnect(entry) {
    var c = entry.data;
    // The dry run of a forced disconnect: which agents it would unbind, and until when it could be
    // undone. Nothing changes; the confirmation below forces only if agents are bound.
    var r = await api("DELETE", "/api/connections/disconnect", {connectionId: c.connectionId, dryRun: true, force: true});
    if (!r.ok) { notice(errorText(r), true); return; }
    var p = r.data, body = $("dlg-body");
    body.textContent = "";
    $("dlg-title").textContent = "Disconnect " + (c.toolkit || c.connectionId) + "?";
    body.append(para("The account is disabled at Composio at once: nothing can use it from now on."));
    if (p.agents && p.agents.length) {
      body.append(para("These agents would lose access:"));
      var ul = document.createElement("ul");
      ul.dataset.testid = "preview-agents";
      p.agents.forEach(function (a) { var li = document.createElement("li"); li.textContent = a; ul.append(li); });
      body.append(ul);
    } else {
      body.append(para("No agent uses it.", "preview-agents"));
    }
    if (p.purgeAt) body.append(para("You can undo until " + when(p.purgeAt) + "; then the provider's grant is revoked and the account deleted."));
    if (p.canRevoke === false) body.append(para("This provider's grant cannot be revoked from here: remove the app in the provider's own settings too."));
    var confirm = $("dlg-confirm");
    var bound = (p.agents || []).length;
    confirm.textContent = bound ? "Disconnect and unbind " + bound + " agent" + (bound === 1 ? "" : "s") : "Disconnect";
    confirm.onclick = function () { doDisconnect(entry, bound > 0); };
    dialog.showModal();
    $("dlg-cancel").focus();
  }

  async function doDisconnect(entry, force) {
    var r = await api("DELETE", "/api/connections/disconnect", {connectionId: entry.data.connectionId, force: force});
    if (r.status === 409 && r.data && r.data.error && r.data.error.code === "AGENTS_USING_CONNECTION") {
      dialog.close();
      previewDisconnect(entry);  // an agent was bound meanwhile: show the new preview
      return;
    }
    dialog.close();
    if (!r.ok) { notice(errorText(r), true); return; }
    upsert({connectionId: r.data.connectionId, status: r.data.status, purgeAt: r.data.purgeAt, agents: force ? [] : entry.data.agents});
    notice(((r.data.warnings || []).join(" ")) || "Disconnected. You can undo it while the grace period lasts.");
    entry.el.querySelector(".act-undo").focus();
  }

  async function undo(entry) {
    var r = await api("POST", "/api/connections/" + encodeURIComponent(entry.data.connectionId) + "/restore");
    if (!r.ok) { notice(errorText(r), true); return; }
    upsert(r.data);
    notice((entry.data.toolkit || "The connection") + " is back.");
    entry.el.querySelector(".act-disconnect").focus();
  }

  // -- live updates -------------------------------------------------------------------------
  var streamOpened = false, reopenTimer = null, reopenDelay = 2000;

  function setLive(text) { $("live").textContent = text; }

  function onStreamEvent(ev) {
    var data;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (!data) return;
    // {seq, type, connection: {...}, warnings} (or the connection itself)
    var c = data.connection || data;
    if (c.connectionId) upsert(c);
  }

  async function openStream() {
    if (!window.EventSource) { setLive("not supported by this browser"); return; }
    if (source) source.close();
    // EventSource cannot send an Authorization header: the stream (and only it) takes the token
    // as ?access_token=, which the server keeps out of its logs. A fresh token on each open.
    var t = await getToken();
    if (!t) return;
    var es = new EventSource(EVENTS_PATH + "?access_token=" + encodeURIComponent(t));
    source = es;
    es.onopen = function () { streamOpened = true; reopenDelay = 2000; setLive("on"); };
    es.onerror = function () {
      if (es !== source) return;
      if (es.readyState !== EventSource.CLOSED) { setLive("reconnecting…"); return; }
      if (!streamOpened) { setLive("off (this server has no live stream; reload to see changes made elsewhere)"); return; }
      // The server refused a reconnect (an expired token, a restart): open again with a fresh
      // token, and read the list once to catch up on what happened in between.
      setLive("reconnecting…");
      if (reopenTimer) return;
      reopenTimer = setTimeout(async function () {
        reopenTimer = null;
        if (!token && !fromApp()) return;
        await refreshList();
        openStream();
      }, reopenDelay);
      reopenDelay = Math.min(reopenDelay * 2, 60000);
    };
    es.onmessage = onStreamEvent;
    EVENT_NAMES.forEach(function (name) { es.addEventListener(name, onStreamEvent); });
  }

  // The countdown of a grace period is local arithmetic: re-render, no request.
  setInterval(function () {
    cards.forEach(function (entry) { if (entry.data.status === "DISCONNECTING") render(entry); });
  }, 30000);

  async function start() {
    if (!token && !fromApp()) { showSignedIn(false); return; }
    if (fromApp()) {
      // The app owns the session (and signing out of it): show who, from the token's subject.
      sessionStorage.setItem(USER_KEY, payloadOf((await getToken()) || "").sub || "");
      $("sign-out").hidden = true;
    }
    showSignedIn(true);
    if (await refreshList()) {
      notice("");
      openStream();
    }
  }

  if ($("sandbox-signin")) $("sandbox-signin").addEventListener("submit", sandboxSignIn);
  $("token-signin").addEventListener("submit", tokenSignIn);
  $("sign-out").addEventListener("click", signOut);
  $("connect-form").addEventListener("submit", connect);
  probeReconnect();
  start();
})();
