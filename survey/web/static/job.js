// A job's page: poll its status every second until it is done or failed, then reload once
// to show the result.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("job-data").textContent);
  if (data.status === "done" || data.status === "failed") { return; }
  var bar = document.getElementById("job-progress");
  var stage = document.getElementById("job-stage");
  function poll() {
    fetch(data.status_url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        bar.value = job.progress;
        stage.textContent = job.stage || "";
        if (job.status === "done" || job.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();
