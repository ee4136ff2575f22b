/* The Queues page (templates/queues.html): Pause, Resume and the limit act through the JSON
   API (POST /api/v1/queues/{name}/pause and /resume, PUT .../concurrency, with the session's
   CSRF token: podtask.api), and the table follows the queues (GET /api/v1/queues every
   REFRESH_MS while the page is visible): the operator rewrites a queue's counts as its runs
   start and end. */
(function () {
  "use strict";

  const REFRESH_MS = 2000;

  function rowOf(name) {
    return document.querySelector('tr[data-queue="' + CSS.escape(name) + '"]');
  }

  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  // Where the limit comes from (catalog_pages.limit_note says the same on the server).
  function limitNote(queue, declared) {
    const own = queue.concurrencyLimit;
    if (own !== null && own !== declared) return "set here";
    return own === null && declared === null ? "default" : "declared";
  }

  function show(queue) {
    const row = rowOf(queue.name);
    if (!row) return;
    const declared = row.dataset.declared === "" ? null : Number(row.dataset.declared);
    const note = limitNote(queue, declared);
    const limit = queue.limitInForce;
    field(row, "limit").textContent = limit === null || limit === undefined ? "–" : String(limit);
    field(row, "limit-note").textContent = note;
    const state = field(row, "state");
    state.textContent = queue.paused ? "Paused" : "Running";
    state.className = "badge " + (queue.paused ? "status-Queued" : "status-Completed");
    field(row, "running").textContent = String(queue.running);
    field(row, "queued").textContent = String(queue.queued);
    const readOnly = window.podtask.readOnly();
    const pause = row.querySelector('[data-action="pause"]');
    const resume = row.querySelector('[data-action="resume"]');
    pause.hidden = queue.paused;
    resume.hidden = !queue.paused;
    row.querySelector('[data-action="reset-limit"]').disabled = readOnly || note !== "set here";
    const input = row.querySelector('input[name="limit"]');
    // Not while someone is typing a new limit.
    if (document.activeElement !== input && !input.dataset.dirty) {
      input.value = limit === null || limit === undefined ? "" : String(limit);
    }
  }

  function path(name, action) {
    return "/api/v1/queues/" + encodeURIComponent(name) + "/" + action;
  }

  async function act(row, button, method, action, body, done) {
    const name = row.dataset.queue;
    button.disabled = true;
    try {
      const queue = await window.podtask.api(method, path(name, action), body);
      show(queue);
      if (done) done(queue);
    } catch (error) {
      window.podtask.notify("Queue " + name + ": " + error.message, "error");
    } finally {
      button.disabled = window.podtask.readOnly() ||
        (button.dataset.action === "reset-limit" && field(row, "limit-note").textContent !== "set here");
    }
  }

  function start() {
    const table = document.getElementById("queues");
    if (!table) return;

    table.addEventListener("click", function (event) {
      const button = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
      if (!button || window.podtask.readOnly()) return;
      const row = button.closest("tr[data-queue]");
      const action = button.dataset.action;
      if (action === "pause" || action === "resume") {
        act(row, button, "POST", action, undefined, function (queue) {
          const other = row.querySelector('[data-action="' + (queue.paused ? "resume" : "pause") + '"]');
          if (other) other.focus();
          window.podtask.notify("Queue " + queue.name + (queue.paused ? " paused." : " resumed."), "ok");
        });
      } else if (action === "reset-limit") {
        const input = row.querySelector('input[name="limit"]');
        delete input.dataset.dirty;
        act(row, button, "PUT", "concurrency", { concurrencyLimit: null }, function (queue) {
          window.podtask.notify("Queue " + queue.name + ": back to its declared limit.", "ok");
        });
      }
    });

    table.addEventListener("input", function (event) {
      if (event.target instanceof HTMLInputElement && event.target.name === "limit") {
        event.target.dataset.dirty = "true";
      }
    });

    table.addEventListener("submit", function (event) {
      event.preventDefault();
      if (window.podtask.readOnly()) return;
      const form = event.target;
      const row = form.closest("tr[data-queue]");
      const input = form.querySelector('input[name="limit"]');
      const text = input.value.trim();
      if (!/^\d+$/.test(text)) {
        input.setAttribute("aria-invalid", "true");
        window.podtask.notify("Queue " + row.dataset.queue + ": the limit is a whole number, 0 or more.", "error");
        input.focus();
        return;
      }
      input.removeAttribute("aria-invalid");
      const button = form.querySelector('button[type="submit"]');
      act(row, button, "PUT", "concurrency", { concurrencyLimit: Number(text) }, function (queue) {
        delete input.dataset.dirty;
        input.value = String(queue.limitInForce);
        window.podtask.notify("Queue " + queue.name + ": limit " + queue.limitInForce + ".", "ok");
      });
    });

    const refreshed = document.getElementById("queues-refreshed");
    let busy = false;
    async function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const listed = await window.podtask.api("GET", "/api/v1/queues");
        listed.data.forEach(show);
        if (refreshed) refreshed.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
      } catch (error) {
        if (refreshed) refreshed.textContent = "Could not refresh: " + error.message;
      } finally {
        busy = false;
      }
    }
    setInterval(refresh, REFRESH_MS);
    document.addEventListener("visibilitychange", refresh);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
