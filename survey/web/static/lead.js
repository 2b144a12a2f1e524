// The lead page: before and after images of the lead in one Leaflet map, split by the
// vendored leaflet-side-by-side control (before on the left, after on the right).
(function () {
  "use strict";
  var el = document.getElementById("swipe");
  if (!el) { return; }
  var data = JSON.parse(document.getElementById("swipe-data").textContent);
  var map = L.map(el, { attributionControl: false, zoomSnap: 0.25 });
  function overlay(item) {
    if (!item) { return null; }
    var b = item.bounds; // west, south, east, north
    var layer = L.imageOverlay(item.url, [[b[1], b[0]], [b[3], b[2]]]).addTo(map);
    // leaflet-side-by-side clips a layer's container; an image overlay's is its <img>
    layer.getContainer = function () { return this.getElement(); };
    return layer;
  }
  var before = overlay(data.before);
  var after = overlay(data.after);
  var outline = L.geoJSON(data.outline, { style: { color: "#ff2d2d", weight: 2, fill: false } });
  outline.addTo(map);
  var any = before || after;
  map.fitBounds(any.getBounds());
  if (before && after) {
    L.control.sideBySide(before, after).addTo(map);
  }
  window.sitewatchSwipe = { map: map, before: before, after: after };
})();
