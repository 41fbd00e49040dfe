// Polls the JSON of this metrics location every second and draws rates
// from the difference between two polls.
"use strict";
(function () {
  var url = location.pathname + "?format=json";
  var last = null;
  var $ = function (id) { return document.getElementById(id); };

  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : Math.round(n)) + " " + units[i];
  }
  function ms(v) { return v < 1 ? "< 1 ms" : v >= 1000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms"; }
  function duration(msec) {
    var s = Math.floor(msec / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60);
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  }
  // The bound under which q of the requests between two polls fell.
  function quantile(bounds, before, now, q) {
    var delta = now.map(function (n, i) { return n - (before ? before[i] : 0); });
    var count = delta.reduce(function (a, b) { return a + b; }, 0);
    if (count <= 0) { return null; }
    var want = Math.max(1, Math.ceil(count * q)), seen = 0;
    for (var i = 0; i < delta.length; i++) {
      seen += delta[i];
      if (seen >= want) { return i < bounds.length ? bounds[i] : bounds[bounds.length - 1]; }
    }
    return bounds[bounds.length - 1];
  }
  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
  }

  function draw(m, at) {
    var prev = last;
    var secs = prev ? (at - prev.at) / 1000 : 0;
    $("name").textContent = m.server_name || "xps";
    $("state").textContent = "live · pid " + m.pid + " · updated " + new Date(at).toLocaleTimeString();
    if (prev && secs > 0) {
      // The poll itself is a request: it is left out of the rate.
      var reqs = m.req_total - prev.m.req_total - 1;
      $("rps").textContent = (Math.max(0, reqs) / secs).toFixed(1);
      $("out").textContent = bytes(Math.max(0, m.traffic_total_send_bytes - prev.m.traffic_total_send_bytes) / secs) + "/s";
      $("in").textContent = bytes(Math.max(0, m.traffic_total_recv_bytes - prev.m.traffic_total_recv_bytes) / secs) + "/s";
    }
    var before = prev ? prev.m.res_time_buckets : null;
    var p50 = quantile(m.res_time_bucket_bounds_msec, before, m.res_time_buckets, 0.5);
    var p99 = quantile(m.res_time_bucket_bounds_msec, before, m.res_time_buckets, 0.99);
    $("p50").textContent = p50 === null ? "–" : "≤ " + ms(p50);
    $("p99").textContent = p99 === null ? "–" : "≤ " + ms(p99);
    $("conns").textContent = m.conn_current;
    var body = $("classes").tBodies[0];
    body.textContent = "";
    ["1xx", "2xx", "3xx", "4xx", "5xx"].forEach(function (c) {
      var key = "res_code_" + c, row = document.createElement("tr");
      cell(row, c);
      cell(row, m[key]);
      cell(row, prev && secs > 0 ? ((m[key] - prev.m[key]) / secs).toFixed(1) : "–");
      body.appendChild(row);
    });
    var members = $("members").tBodies[0];
    members.textContent = "";
    (m.upstreams || []).forEach(function (u) {
      var row = document.createElement("tr");
      cell(row, u.upstream);
      cell(row, u.peer);
      cell(row, u.up ? "up" : "down", u.up ? "up" : "down");
      cell(row, u.requests);
      cell(row, u.failures);
      cell(row, u.active);
      members.appendChild(row);
    });
    if (!members.rows.length) {
      var row = document.createElement("tr");
      cell(row, "none", "muted");
      row.cells[0].colSpan = 6;
      members.appendChild(row);
    }
    $("uptime").textContent = duration(m.uptime_msec);
    $("workers").textContent = m.workers;
    $("cpu").textContent = m.workers_cpu_usage_percent.map(function (p) { return p.toFixed(1) + "%"; }).join(" · ");
    $("rss").textContent = bytes(m.workers_ram_usage_bytes);
    $("total").textContent = m.req_total;
    $("generation").textContent = m.config_generation;
    $("loaded").textContent = new Date(m.config_loaded_at).toLocaleString();
    $("failures").textContent = m.reload_failures;
    last = { m: m, at: at };
  }

  function poll() {
    fetch(url, { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (m) { draw(m, Date.now()); })
      .catch(function (e) { $("state").textContent = "no answer: " + e.message; })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
