// postdesk queue page: keeps the ticket list, the folder counts and the
// pager current without a reload. Polls /queue/live (the same folder,
// filters and page) every few seconds; the server answers 204 while
// nothing changed. Ticket selections for bulk actions survive a refresh.
// Without this script the page works the same, only without refreshing.
(function () {
  "use strict";
  var root = document.getElementById("queue");
  if (!root || !window.fetch || !window.DOMParser) {
    return;
  }
  var url = root.getAttribute("data-live");
  var stamp = root.getAttribute("data-stamp") || "";
  var PARTS = ["folders", "folder-count", "queue-rows", "pager"];
  var INTERVAL_MS = 3000;
  var busy = false;

  function selected() {
    var out = {};
    var boxes = document.querySelectorAll('input[name="ticket"]:checked');
    for (var i = 0; i < boxes.length; i++) {
      out[boxes[i].value] = true;
    }
    return out;
  }

  function apply(html) {
    var keep = selected();
    var doc = new DOMParser().parseFromString(
      "<!doctype html><body>" + html + "</body>", "text/html");
    PARTS.forEach(function (id) {
      var fresh = doc.getElementById(id);
      var old = document.getElementById(id);
      if (fresh && old) {
        old.replaceWith(document.importNode(fresh, true));
      }
    });
    var boxes = document.querySelectorAll('input[name="ticket"]');
    for (var i = 0; i < boxes.length; i++) {
      if (keep[boxes[i].value]) {
        boxes[i].checked = true;
      }
    }
    root.setAttribute("data-stamp", stamp);
    // New <time> elements: app.js may show them in the viewer's zone.
    document.dispatchEvent(new CustomEvent("postdesk:updated"));
  }

  function poll() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(url + "&since=" + encodeURIComponent(stamp), {
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (r) {
      if (r.status === 200) {
        stamp = r.headers.get("x-queue-stamp") || stamp;
        return r.text().then(apply);
      }
      if (r.status === 401) {
        window.location.assign("/login");
      }
    }).catch(function () {
      // The daemon may be restarting: the next poll tries again.
    }).then(function () {
      busy = false;
    });
  }

  setInterval(poll, INTERVAL_MS);
  document.addEventListener("visibilitychange", poll);
})();
