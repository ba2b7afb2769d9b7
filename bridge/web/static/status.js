// Live progress for the running job: poll /api/status every second while a job is queued or
// running, update the bar and counts, and reload once it ends so the runs table is current and
// the job buttons (disabled by the server while a job runs) come back.
(function () {
  "use strict";
  var panel = document.getElementById("job");
  if (!panel || panel.getAttribute("data-active") !== "1") { return; }
  var words = { queued: "Waiting", running: "Running", succeeded: "Finished", failed: "Failed" };
  var tones = { queued: "muted", running: "warn", succeeded: "ok", failed: "bad" };

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
    return el;
  }

  function render(job) {
    var status = setText("job-status", words[job.status] || job.status);
    if (status) { status.className = "badge tone-" + (tones[job.status] || "muted"); }
    var n = job.steps.length;
    if (job.status === "succeeded") {
      setText("job-step", n + " of " + n + " steps");
    } else if (job.status === "failed") {
      var at = Math.min(job.step, n - 1);
      setText("job-step", "Stopped at step " + (at + 1) + " of " + n + ": " + (job.steps[at] || ""));
    } else if (job.status === "running") {
      setText("job-step", "Step " + (job.step + 1) + " of " + job.steps.length + ": " + (job.step_label || ""));
    }
    var bar = document.getElementById("job-progress");
    if (bar) { bar.value = job.percent; bar.textContent = job.percent + "%"; }
    setText("job-percent", job.percent + "%");
    setText("job-message", job.message || "");
    var list = document.getElementById("job-summary");
    if (list) {
      list.textContent = "";
      job.summary.forEach(function (line) {
        var li = document.createElement("li");
        li.textContent = line;
        list.appendChild(li);
      });
    }
    var error = document.getElementById("job-error");
    if (error) { error.hidden = !job.error; error.textContent = job.error ? "Error: " + job.error : ""; }
  }

  function poll() {
    fetch("/api/status", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { window.location.assign("/login"); return null; }
        return response.json();
      })
      .then(function (state) {
        if (!state) { return; }
        if (!state.job) { return; }
        render(state.job);
        if (state.job.finished) {
          window.setTimeout(function () { window.location.reload(); }, 300);
          return;
        }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }

  window.setTimeout(poll, 1000);
})();
