/* One run's page (/runs/{id}), live and acting.

   - Live: the one-run event stream (GET /api/v1/runs/{id}/events) says when the run
     changed; the page then fetches /runs/{id}/live (the parts the server renders again:
     status, progress, timeline, output or error, attempts, metadata, children, events) and
     swaps each [data-live-part] in. Every few seconds too while the run is not over (a
     running attempt's bar grows, Events come).
   - Logs: the log of the chosen attempt (tabs); while that attempt runs it is read again
     every second and what is new is appended; a new attempt is followed when it starts.
   - Actions: Cancel, Replay (with the payload edited as JSON), Reschedule (a Delayed run),
     through the JSON API with the session's CSRF token (podtask.api); disabled for a
     read-only session (dashboard.js, [data-write]). */
(function () {
  "use strict";

  const FINAL = new Set([
    "Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut", "SystemFailure",
  ]);
  const LOG_POLL_MS = 1000;
  const REFRESH_MS = 5000;

  let run = null; // the run as the stream last sent it (or as the page was rendered)
  let live = null; // where the page says which stream and which parts to read

  function isFinal(status) {
    return FINAL.has(status);
  }

  // -- the parts that change ---------------------------------------------------------------

  let refreshing = false;
  let refreshAgain = false;

  async function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      const response = await fetch(live.dataset.live, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected && new URL(response.url).pathname === "/sign-in") {
        location.assign(response.url);
        return;
      }
      if (!response.ok) return;
      swapParts(await response.text());
    } catch (_) {
      // Offline for a moment: the next change or tick tries again.
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        refresh();
      }
    }
  }

  function swapParts(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    template.content.querySelectorAll("[data-live-part]").forEach(function (fresh) {
      const name = fresh.dataset.livePart;
      const current = document.querySelector('[data-live-part="' + name + '"]');
      if (!current) return;
      // Keep what the reader opened.
      const open = new Set();
      current.querySelectorAll("details[open][id]").forEach(function (d) { open.add(d.id); });
      fresh.querySelectorAll("details[id]").forEach(function (d) {
        if (open.has(d.id)) d.open = true;
      });
      current.replaceWith(fresh);
    });
  }

  // -- the actions -------------------------------------------------------------------------

  function updateActions() {
    const cancel = document.getElementById("cancel-button");
    const reschedule = document.getElementById("reschedule-button");
    if (podtask.readOnly()) return;
    if (cancel) cancel.disabled = isFinal(run.status);
    if (reschedule) {
      reschedule.hidden = run.status !== "Delayed";
      reschedule.disabled = run.status !== "Delayed";
    }
  }

  function showError(id, message) {
    const node = document.getElementById(id);
    if (!node) return;
    node.textContent = message || "";
    node.hidden = !message;
  }

  function dialogAction(dialogId, action) {
    const dialog = document.getElementById(dialogId);
    if (!dialog) return null;
    const form = dialog.querySelector("form");
    form.addEventListener("submit", async function (event) {
      const submitter = event.submitter;
      if (!submitter || !submitter.hasAttribute("data-write")) return; // a Close button
      event.preventDefault();
      if (podtask.readOnly()) return;
      submitter.disabled = true;
      try {
        const done = await action(dialog);
        if (done !== false) dialog.close();
      } catch (error) {
        const errorNode = dialog.querySelector(".field-error[role=alert]");
        if (errorNode) showError(errorNode.id, error.message);
        else podtask.notify(error.message, "error");
      } finally {
        submitter.disabled = false;
      }
    });
    return dialog;
  }

  function runPath(suffix) {
    return "/api/v1/runs/" + encodeURIComponent(run.id) + suffix;
  }

  function payloadProblem(text) {
    try {
      JSON.parse(text);
      return "";
    } catch (error) {
      return "Not valid JSON: " + error.message;
    }
  }

  function startActions() {
    const cancelDialog = dialogAction("cancel-dialog", async function () {
      await podtask.api("POST", runPath("/cancel"));
      podtask.notify("Cancel asked: the run ends as soon as its pod has stopped.", "ok");
    });
    const replayDialog = dialogAction("replay-dialog", async function () {
      const text = document.getElementById("replay-payload").value;
      const problem = payloadProblem(text);
      if (problem) {
        showError("replay-error", problem);
        return false;
      }
      const created = await podtask.api("POST", runPath("/replay"), { payload: JSON.parse(text) });
      location.assign("/runs/" + encodeURIComponent(created.id));
    });
    const rescheduleDialog = dialogAction("reschedule-dialog", async function () {
      const seconds = document.getElementById("reschedule-delay").value;
      const at = document.getElementById("reschedule-at").value;
      let delay;
      if (at) {
        delay = new Date(at).toISOString(); // the browser's local time, sent in UTC
      } else if (seconds !== "") {
        delay = Number(seconds);
      } else {
        showError("reschedule-error", "Give a delay in seconds, or a time.");
        return false;
      }
      await podtask.api("POST", runPath("/reschedule"), { delay: delay });
      podtask.notify("Rescheduled.", "ok");
    });

    const payload = document.getElementById("replay-payload");
    if (payload) {
      payload.addEventListener("input", function () {
        const problem = payloadProblem(payload.value);
        payload.setAttribute("aria-invalid", problem ? "true" : "false");
        showError("replay-error", problem);
      });
    }
    const openers = [
      ["cancel-button", cancelDialog],
      ["replay-button", replayDialog],
      ["reschedule-button", rescheduleDialog],
    ];
    for (const [buttonId, dialog] of openers) {
      const button = document.getElementById(buttonId);
      if (!button || !dialog) continue;
      button.addEventListener("click", function () {
        if (podtask.readOnly()) return;
        dialog.querySelectorAll(".field-error[role=alert]").forEach(function (node) {
          node.hidden = true;
        });
        dialog.showModal();
      });
    }
  }

  // -- the logs ----------------------------------------------------------------------------

  const logs = {
    attempt: null,
    text: "",
    timer: null,
    generation: 0, // bumped when another attempt is chosen: late answers are dropped
  };

  function attemptNumbers() {
    const numbers = (run.attempts || []).map(function (a) { return a.number; });
    if (run.attempt && numbers.indexOf(run.attempt) < 0) numbers.push(run.attempt);
    return numbers;
  }

  function attemptRunning(number) {
    if (isFinal(run.status)) return false;
    const recorded = (run.attempts || []).find(function (a) { return a.number === number; });
    if (recorded) return !recorded.finishedAt;
    return number >= run.attempt;
  }

  function logNote(message) {
    const note = document.getElementById("log-note");
    note.textContent = message || "";
    note.hidden = !message;
  }

  function showLog(text) {
    const pre = document.getElementById("log");
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    if (text.startsWith(logs.text)) {
      const added = text.slice(logs.text.length);
      if (added) pre.append(document.createTextNode(added));
    } else {
      pre.textContent = text;
    }
    logs.text = text;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function readLog() {
    logs.timer = null;
    const generation = logs.generation;
    const number = logs.attempt;
    if (number === null) return;
    const running = attemptRunning(number);
    const state = document.getElementById("log-state");
    try {
      const response = await fetch(runPath("/logs?attempt=" + number), {
        credentials: "same-origin",
        headers: { Accept: "text/plain" },
      });
      if (generation !== logs.generation) return;
      if (response.ok) {
        showLog(await response.text());
        logNote(logs.text ? "" : running ? "Nothing printed yet." : "The attempt printed nothing.");
      } else if (response.status === 401) {
        location.assign("/sign-in?next=" + encodeURIComponent(location.pathname));
        return;
      } else {
        let message = "HTTP " + response.status;
        try {
          message = (await response.json()).error.message;
        } catch (_) { /* not the API's error shape */ }
        if (!logs.text) logNote(running ? "Waiting for the attempt's log…" : message);
      }
    } catch (_) {
      if (generation !== logs.generation) return;
    }
    // As the run is now (the stream may have said it ended while the log was read).
    const stillRunning = attemptRunning(number);
    if (state) state.textContent = stillRunning ? "Following attempt " + number + " live" : "";
    // Read once more after the attempt ended (its last lines), then stop.
    if (stillRunning || logs.wasRunning) {
      logs.wasRunning = stillRunning;
      logs.timer = setTimeout(readLog, LOG_POLL_MS);
    }
  }

  function chooseAttempt(number) {
    clearTimeout(logs.timer);
    logs.generation += 1;
    logs.attempt = number;
    logs.wasRunning = false;
    document.querySelectorAll("#log-tabs [data-attempt]").forEach(function (tab) {
      tab.setAttribute("aria-selected", String(Number(tab.dataset.attempt) === number));
    });
    if (logs.text !== null && logs.shownAttempt !== number) {
      document.getElementById("log").textContent = "";
      logs.text = "";
    }
    logs.shownAttempt = number;
    readLog();
  }

  function updateLogTabs() {
    const tabs = document.getElementById("log-tabs");
    const shown = new Set();
    tabs.querySelectorAll("[data-attempt]").forEach(function (tab) {
      shown.add(Number(tab.dataset.attempt));
    });
    const numbers = attemptNumbers();
    const latestBefore = Math.max(0, ...shown);
    for (const number of numbers) {
      if (shown.has(number)) continue;
      tabs.append(
        podtask.element(
          "a",
          {
            role: "tab",
            class: "tab",
            "aria-controls": "log",
            href: "/runs/" + encodeURIComponent(run.id) + "?attempt=" + number + "#logs",
            dataset: { attempt: String(number) },
            "aria-selected": "false",
          },
          "Attempt " + number
        )
      );
    }
    const latest = numbers.length ? Math.max(...numbers) : null;
    // Follow a new attempt when the reader was on the latest one (or on none).
    if (latest !== null && (logs.attempt === null || logs.attempt === latestBefore) &&
        latest !== logs.attempt) {
      chooseAttempt(latest);
    } else if (logs.attempt !== null && attemptRunning(logs.attempt) && !logs.timer) {
      readLog();
    }
    if (logs.attempt === null || !attemptRunning(logs.attempt)) {
      document.getElementById("log-state").textContent = "";
    }
  }

  function startLogs(initialAttempt) {
    const tabs = document.getElementById("log-tabs");
    tabs.addEventListener("click", function (event) {
      const tab = event.target instanceof Element ? event.target.closest("[data-attempt]") : null;
      if (!tab) return;
      event.preventDefault();
      chooseAttempt(Number(tab.dataset.attempt));
    });
    logs.attempt = initialAttempt;
    logs.shownAttempt = initialAttempt;
    logs.text = document.getElementById("log").textContent;
    if (initialAttempt !== null && attemptRunning(initialAttempt)) {
      logs.wasRunning = true;
      readLog();
    }
  }

  // -- start -------------------------------------------------------------------------------

  function onRun(fresh) {
    run = fresh;
    updateActions();
    updateLogTabs();
    refresh();
  }

  function start() {
    const data = document.getElementById("run-data");
    live = document.getElementById("run-live");
    if (!data || !live) return;
    run = JSON.parse(data.textContent);
    startActions();
    startLogs(run.logAttempt === undefined ? null : run.logAttempt);
    updateActions();
    if (isFinal(run.status) || !window.EventSource) return;
    const source = podtask.stream(live.dataset.stream, onRun, {
      onEnd: function () {
        refresh();
      },
    });
    const ticker = setInterval(function () {
      if (isFinal(run.status)) {
        clearInterval(ticker);
        return;
      }
      refresh();
    }, REFRESH_MS);
    window.addEventListener("pagehide", function () {
      source.close();
      clearInterval(ticker);
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
