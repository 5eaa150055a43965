// Gatehouse dashboard: shows each time's exact moment in the viewer's own zone on hover, and keeps
// the parts marked data-live up to date by asking the server for them again (plain GETs, so any
// reverse proxy passes them). Every page works without this script (times then show UTC on hover).
(function () {
  "use strict";
  function localize(root) {
    Array.prototype.forEach.call(root.querySelectorAll("time[datetime]"), function (time) {
      var moment = new Date(time.getAttribute("datetime"));
      if (isNaN(moment.getTime())) { return; }
      time.title = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "long" });
    });
  }
  localize(document);
  var regions = document.querySelectorAll("[data-live]");
  if (!regions.length || !window.fetch) { return; }
  var interval = 2000;
  var shown = [];
  function refresh(region, index) {
    // Someone typing a reason in this part keeps it as it is until they are done.
    var typing = document.activeElement && region.contains(document.activeElement)
      && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(document.activeElement.tagName);
    var filled = Array.prototype.some.call(region.querySelectorAll("input[type=text]"), function (input) {
      return input.value !== "";
    });
    if (typing || filled) { return Promise.resolve(); }
    return fetch(region.getAttribute("data-live"), {
      headers: { "X-Gatehouse-Live": "1" }, credentials: "same-origin", cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.text();
    }).then(function (html) {
      if (shown[index] !== html) {
        region.innerHTML = html;
        shown[index] = html;
        localize(region);
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
