/* The Schedules pages (templates/schedules.html, schedule.html; a card per schedule,
   _schedule_card.html). Activate and Deactivate act through the JSON API (POST
   /api/v1/schedules/{id}/activate or /deactivate, with the session's CSRF token:
   podtask.api): the card shows the answer at once, then as the server renders it. And every
   REFRESH_MS while the page is visible, the page is read again and each card whose
   rendering changed is swapped in: ticks pass, the operator triggers runs. The server
   writes every time (in the schedule's zone and in UTC), so nothing is formatted here. */
(function () {
  "use strict";

  const REFRESH_MS = 10000;
  const busy = new Set(); // schedules with an action under way: not swapped meanwhile
  const rendered = new Map(); // schedule id → the card's HTML as the server last sent it

  function cards(root) {
    const list = root.getElementById("schedules");
    return list ? Array.from(list.querySelectorAll("[data-schedule]")) : [];
  }

  function cardOf(id) {
    return document.querySelector('[data-schedule="' + CSS.escape(id) + '"]');
  }

  // The schedule's state from the API's answer, before the server renders the card again.
  function showState(card, schedule) {
    card.dataset.active = schedule.active ? "true" : "false";
    const state = card.querySelector('[data-field="state"]');
    state.textContent = schedule.active ? "Active" : "Inactive";
    state.className = "badge " + (schedule.active ? "status-Completed" : "status-Canceled");
    card.querySelector('[data-action="deactivate"]').hidden = !schedule.active;
    card.querySelector('[data-action="activate"]').hidden = schedule.active;
  }

  async function readPage() {
    const response = await fetch(location.pathname + location.search, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (new URL(response.url).pathname === "/sign-in") {
      location.assign(response.url); // the session ended
      return null;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    return new DOMParser().parseFromString(await response.text(), "text/html");
  }

  // `fresh` (a card the server rendered) in place of `current`, keeping what the person
  // had open or focused in it.
  function swap(current, fresh) {
    const details = current.querySelector("details");
    const focused = current.contains(document.activeElement) ? document.activeElement : null;
    const action = focused && focused.dataset ? focused.dataset.action : null;
    const adopted = document.importNode(fresh, true);
    const freshDetails = adopted.querySelector("details");
    if (details && freshDetails) freshDetails.open = details.open;
    current.replaceWith(adopted);
    if (action) {
      const again = adopted.querySelector('[data-action="' + action + '"]:not([hidden])') ||
        adopted.querySelector("[data-action]:not([hidden])");
      if (again) again.focus();
    }
    return adopted;
  }

  let refreshing = false;
  async function refresh() {
    if (refreshing || document.hidden) return;
    refreshing = true;
    const said = document.getElementById("schedules-refreshed");
    try {
      const page = await readPage();
      if (!page) return;
      const fresh = cards(page);
      const ids = fresh.map(function (card) { return card.dataset.schedule; });
      const shown = cards(document).map(function (card) { return card.dataset.schedule; });
      if (ids.join("\n") !== shown.join("\n")) {
        // Schedules came or went: the page as it is now, unless a person is acting.
        if (busy.size === 0) location.reload();
        return;
      }
      for (const card of fresh) {
        const id = card.dataset.schedule;
        const current = cardOf(id);
        if (!current || busy.has(id) || rendered.get(id) === card.innerHTML) continue;
        const before = rendered.get(id);
        rendered.set(id, card.innerHTML);
        const swapped = swap(current, card);
        if (before !== undefined) swapped.classList.add("changed");
      }
      if (said) said.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    } catch (error) {
      if (said) said.textContent = "Could not refresh: " + error.message;
    } finally {
      refreshing = false;
    }
  }

  async function act(card, button) {
    const id = card.dataset.schedule;
    const action = button.dataset.action;
    busy.add(id);
    button.disabled = true;
    try {
      const schedule = await window.podtask.api(
        "POST", "/api/v1/schedules/" + encodeURIComponent(id) + "/" + action
      );
      showState(card, schedule);
      const other = card.querySelector("[data-action]:not([hidden])");
      if (other) other.focus();
      window.podtask.notify(
        "Schedule " + id + (schedule.active ? " activated: its ticks trigger runs again." :
          " deactivated: its ticks trigger no runs until it is activated."),
        "ok"
      );
    } catch (error) {
      window.podtask.notify("Schedule " + id + ": " + error.message, "error");
    } finally {
      button.disabled = window.podtask.readOnly();
      busy.delete(id);
    }
    refresh();
  }

  function start() {
    const list = document.getElementById("schedules");
    if (!list) return;
    list.addEventListener("click", function (event) {
      const button = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
      if (!button || window.podtask.readOnly()) return;
      const card = button.closest("[data-schedule]");
      if (card && !busy.has(card.dataset.schedule)) act(card, button);
    });
    setInterval(refresh, REFRESH_MS);
    document.addEventListener("visibilitychange", refresh);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
