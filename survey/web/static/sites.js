// The sites page: every site's outline on a Leaflet map (no base layer: offline).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("sites-data").textContent);
  var map = L.map("map", { attributionControl: false });
  var layer = L.geoJSON(data, {
    style: { color: "#1f3a5f", weight: 2, fillOpacity: 0.15 },
    onEachFeature: function (feature, lyr) {
      var a = document.createElement("a");
      a.href = "/sites/" + feature.properties.site_id;
      a.textContent = feature.properties.name; // text, never markup
      lyr.bindPopup(a);
    }
  }).addTo(map);
  if (data.features.length) {
    map.fitBounds(layer.getBounds(), { padding: [20, 20] });
  } else {
    map.setView([30, 114], 4);
  }
})();
