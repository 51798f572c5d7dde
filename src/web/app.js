// postdesk's one script, served as /static/app.js (the CSP allows no
// inline script). Progressive enhancement only: every page works without it.
//
// 1. Times: the server writes <time datetime="UTC ISO" title="… UTC">UTC
//    text</time>; here the text becomes the browser's own zone (the title
//    keeps the UTC value for hover).
// 2. Presence: on a ticket page (#presence carries the ticket and the
//    interval), a heartbeat POSTs to /tickets/{id}/presence with the page's
//    form token every interval, saying "replying" while the reply box has
//    been typed in since the last beat (or holds text and has focus), and
//    shows who else is there. Names go in as text, never as markup.
"use strict";

(function () {
  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function localTimes() {
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      zone = "";
    }
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      var text =
        d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
        " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
      t.textContent = zone ? text + " " + zone.replace(/_/g, " ") : text;
      t.setAttribute("data-local", "1");
    }
  }

  function presence() {
    var box = document.getElementById("presence");
    if (!box) return;
    var ticket = box.getAttribute("data-ticket");
    var interval = parseInt(box.getAttribute("data-interval"), 10) || 10;
    var token = document.querySelector('input[name="csrf"]');
    if (!ticket || !token) return;
    var reply = document.querySelector('form[action$="/reply"] textarea[name="body"]');
    var typed = false;
    if (reply) {
      reply.addEventListener("input", function () {
        if (!typed) {
          typed = true;
          beat();
        }
      });
    }
    var stopped = false;

    function activity() {
      var focused = reply && document.activeElement === reply && reply.value.trim() !== "";
      return typed || focused ? "replying" : "viewing";
    }

    function show(others) {
      box.textContent = others.join(", ");
    }

    function beat() {
      if (stopped) return;
      var body = new URLSearchParams();
      body.set("csrf", token.value);
      body.set("activity", activity());
      typed = false;
      fetch("/tickets/" + encodeURIComponent(ticket) + "/presence", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: body.toString(),
      })
        .then(function (r) {
          if (r.status === 401 || r.status === 403) {
            stopped = true;
            return null;
          }
          return r.ok ? r.json() : null;
        })
        .then(function (j) {
          if (j && Array.isArray(j.others)) show(j.others);
        })
        .catch(function () {});
    }

    beat();
    setInterval(beat, interval * 1000);
  }

  function start() {
    localTimes();
    presence();
    // The queue's live refresh (queue.js) replaces rows; their times are
    // UTC again until rewritten.
    document.addEventListener("postdesk:updated", localTimes);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
