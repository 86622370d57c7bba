// Rampart console, Live page: events from every replica over Server-Sent
// Events (/console/live/stream, same filters as the page), pause and
// resume, and the rate chart refreshed every 5 seconds. Text goes into the
// page through textContent only.
"use strict";
(function () {
  var body = document.getElementById("events-body");
  var status = document.getElementById("live-status");
  var pauseBtn = document.getElementById("pause");
  var empty = document.getElementById("events-empty");
  var maxRows = 500;
  var paused = false;
  var pending = [];

  function setStatus(cls, text) {
    if (!status) return;
    status.hidden = false;
    status.className = "status " + cls;
    status.textContent = text;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text || "";
    tr.appendChild(td);
    return td;
  }

  function row(ev) {
    var tr = document.createElement("tr");
    tr.className = "t-" + ev.type + " new";
    tr.setAttribute("data-time", ev.time);
    cell(tr, ev.clock, "mono");
    cell(tr, ev.replica);
    var td = cell(tr, "");
    var tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = ev.type;
    td.appendChild(tag);
    cell(tr, ev.client, "mono");
    cell(tr, ev.detection);
    cell(tr, ev.rule);
    cell(tr, ev.request, "mono route");
    cell(tr, ev.status);
    cell(tr, ev.detail, "muted");
    return tr;
  }

  function add(evs) {
    for (var i = 0; i < evs.length; i++) {
      body.insertBefore(row(evs[i]), body.firstChild);
    }
    while (body.rows.length > maxRows) body.deleteRow(body.rows.length - 1);
    if (empty && body.rows.length > 0) empty.hidden = true;
  }

  function pausedText() {
    return "paused" + (pending.length ? " · " + pending.length + " new" : "");
  }

  if (body && window.EventSource) {
    var params = new URLSearchParams(window.location.search);
    var es = new EventSource("/console/live/stream?" + params.toString());
    setStatus("", "connecting…");
    es.onopen = function () { setStatus(paused ? "paused" : "live", paused ? pausedText() : "live"); };
    es.onerror = function () { setStatus("down", "reconnecting…"); };
    es.addEventListener("events", function (e) {
      var evs = JSON.parse(e.data);
      if (paused) {
        pending = pending.concat(evs);
        if (pending.length > maxRows) pending = pending.slice(pending.length - maxRows);
        setStatus("paused", pausedText());
      } else {
        add(evs);
      }
    });
    es.addEventListener("dropped", function (e) {
      setStatus("down", "live · " + e.data + " batch(es) skipped: this page fell behind");
    });
    if (pauseBtn) {
      pauseBtn.hidden = false;
      pauseBtn.addEventListener("click", function () {
        paused = !paused;
        pauseBtn.textContent = paused ? "Resume" : "Pause";
        if (!paused) {
          add(pending);
          pending = [];
          setStatus("live", "live");
        } else {
          setStatus("paused", pausedText());
        }
      });
    }
  }

  // The rate chart.
  var chart = document.getElementById("rate-chart");
  if (chart && window.fetch) {
    var svgNS = "http://www.w3.org/2000/svg";
    var refresh = function () {
      fetch(chart.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (ch) {
          if (!ch) return;
          document.getElementById("line-allowed").setAttribute("points", ch.Allowed);
          document.getElementById("line-blocked").setAttribute("points", ch.Blocked);
          document.getElementById("line-banned").setAttribute("points", ch.Banned);
          document.getElementById("total-allowed").textContent = ch.Total.allowed;
          document.getElementById("total-blocked").textContent = ch.Total.blocked;
          document.getElementById("total-banned").textContent = ch.Total.banned;
          document.getElementById("chart-max").textContent = ch.Max;
          var ticks = document.getElementById("chart-ticks");
          while (ticks.firstChild) ticks.removeChild(ticks.firstChild);
          (ch.Ticks || []).forEach(function (t) {
            var l = document.createElementNS(svgNS, "line");
            l.setAttribute("x1", t.X); l.setAttribute("x2", t.X);
            l.setAttribute("y1", 0); l.setAttribute("y2", ch.Height);
            var tx = document.createElementNS(svgNS, "text");
            tx.setAttribute("x", t.X); tx.setAttribute("y", 14);
            tx.textContent = t.Label;
            ticks.appendChild(l); ticks.appendChild(tx);
          });
        })
        .catch(function () {});
    };
    setInterval(refresh, 5000);
  }
})();
