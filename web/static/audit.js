// The auditor's page: plain JavaScript over the /audit API with an audit:read key.
(function () {
  "use strict";

  var KEY = "ledger.auditKey";
  var $ = function (id) { return document.getElementById(id); };
  var apiKey = sessionStorage.getItem(KEY);

  async function call(path) {
    var resp;
    try {
      resp = await fetch(path, {headers: {"X-Api-Key": apiKey, "Accept": "application/json"}});
    } catch (e) {
      return {ok: false, status: 0, data: null, resp: null};
    }
    var data = null;
    var json = (resp.headers.get("Content-Type") || "").indexOf("json") >= 0 && resp.headers.get("Content-Type").indexOf("ndjson") < 0;
    if (json) { try { data = await resp.json(); } catch (e) { data = null; } }
    return {ok: resp.ok, status: resp.status, data: data, resp: resp};
  }

  function errorText(r) {
    if (r.status === 0) return "The service could not be reached.";
    return (r.data && r.data.error && r.data.error.message) || ("The request failed (HTTP " + r.status + ").");
  }

  function say(id, text, cls) {
    var el = $(id);
    el.textContent = text;
    el.className = cls || (id === "notice" ? "notice" : "help");
  }

  function short(hash) { return hash ? hash.slice(0, 16) + "…" : ""; }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
    return td;
  }

  // -- the key ------------------------------------------------------------------------------
  function useKey(ev) {
    ev.preventDefault();
    apiKey = $("api-key").value.trim();
    $("api-key").value = "";
    sessionStorage.setItem(KEY, apiKey);
    start();
  }

  function forgetKey() {
    apiKey = null;
    sessionStorage.removeItem(KEY);
    $("audit-body").hidden = true;
    $("forget-key").hidden = true;
    say("notice", "The key is forgotten.");
  }

  // -- verify -------------------------------------------------------------------------------
  async function verify() {
    say("verify-result", "Verifying…", "");
    var r = await call("/audit/verify");
    if (!r.ok) { say("verify-result", errorText(r), "bad"); return false; }
    var v = r.data;
    $("head-seq").textContent = v.head ? v.head.seq : "—";
    $("head-hash").textContent = v.head ? v.head.hash : "—";
    $("checked").textContent = v.checked;
    // A broken chain has no trustworthy head: what is shown is the last event that verified.
    $("head-seq-label").textContent = v.ok ? "Head seq" : "Last good seq";
    $("head-hash-label").textContent = v.ok ? "Head hash" : "Its hash";
    if (v.ok) {
      say("verify-result", "Chain intact: " + v.checked + " events verified up to seq " + (v.head ? v.head.seq : 0) + ".", "ok");
    } else {
      say("verify-result", "Chain broken at seq " + v.first_bad_seq + (v.reason ? ": " + v.reason : "") + ".", "bad");
    }
    return true;
  }

  // -- signed heads -------------------------------------------------------------------------
  function b64bytes(text) {
    var bin = atob(text.trim());
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function importKey(text) {
    if (!text || !window.crypto || !crypto.subtle) return null;
    try {
      return await crypto.subtle.importKey("raw", b64bytes(text), {name: "Ed25519"}, false, ["verify"]);
    } catch (e) { return null; }
  }

  async function signatureOk(key, head) {
    // What the ledger signs: canonical JSON of {seq, hash, time} (sorted keys, no spaces).
    var message = new TextEncoder().encode(JSON.stringify({hash: head.hash, seq: Number(head.seq), time: head.time}));
    try {
      return await crypto.subtle.verify({name: "Ed25519"}, key, b64bytes(head.signature), message);
    } catch (e) { return false; }
  }

  async function chainHashAt(seq) {
    var r = await call("/audit/events?after=" + (Number(seq) - 1) + "&limit=1");
    if (!r.ok || !r.data.events.length || r.data.events[0].seq !== Number(seq)) return null;
    return r.data.events[0].hash;
  }

  async function loadPublicKey() {
    if ($("public-key").value) return;
    var r = await call("/audit/public-key");
    if (r.ok) $("public-key").value = r.data.public_key;
  }

  async function checkHeads() {
    var r = await call("/audit/heads");
    var table = $("heads-table"), body = table.querySelector("tbody");
    body.textContent = "";
    if (!r.ok) { say("heads-note", errorText(r)); table.hidden = true; return; }
    var heads = r.data.heads;
    if (!heads.length) {
      say("heads-note", "No signed heads yet (the relay signs them with --sign-every, or `ledger sign-head`).");
      table.hidden = true;
      return;
    }
    var key = await importKey($("public-key").value);
    say("heads-note", key ? heads.length + " signed heads." :
      heads.length + " signed heads; no usable Ed25519 public key, so signatures are not checked.");
    for (var i = heads.length - 1; i >= 0; i--) {
      var h = heads[i], tr = document.createElement("tr");
      cell(tr, String(h.seq));
      cell(tr, h.time);
      cell(tr, short(h.hash), "mono").title = h.hash;
      if (key) {
        var good = await signatureOk(key, h);
        cell(tr, good ? "valid" : "INVALID", good ? "ok" : "bad");
      } else {
        cell(tr, "not checked");
      }
      var at = await chainHashAt(h.seq);
      cell(tr, at === null ? "seq not found" : at === h.hash ? "yes" : "NO", at === h.hash ? "ok" : "bad");
      body.append(tr);
    }
    table.hidden = false;
  }

  // -- state as of --------------------------------------------------------------------------
  async function showState(ev) {
    ev.preventDefault();
    var seq = $("as-of-seq").value.trim(), local = $("as-of-time").value;
    var asOf = seq || (local ? new Date(local).toISOString() : "");
    if (!asOf) { say("state-note", "Pick a time or a seq."); return; }
    var r = await call("/audit/state?as_of=" + encodeURIComponent(asOf));
    var table = $("state-table"), body = table.querySelector("tbody");
    body.textContent = "";
    if (!r.ok) { say("state-note", errorText(r)); table.hidden = true; return; }
    var ids = Object.keys(r.data.connections);
    say("state-note", ids.length + (ids.length === 1 ? " connection" : " connections") + " as of " + asOf + ".");
    ids.forEach(function (id) {
      var c = r.data.connections[id], tr = document.createElement("tr");
      cell(tr, id, "mono");
      cell(tr, c.user_id || "");
      cell(tr, c.toolkit);
      cell(tr, c.status);
      cell(tr, (c.agents || []).join(", "));
      body.append(tr);
    });
    table.hidden = ids.length === 0;
  }

  // -- export -------------------------------------------------------------------------------
  async function download(ev) {
    ev.preventDefault();
    var params = new URLSearchParams();
    if ($("from-seq").value) params.set("from_seq", $("from-seq").value);
    if ($("to-seq").value) params.set("to_seq", $("to-seq").value);
    say("export-note", "Preparing the export…");
    var r = await call("/audit/export" + (params.toString() ? "?" + params : ""));
    if (!r.ok) { say("export-note", errorText(r)); return; }
    // The key travels in a header, so a plain link cannot download it: fetch, then save the blob.
    var blob = await r.resp.blob();
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "ledger-export.ndjson";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
    say("export-note", "Downloaded ledger-export.ndjson (" + blob.size + " bytes).");
  }

  async function start() {
    if (!apiKey) return;
    $("forget-key").hidden = false;
    say("notice", "Checking the key…");
    if (!(await verify())) {
      var failed = $("verify-result").textContent;
      say("notice", failed, "notice error");
      return;
    }
    say("notice", "");
    $("audit-body").hidden = false;
    await loadPublicKey();
    await checkHeads();
  }

  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("verify").addEventListener("click", verify);
  $("check-heads").addEventListener("click", checkHeads);
  $("state-form").addEventListener("submit", showState);
  $("export-form").addEventListener("submit", download);
  start();
})();
