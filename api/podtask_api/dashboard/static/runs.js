/* The runs list (/runs), live: the rows the server rendered are kept current from the runs'
   event stream with the page's filters (the table's data-stream). A run already shown is
   redrawn in place; on the first page a run newer than the newest shown appears at the
   top; a run that left the page's statuses is taken out. Durations of running runs tick.
   Rows are built as templates/_runs_macros.html `run_row` renders them. */
(function () {
  "use strict";

  const FINAL = new Set([
    "Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut", "SystemFailure",
  ]);

  function utcText(iso) {
    const when = new Date(iso);
    if (isNaN(when.getTime())) return "";
    return when.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
  }

  function timeCell(iso) {
    const el = podtask.element;
    return iso ? el("time", { datetime: iso, "data-relative": true }, utcText(iso)) : null;
  }

  function durationMs(run) {
    if (run.durationMs !== null && run.durationMs !== undefined) return run.durationMs;
    if (!run.startedAt || FINAL.has(run.status)) return null;
    return Date.now() - new Date(run.startedAt).getTime();
  }

  function rowFor(run) {
    const el = podtask.element;
    const running = run.startedAt && !FINAL.has(run.status);
    const td = function (attributes) {
      return el.apply(null, ["td"].concat(Array.prototype.slice.call(arguments)));
    };
    return el(
      "tr",
      { dataset: { runId: run.id, createdAt: run.createdAt || "", status: run.status } },
      td({ class: "nowrap" }, el("a", { class: "mono run-link", href: "/runs/" + run.id }, run.id)),
      td({}, el("span", { class: "badge status status-" + run.status, dataset: { field: "status" } }, run.status)),
      td({}, el("a", { href: "/runs?task=" + encodeURIComponent(run.taskId) }, run.taskId)),
      el.apply(null, ["td", { class: "tags" }].concat(
        (run.tags || []).map(function (tag) { return el("span", { class: "tag" }, tag); })
      )),
      td({ class: "nowrap" }, run.machine),
      td({}, run.queue),
      td({ class: "num" }, String(run.attempt)),
      td(
        { class: "num nowrap", "data-running-since": running ? run.startedAt : null },
        podtask.formatDuration(durationMs(run))
      ),
      td({ class: "nowrap" }, timeCell(run.startedAt)),
      td({ class: "nowrap" }, timeCell(run.finishedAt)),
      td({}, run.isTest
        ? el("span", { class: "badge badge-test", title: "Triggered as a test (isTest)" }, "test")
        : null)
    );
  }

  function tickDurations(table) {
    table.querySelectorAll("td[data-running-since]").forEach(function (cell) {
      const since = new Date(cell.dataset.runningSince).getTime();
      if (!isNaN(since)) cell.textContent = podtask.formatDuration(Date.now() - since);
    });
  }

  function instant(iso) {
    const ms = Date.parse(iso || "");
    return isNaN(ms) ? 0 : ms;
  }

  function newestShown(body) {
    let newest = 0;
    body.querySelectorAll("tr[data-created-at]").forEach(function (row) {
      newest = Math.max(newest, instant(row.dataset.createdAt));
    });
    return newest;
  }

  function start() {
    const table = document.getElementById("runs");
    if (!table || !window.EventSource) return;
    const body = table.tBodies[0];
    const empty = document.getElementById("runs-empty");
    const state = document.getElementById("live-state");
    const firstPage = table.dataset.firstPage === "true";
    const statuses = new Set((table.dataset.statuses || "").split(",").filter(Boolean));
    // Runs created before the page was read are not "new"; later ones are.
    let newest = newestShown(body) || Date.now() - 5000;

    function onRun(run) {
      const current = body.querySelector('tr[data-run-id="' + CSS.escape(run.id) + '"]');
      if (statuses.size && !statuses.has(run.status)) {
        // Sent once more when it leaves the page's statuses: it no longer belongs here.
        if (current) current.remove();
      } else if (current) {
        if (current.dataset.status !== run.status) {
          const row = rowFor(run);
          row.classList.add("changed");
          current.replaceWith(row);
        } else {
          current.replaceWith(rowFor(run));
        }
      } else if (firstPage && instant(run.createdAt) >= newest) {
        const row = rowFor(run);
        row.classList.add("arrived");
        body.prepend(row);
        newest = Math.max(newest, instant(run.createdAt));
      }
      if (empty) empty.hidden = body.rows.length > 0;
    }

    function onDeleted(gone) {
      const current = body.querySelector('tr[data-run-id="' + CSS.escape(gone.id) + '"]');
      if (current) current.remove();
      if (empty) empty.hidden = body.rows.length > 0;
    }

    const source = podtask.stream(table.dataset.stream, onRun, { onDeleted: onDeleted });
    source.addEventListener("open", function () {
      if (state) state.textContent = "Live";
    });
    source.addEventListener("error", function () {
      if (state) state.textContent = "Reconnecting…";
    });
    setInterval(function () {
      tickDurations(table);
    }, 1000);
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
