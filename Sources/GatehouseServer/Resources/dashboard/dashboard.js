// Gatehouse dashboard: keeps the parts marked data-live up to date by asking the server for them
// again (plain GETs, so any reverse proxy passes them). Every page works without this script.
(function () {
  "use strict";
  var regions = document.querySelectorAll("[data-live]");
  if (!regions.length || !window.fetch) { return; }
  var interval = 2000;
  var shown = [];
  function refresh(region, index) {
    return fetch(region.getAttribute("data-live"), {
      headers: { "X-Gatehouse-Live": "1" }, credentials: "same-origin", cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.text();
    }).then(function (html) {
      if (shown[index] !== html) {
        region.innerHTML = html;
        shown[index] = html;
      }
      region.removeAttribute("data-stale");
    }).catch(function () {
      region.setAttribute("data-stale", "true");
    });
  }
  function tick() {
    if (document.hidden) { setTimeout(tick, interval); return; }
    Promise.all(Array.prototype.map.call(regions, refresh)).then(function () { setTimeout(tick, interval); });
  }
  setTimeout(tick, interval);
})();
