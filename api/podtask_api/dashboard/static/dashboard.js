/* podtask's dashboard in the browser: what every page shares, hand-written, no dependency.

   window.podtask:
   - api(method, path, body): fetch of the JSON API with the session's CSRF token (from
     <meta name="csrf-token">); resolves to the parsed JSON, rejects with a podtask.ApiError
     (status, code, message, details) in the API's error shape. A 401 (session ended) sends
     the browser to sign in again.
   - stream(path, onRun, {onDeleted, onEnd, onError}): an EventSource on the API's
     server-sent events; onRun(run) for each `run` event, closed after `end`. Returns the
     EventSource (call .close() to stop).
   - relativeTime(date), formatDuration(ms), refreshTimes(root): <time datetime=...
     data-relative> elements show "3 minutes ago", the exact time as their title.
   - element(tag, attributes, ...children): a DOM node built without HTML strings.
   - notify(message, kind): a message in the page's live region ("error", "ok", "warn").
   - readOnly(): whether this session's key is read-only; every control marked
     [data-write] is disabled then, also those a script adds later.
   - Buttons with data-copy="<id>" copy the text of that element. */
(function () {
  "use strict";

  const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.details = details;
    }
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function readOnly() {
    return document.body !== null && document.body.dataset.readOnly === "true";
  }

  function signInAgain() {
    const next = location.pathname + location.search;
    location.assign("/sign-in?next=" + encodeURIComponent(next));
  }

  async function api(method, path, body) {
    method = method.toUpperCase();
    const headers = { Accept: "application/json" };
    const init = { method: method, headers: headers, credentials: "same-origin" };
    if (!READ_METHODS.has(method)) {
      headers["X-CSRF-Token"] = csrfToken();
    }
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = text;
      }
    }
    if (response.ok) {
      return data;
    }
    const error = (data && data.error) || {};
    if (response.status === 401) {
      signInAgain();
    }
    throw new ApiError(
      response.status,
      error.code || "http_error",
      error.message || "HTTP " + response.status,
      error.details
    );
  }

  function stream(path, onRun, handlers) {
    handlers = handlers || {};
    const source = new EventSource(path, { withCredentials: true });
    source.addEventListener("run", function (event) {
      onRun(JSON.parse(event.data), event);
    });
    source.addEventListener("deleted", function (event) {
      if (handlers.onDeleted) handlers.onDeleted(JSON.parse(event.data), event);
    });
    source.addEventListener("end", function () {
      source.close();
      if (handlers.onEnd) handlers.onEnd();
    });
    source.addEventListener("error", function (event) {
      // The browser reconnects by itself unless the server refused (closed for good).
      if (source.readyState === EventSource.CLOSED && handlers.onError) {
        handlers.onError(event);
      }
    });
    return source;
  }

  const UNITS = [
    ["year", 31536000],
    ["month", 2592000],
    ["week", 604800],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
    ["second", 1],
  ];
  const relativeFormat =
    typeof Intl !== "undefined" && Intl.RelativeTimeFormat
      ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" })
      : null;

  function relativeTime(date, now) {
    const when = date instanceof Date ? date : new Date(date);
    const seconds = Math.round((when.getTime() - (now === undefined ? Date.now() : now)) / 1000);
    for (const [unit, size] of UNITS) {
      if (Math.abs(seconds) >= size || unit === "second") {
        const value = Math.round(seconds / size);
        if (relativeFormat) return relativeFormat.format(value, unit);
        return Math.abs(value) + " " + unit + (Math.abs(value) === 1 ? "" : "s") +
          (value < 0 ? " ago" : " from now");
      }
    }
    return when.toLocaleString();
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    let seconds = Math.round(ms / 1000);
    const hours = Math.floor(seconds / 3600);
    seconds -= hours * 3600;
    const minutes = Math.floor(seconds / 60);
    seconds -= minutes * 60;
    if (hours) return hours + "h " + minutes + "m";
    if (minutes) return minutes + "m " + seconds + "s";
    return seconds + "s";
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-relative]").forEach(function (el) {
      const when = new Date(el.dateTime);
      if (isNaN(when.getTime())) return;
      el.textContent = relativeTime(when);
      el.title = when.toLocaleString();
    });
  }

  function element(tag, attributes) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on") && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function notify(message, kind) {
    const region = document.getElementById("notices");
    if (!region) return;
    const notice = element(
      "p",
      { class: "notice" + (kind ? " notice-" + kind : ""), role: kind === "error" ? "alert" : null },
      message
    );
    region.replaceChildren(notice);
  }

  const READ_ONLY_TITLE = "This session's API key is read-only";

  function disableWrites(root) {
    if (!readOnly()) return;
    const nodes = [];
    if (root.matches && root.matches("[data-write]")) nodes.push(root);
    if (root.querySelectorAll) nodes.push(...root.querySelectorAll("[data-write]"));
    for (const node of nodes) {
      if ("disabled" in node) node.disabled = true;
      node.setAttribute("aria-disabled", "true");
      if (!node.title) node.title = READ_ONLY_TITLE;
    }
  }

  // A link or other element marked [data-write] does nothing in a read-only session.
  document.addEventListener(
    "click",
    function (event) {
      const target = event.target instanceof Element ? event.target.closest("[data-write]") : null;
      if (target && readOnly()) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = element("textarea", { "aria-hidden": "true", class: "copy-buffer" });
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  document.addEventListener("click", function (event) {
    const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = "value" in source && source.value !== undefined ? source.value : source.textContent;
    copyText(text.trim()).then(
      function () {
        const label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () {
          button.textContent = label;
        }, 1500);
      },
      function () {
        notify("Could not copy: select the text and copy it.", "error");
      }
    );
  });

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes(document);
    setInterval(function () {
      refreshTimes(document);
    }, 30000);
    disableWrites(document);
    new MutationObserver(function (changes) {
      for (const change of changes) {
        change.addedNodes.forEach(function (node) {
          if (node instanceof Element) {
            disableWrites(node);
            refreshTimes(node);
          }
        });
      }
    }).observe(document.body, { childList: true, subtree: true });
  });

  window.podtask = {
    ApiError: ApiError,
    api: api,
    stream: stream,
    csrfToken: csrfToken,
    readOnly: readOnly,
    relativeTime: relativeTime,
    formatDuration: formatDuration,
    refreshTimes: refreshTimes,
    element: element,
    notify: notify,
    copyText: copyText,
  };
})();
