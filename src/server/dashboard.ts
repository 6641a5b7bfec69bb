// The status page served at GET /admin/: one self-contained HTML document (no CDN) that polls /admin/status.
//
// Why it looks like this:
// - Self-contained (inline CSS and JS, system fonts): the gateway may run offline, and the page must not
//   depend on anything the gateway itself cannot serve.
// - Everything from the report is put in with textContent, never innerHTML: ids, urls and reasons come from
//   the config and from upstream errors, so they are data, not markup.
// - Stable data-* attributes (data-pool, data-tier, data-upstream, data-health, data-breaker, data-drained,
//   data-level, data-rate, data-action, data-route, data-config-error) are the page's test and scripting
//   surface; classes are free to change.
// - The request rate is derived in the browser from the `requests` counter between two polls, so the
//   gateway keeps no per-upstream time series for the page.
// - Drain and enable buttons POST to the admin API with the page's key (from ?key=) as X-API-Key, the same way
//   the polls authenticate; the answer is shown at once by polling again.
// - String.raw keeps the embedded script byte for byte; it must hold no backtick and no dollar-brace.
export const dashboardHtml = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Gateway status</title>
<style>
:root {
  --bg: #f5f6f8; --fg: #1d2330; --muted: #646c7a; --card: #fff; --line: #dde1e7;
  --ok: #1f8a3b; --ok-bg: #e5f5ea; --warn: #a86400; --warn-bg: #fff3dc; --bad: #c62828; --bad-bg: #fde7e7;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14171c; --fg: #e6e9ee; --muted: #9aa3b1; --card: #1d2128; --line: #323845;
    --ok: #4cc26b; --ok-bg: #183323; --warn: #f0aa3c; --warn-bg: #3a2c12; --bad: #ff6b6b; --bad-bg: #3d1c1c;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; padding: 14px 18px;
  background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 18px; }
header .meta { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
header .updated { margin-left: auto; color: var(--muted); font-size: 12px; }
main { padding: 14px 18px 28px; max-width: 1400px; margin: 0 auto; }
#pools.stale { opacity: .55; }
#error { margin: 12px 18px 0; padding: 10px 14px; border-radius: 6px; border: 1px solid var(--bad);
  background: var(--bad-bg); color: var(--bad); font-weight: 600; }
#error[hidden] { display: none; }
.pool { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin: 0 0 16px;
  overflow: hidden; }
.pool-head { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 12px; padding: 10px 14px;
  border-bottom: 1px solid var(--line); }
.pool-head h2 { margin: 0; font-size: 16px; }
.pool-head .sub { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  border: 1px solid currentColor; white-space: nowrap; }
.badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.bad { color: var(--bad); background: var(--bad-bg); }
.badge.plain { color: var(--muted); }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; white-space: nowrap; font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
  font-weight: 600; padding: 6px 10px; border-bottom: 1px solid var(--line); }
td { padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr:last-child td { border-bottom: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.up-row.ok td:first-child { box-shadow: inset 4px 0 var(--ok); }
tr.up-row.warn td:first-child { box-shadow: inset 4px 0 var(--warn); }
tr.up-row.bad td:first-child { box-shadow: inset 4px 0 var(--bad); }
tr.up-row.warn { background: var(--warn-bg); }
tr.up-row.bad { background: var(--bad-bg); }
.id { font-weight: 600; overflow-wrap: anywhere; }
.url, .small { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.reason { overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.empty { padding: 24px; color: var(--muted); text-align: center; }
button.act { font: inherit; font-size: 12px; padding: 2px 10px; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--line); background: var(--card); color: var(--fg); }
button.act:hover { border-color: var(--muted); }
button.act:disabled { opacity: .5; cursor: default; }
#config-error { margin: 12px 0 16px; padding: 10px 14px; border-radius: 6px; border: 1px solid var(--bad);
  background: var(--bad-bg); }
#config-error[hidden] { display: none; }
#config-error h2 { margin: 0 0 4px; font-size: 14px; color: var(--bad); }
#config-error pre { margin: 6px 0 0; white-space: pre-wrap; overflow-wrap: anywhere;
  font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.routes h2 { margin: 0; font-size: 16px; }
/* On a phone each upstream becomes a card: one labelled line per field. */
@media (max-width: 700px) {
  header, main { padding-left: 10px; padding-right: 10px; }
  #error { margin: 10px 10px 0; }
  header .updated { margin-left: 0; width: 100%; }
  thead { display: none; }
  table, tbody, tr, td { display: block; width: 100%; }
  tr.up-row { margin: 10px; width: auto; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  tr.up-row.ok { border-left: 5px solid var(--ok); }
  tr.up-row.warn { border-left: 5px solid var(--warn); }
  tr.up-row.bad { border-left: 5px solid var(--bad); }
  tr.up-row td:first-child { box-shadow: none; }
  td { display: flex; gap: 10px; justify-content: space-between; text-align: right; padding: 5px 10px;
    border-bottom: 1px solid var(--line); }
  td.num { text-align: right; }
  td::before { content: attr(data-label); color: var(--muted); font-size: 12px; text-align: left;
    flex: 0 0 auto; }
  td.first { display: block; text-align: left; }
  td.first::before { content: none; }
}
</style>
</head>
<body>
<header>
  <h1>Gateway status</h1>
  <span id="ready" class="badge plain" data-ready="">…</span>
  <span id="config" class="meta"></span>
  <span class="updated">Last updated: <time id="updated" data-updated="">never</time></span>
</header>
<div id="error" role="alert" hidden></div>
<main>
<section id="config-error" role="alert" data-config-error="" hidden>
  <h2>The last config reload was refused; the running config stays</h2>
  <div id="config-error-when" class="small"></div>
  <pre id="config-error-lines"></pre>
</section>
<div id="pools"><p class="empty">Loading…</p></div>
<section id="routes" class="pool routes" data-routes="" hidden>
  <div class="pool-head"><h2>Routes</h2><span class="sub">matched by longest prefix; host routes first</span></div>
  <table><thead><tr><th>Prefix</th><th>Host</th><th>Pool</th><th>Strip prefix</th></tr></thead>
  <tbody id="routes-body"></tbody></table>
</section>
</main>
<script>
(function () {
  "use strict";
  var POLL_MS = 2000;
  var TIMEOUT_MS = 5000;
  // Relative to the page, so it works under /admin/ and behind a proxy that mounts the gateway elsewhere.
  var path = location.pathname;
  var adminBase = path.charAt(path.length - 1) === "/" ? path : path + "/";
  var statusUrl = adminBase + "status";
  var key = new URLSearchParams(location.search).get("key");
  var headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  // Last seen request counter of each upstream, for the rate.
  var previous = {};
  var lastOk = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function badge(text, level) { return el("span", "badge " + level, text); }
  function cell(label, cls) {
    var td = el("td", cls);
    td.setAttribute("data-label", label);
    return td;
  }
  function levelOf(u) {
    if (u.health === "unhealthy" || u.breaker === "open") return "bad";
    if (u.health === "unknown" || u.breaker === "half_open" || u.drained) return "warn";
    return "ok";
  }
  var HEALTH_LEVEL = { healthy: "ok", unknown: "warn", unhealthy: "bad" };
  var BREAKER_LEVEL = { closed: "ok", half_open: "warn", open: "bad" };
  var TIER_LEVEL = { primary: "ok", backup: "warn", none: "bad" };
  var TIER_TEXT = { primary: "on primaries", backup: "on backups", none: "nothing available" };

  function fmtRate(r) {
    if (r === null) return "–";
    return r >= 100 ? String(Math.round(r)) : r.toFixed(1);
  }
  function ago(iso, now) {
    var t = Date.parse(iso);
    if (isNaN(t)) return "";
    var s = Math.max(0, Math.round((now - t) / 1000));
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    return Math.floor(s / 3600) + "h ago";
  }

  function upstreamRow(pool, u, rates, now) {
    var level = levelOf(u);
    var tr = el("tr", "up-row " + level);
    tr.setAttribute("data-upstream", u.id);
    tr.setAttribute("data-health", u.health);
    tr.setAttribute("data-breaker", u.breaker);
    tr.setAttribute("data-drained", String(u.drained));
    tr.setAttribute("data-level", level);

    var first = cell("Upstream", "first");
    first.appendChild(el("div", "id", u.id));
    first.appendChild(el("div", "url", u.url));
    // Upstreams with "run:" carry their process's state (absent from older gateways, so optional).
    if (u.managed) {
      var m = u.managed;
      var proc = m.running ? "process running, pid " + m.pid : "process not running";
      if (m.restarts) proc += " · " + m.restarts + (m.restarts === 1 ? " restart" : " restarts");
      if (!m.running && m.lastExit) {
        proc += " · exit " + (m.lastExit.signal || m.lastExit.code);
      }
      var pl = el("div", "small", proc);
      pl.setAttribute("data-managed", m.running ? "running" : "stopped");
      first.appendChild(pl);
    }
    tr.appendChild(first);

    var role = cell("Role");
    role.appendChild(badge(u.backup ? "backup" : "primary", "plain"));
    if (u.discovered) {
      var disc = badge("discovered", "plain");
      disc.setAttribute("data-discovered", "true");
      disc.title = "joined through the registry";
      role.appendChild(disc);
    }
    tr.appendChild(role);

    tr.appendChild(cell("Weight", "num")).textContent = String(u.weight);

    var health = cell("Health");
    health.setAttribute("data-field", "health");
    health.appendChild(badge(u.health, HEALTH_LEVEL[u.health] || "warn"));
    tr.appendChild(health);

    var breaker = cell("Breaker");
    breaker.setAttribute("data-field", "breaker");
    breaker.appendChild(badge(u.breaker.replace("_", "-"), BREAKER_LEVEL[u.breaker] || "warn"));
    tr.appendChild(breaker);

    var drained = cell("Drained");
    drained.appendChild(u.drained ? badge("drained", "warn") : el("span", "muted", "no"));
    tr.appendChild(drained);

    tr.appendChild(cell("In flight", "num")).textContent = String(u.inFlight);

    var k = pool.name + "\u0000" + u.id + "\u0000" + u.url;
    var p = previous[k];
    var rate = null;
    if (p && u.requests >= p.requests && now > p.at) rate = (u.requests - p.requests) / ((now - p.at) / 1000);
    rates[k] = { requests: u.requests, at: now };
    var rateCell = cell("Req/s", "num");
    rateCell.setAttribute("data-field", "rate");
    rateCell.setAttribute("data-rate", rate === null ? "" : String(rate));
    rateCell.textContent = fmtRate(rate);
    rateCell.title = u.requests + " requests since start";
    tr.appendChild(rateCell);

    var check = cell("Last check");
    check.setAttribute("data-field", "last-check");
    if (!u.lastCheck) check.appendChild(el("span", "muted", "none yet"));
    else {
      var c = u.lastCheck;
      var what = c.error ? c.error : c.status !== undefined ? "HTTP " + c.status : "ok";
      // One wrapper, so the card layout keeps the two lines together on the right.
      var box = el("div");
      box.appendChild(el("div", "", what + " · " + Math.round(c.latencyMs) + " ms"));
      var when = el("div", "small", ago(c.time, Date.now()));
      when.title = c.time;
      box.appendChild(when);
      check.appendChild(box);
    }
    tr.appendChild(check);

    var reason = cell("Reason", "reason");
    reason.setAttribute("data-field", "reason");
    if (u.reason) reason.textContent = u.reason;
    else reason.appendChild(el("span", "muted", "–"));
    tr.appendChild(reason);

    var act = cell("Action");
    var action = u.drained ? "enable" : "drain";
    var btn = el("button", "act", u.drained ? "Enable" : "Drain");
    btn.type = "button";
    btn.setAttribute("data-action", action);
    btn.title = u.drained ? "send it new requests again" : "no new requests; those in flight finish";
    btn.addEventListener("click", function () { setDrained(pool.name, u.id, action, btn); });
    act.appendChild(btn);
    tr.appendChild(act);
    return tr;
  }

  var COLUMNS = ["Upstream", "Role", "Weight", "Health", "Breaker", "Drained", "In flight", "Req/s",
    "Last check", "Reason", ""];

  async function setDrained(pool, id, action, btn) {
    btn.disabled = true;
    var url = adminBase + "pools/" + encodeURIComponent(pool) + "/upstreams/" + encodeURIComponent(id) +
      "/" + action;
    try {
      var res = await fetch(url, { method: "POST", headers: headers, cache: "no-store" });
      if (!res.ok) {
        var body = await res.json().catch(function () { return {}; });
        throw new Error("HTTP " + res.status + (body.message ? ": " + body.message : ""));
      }
      clearError();
    } catch (err) {
      showError(action.charAt(0).toUpperCase() + action.slice(1) + " " + pool + "/" + id + " failed: " +
        String(err && err.message || err) + ".");
    }
    refresh();
  }

  function renderRoutes(routes) {
    var box = document.getElementById("routes");
    // Absent from older gateways.
    if (!routes) { box.hidden = true; return; }
    var body = document.getElementById("routes-body");
    var frag = document.createDocumentFragment();
    routes.forEach(function (r) {
      var tr = el("tr");
      tr.setAttribute("data-route", r.id);
      tr.appendChild(cell("Prefix", "first")).appendChild(el("span", "id", r.prefix));
      tr.appendChild(cell("Host")).appendChild(r.host ? el("span", "", r.host) : el("span", "muted", "any"));
      tr.appendChild(cell("Pool")).textContent = r.pool;
      tr.appendChild(cell("Strip prefix")).textContent = r.stripPrefix ? "yes" : "no";
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    box.hidden = false;
  }

  function renderConfigError(e) {
    var box = document.getElementById("config-error");
    if (!e) { box.hidden = true; box.setAttribute("data-config-error", ""); return; }
    box.setAttribute("data-config-error", e.time);
    var when = document.getElementById("config-error-when");
    when.textContent = new Date(e.time).toLocaleString() + " · " + e.trigger + " · " + e.file;
    when.title = e.time;
    document.getElementById("config-error-lines").textContent = e.errors.join("\n");
    box.hidden = false;
  }

  function poolSection(pool, rates, now) {
    var sec = el("section", "pool");
    sec.setAttribute("data-pool", pool.name);
    sec.setAttribute("data-tier", pool.activeTierName);
    var head = el("div", "pool-head");
    head.appendChild(el("h2", "", pool.name));
    var tier = badge(TIER_TEXT[pool.activeTierName] || pool.activeTierName,
      TIER_LEVEL[pool.activeTierName] || "warn");
    tier.setAttribute("data-field", "tier");
    head.appendChild(tier);
    var avail = pool.upstreams.filter(function (u) { return u.available; }).length;
    head.appendChild(el("span", "sub",
      avail + " of " + pool.upstreams.length + " available · " + pool.balance));
    sec.appendChild(head);

    var table = el("table");
    var thead = el("thead");
    var hr = el("tr");
    COLUMNS.forEach(function (c) { hr.appendChild(el("th", c === "Weight" || c === "In flight" ||
      c === "Req/s" ? "num" : "", c)); });
    thead.appendChild(hr);
    table.appendChild(thead);
    var tbody = el("tbody");
    pool.upstreams.forEach(function (u) { tbody.appendChild(upstreamRow(pool, u, rates, now)); });
    table.appendChild(tbody);
    sec.appendChild(table);
    return sec;
  }

  function render(report) {
    var now = performance.now();
    var rates = {};
    var frag = document.createDocumentFragment();
    report.pools.forEach(function (p) { frag.appendChild(poolSection(p, rates, now)); });
    if (!report.pools.length) frag.appendChild(el("p", "empty", "No pools configured."));
    previous = rates;
    var main = document.getElementById("pools");
    main.replaceChildren(frag);
    renderRoutes(report.routes);
    renderConfigError(report.lastConfigError || null);

    var ready = document.getElementById("ready");
    ready.textContent = report.ready ? "ready" : "not ready";
    ready.className = "badge " + (report.ready ? "ok" : "bad");
    ready.setAttribute("data-ready", String(report.ready));
    var cfg = report.config;
    var conf = document.getElementById("config");
    conf.textContent = cfg.path + " · " + cfg.hash.slice(0, 12) + " · loaded " +
      new Date(cfg.loadedAt).toLocaleString();
    conf.title = cfg.hash;
  }

  function showError(message) {
    var box = document.getElementById("error");
    box.textContent = message + (lastOk ? " Showing data from " + lastOk.toLocaleTimeString() + "." : "");
    box.hidden = false;
    document.getElementById("pools").classList.add("stale");
  }
  function clearError() {
    document.getElementById("error").hidden = true;
    document.getElementById("pools").classList.remove("stale");
  }

  var pollTimer = null;
  // Polls now (after a button's POST) instead of waiting for the next tick; the one pending tick is replaced.
  function refresh() {
    clearTimeout(pollTimer);
    poll();
  }

  async function poll() {
    var ctrl = new AbortController();
    var timer = setTimeout(function () { ctrl.abort(); }, TIMEOUT_MS);
    try {
      var res = await fetch(statusUrl, { headers: headers, cache: "no-store", signal: ctrl.signal });
      if (!res.ok) {
        var hint = res.status === 401 ? " (add ?key=YOUR_ADMIN_KEY to this page's address)" : "";
        throw new Error("HTTP " + res.status + " " + res.statusText + hint);
      }
      var report = await res.json();
      render(report);
      lastOk = new Date();
      var t = document.getElementById("updated");
      t.textContent = lastOk.toLocaleTimeString();
      t.setAttribute("datetime", lastOk.toISOString());
      t.setAttribute("data-updated", lastOk.toISOString());
      clearError();
    } catch (err) {
      var why = err && err.name === "AbortError" ? "timed out" : String(err && err.message || err);
      showError("Polling " + statusUrl + " failed: " + why + ".");
    } finally {
      clearTimeout(timer);
      // The next poll is scheduled after this one ends, so a slow gateway never gets overlapping polls.
      clearTimeout(pollTimer);
      pollTimer = setTimeout(poll, POLL_MS);
    }
  }
  poll();
})();
</script>
</body>
</html>
`;
