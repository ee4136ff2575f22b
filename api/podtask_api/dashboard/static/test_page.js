/* The Test page (templates/test.html): check the payload as it is typed, fill in an example
   from the task's payload schema, offer recent payloads and saved templates, and trigger a
   test run (isTest) through the JSON API, then go to the run's page.

   Nothing is sent while the payload or the metadata is not valid JSON, nor while the payload
   breaks the task's schema: the problems are shown under the editor instead (line and
   column for syntax, JSON path for the schema). Templates live in this browser's
   localStorage (key TEMPLATES_KEY), by task id and name: they are the author's drafts, they
   need no write permission and no server state. */
(function () {
  "use strict";

  const TEMPLATES_KEY = "podtask.test.templates.v1";
  const CHECK_DELAY_MS = 120;
  const DURATION = /^\s*(\d+)\s*(s|m|h|d|w)?\s*$/i;
  const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  // The option fields a template keeps, by element id.
  const OPTION_FIELDS = [
    "opt-machine",
    "opt-concurrency-key",
    "opt-delay",
    "opt-ttl",
    "opt-tags",
    "opt-idempotency-key",
    "opt-idempotency-key-ttl",
    "opt-priority",
    "opt-max-attempts",
    "opt-max-duration",
  ];

  document.documentElement.classList.add("js");

  function byId(id) {
    return document.getElementById(id);
  }

  // -- the code editors: a textarea with line numbers ---------------------------------------

  class CodeEditor {
    constructor(container, onChange) {
      this.container = container;
      this.textarea = container.querySelector("textarea");
      this.gutter = container.querySelector(".gutter");
      this.errorLine = null;
      this.onChange = onChange;
      this.timer = null;
      this.textarea.addEventListener("input", () => this.changed());
      this.textarea.addEventListener("scroll", () => {
        this.gutter.scrollTop = this.textarea.scrollTop;
      });
      this.textarea.addEventListener("keydown", (event) => this.indent(event));
      this.renderGutter();
    }

    get value() {
      return this.textarea.value;
    }

    set value(text) {
      this.textarea.value = text;
      this.renderGutter();
      this.onChange(this, true);
    }

    changed() {
      this.renderGutter();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.onChange(this, false), CHECK_DELAY_MS);
    }

    // Tab indents by two spaces inside the editor; Escape then Tab leaves it (keyboard users).
    indent(event) {
      if (event.key === "Escape") {
        this.escaped = true;
        return;
      }
      if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.metaKey || event.altKey) {
        this.escaped = false;
        return;
      }
      if (this.escaped) {
        this.escaped = false;
        return;
      }
      event.preventDefault();
      const area = this.textarea;
      area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
      this.changed();
    }

    renderGutter() {
      const lines = this.textarea.value.split("\n").length;
      const numbers = [];
      for (let line = 1; line <= lines; line++) numbers.push(String(line));
      this.gutter.replaceChildren();
      numbers.forEach((number, index) => {
        const row = document.createElement("span");
        row.textContent = number;
        if (this.errorLine === index + 1) row.className = "gutter-error";
        this.gutter.append(row, "\n");
      });
      this.gutter.scrollTop = this.textarea.scrollTop;
    }

    markError(line) {
      this.errorLine = line;
      this.textarea.setAttribute("aria-invalid", line !== null || this.invalid ? "true" : "false");
      this.renderGutter();
    }

    setInvalid(invalid) {
      this.invalid = invalid;
      this.textarea.setAttribute("aria-invalid", invalid || this.errorLine !== null ? "true" : "false");
    }

    focusAt(offset) {
      this.textarea.focus();
      if (typeof offset === "number") this.textarea.setSelectionRange(offset, offset);
    }
  }

  // -- checking ------------------------------------------------------------------------------

  function showProblems(region, problems) {
    region.replaceChildren();
    if (!problems.length) return;
    const list = document.createElement("ul");
    for (const problem of problems) {
      const item = document.createElement("li");
      if (problem.where) {
        const where = document.createElement("code");
        where.textContent = problem.where;
        item.append(where, ": ");
      }
      item.append(problem.message);
      list.append(item);
    }
    region.append(list);
  }

  function checkJson(editor, region, what, extra) {
    const parsed = window.podtaskJson.parse(editor.value);
    if (!parsed.ok) {
      const error = parsed.error;
      editor.markError(error.line);
      editor.setInvalid(true);
      showProblems(region, [
        { where: "Line " + error.line + ", column " + error.column, message: error.message },
      ]);
      return { ok: false, syntax: error };
    }
    editor.markError(null);
    const problems = extra ? extra(parsed.value) : [];
    editor.setInvalid(problems.length > 0);
    showProblems(
      region,
      problems.map(function (problem) {
        return { where: problem.path, message: problem.message };
      })
    );
    return { ok: problems.length === 0, value: parsed.value, problems: problems, what: what };
  }

  // -- options -------------------------------------------------------------------------------

  function seconds(text, name) {
    const match = DURATION.exec(text);
    if (!match) throw new Error(name + ' must be seconds or a count and a unit, such as "90", "10m" or "2h"');
    return Number(match[1]) * UNIT_SECONDS[(match[2] || "s").toLowerCase()];
  }

  function wholeNumber(text, name) {
    if (!/^\s*-?\d+\s*$/.test(text)) throw new Error(name + " must be a whole number");
    return Number(text);
  }

  function options() {
    const found = { isTest: true };
    const problems = [];
    const text = function (id) {
      return byId(id).value.trim();
    };
    const take = function (id, name, read) {
      const value = text(id);
      if (!value) return;
      try {
        found[name] = read(value);
      } catch (error) {
        problems.push({ path: byId(id).labels[0].textContent, message: error.message });
      }
    };
    take("opt-machine", "machine", function (value) { return value; });
    take("opt-concurrency-key", "concurrencyKey", function (value) { return value; });
    take("opt-delay", "delay", function (value) {
      // Seconds from now, or a time (ISO 8601, which the API reads).
      return DURATION.test(value) ? seconds(value, "Delay") : value;
    });
    take("opt-ttl", "ttl", function (value) { return seconds(value, "TTL"); });
    take("opt-tags", "tags", function (value) {
      return value.split(",").map(function (tag) { return tag.trim(); }).filter(Boolean);
    });
    take("opt-idempotency-key", "idempotencyKey", function (value) { return value; });
    take("opt-idempotency-key-ttl", "idempotencyKeyTTL", function (value) {
      return /^\s*\d+\s*$/.test(value) ? Number(value) : value;
    });
    take("opt-priority", "priority", function (value) { return wholeNumber(value, "Priority"); });
    take("opt-max-attempts", "maxAttempts", function (value) { return wholeNumber(value, "Max attempts"); });
    take("opt-max-duration", "maxDuration", function (value) { return wholeNumber(value, "Max duration"); });
    return { options: found, problems: problems };
  }

  // -- templates (this browser's localStorage) ------------------------------------------------

  function readTemplates() {
    try {
      const stored = JSON.parse(localStorage.getItem(TEMPLATES_KEY) || "{}");
      return stored && typeof stored === "object" ? stored : {};
    } catch (_) {
      return {};
    }
  }

  function writeTemplates(all) {
    localStorage.setItem(TEMPLATES_KEY, JSON.stringify(all));
  }

  // -- the page ------------------------------------------------------------------------------

  function start() {
    const chooser = byId("task-chooser");
    const select = byId("task");
    if (select && chooser) {
      select.addEventListener("change", function () {
        chooser.submit();
      });
    }
    const dataNode = byId("test-data");
    const form = byId("test-form");
    if (!dataNode || !form) return;
    const data = JSON.parse(dataNode.textContent);
    const task = data.task;
    const schema = task.payloadSchema || null;
    const payloadRegion = byId("payload-problems");
    const metadataRegion = byId("metadata-problems");
    const optionsRegion = byId("options-problems");
    const runButton = byId("run-test");
    const runState = byId("run-state");

    function checkPayload() {
      return checkJson(payload, payloadRegion, "payload", function (value) {
        return schema ? window.podtaskJson.validate(schema, value) : [];
      });
    }

    function checkMetadata() {
      return checkJson(metadata, metadataRegion, "metadata", function (value) {
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          return [{ path: "$", message: "metadata must be a JSON object, such as {}" }];
        }
        return [];
      });
    }

    const payload = new CodeEditor(document.querySelector('[data-editor="payload"]'), checkPayload);
    const metadata = new CodeEditor(document.querySelector('[data-editor="metadata"]'), checkMetadata);

    function exampleText() {
      return JSON.stringify(schema ? window.podtaskJson.example(schema) : {}, null, 2);
    }

    payload.value = exampleText();
    checkMetadata();

    const exampleButton = byId("fill-example");
    if (exampleButton) {
      exampleButton.addEventListener("click", function () {
        payload.value = exampleText();
        payload.focusAt();
      });
    }
    byId("format-payload").addEventListener("click", function () {
      const parsed = window.podtaskJson.parse(payload.value);
      if (parsed.ok) payload.value = JSON.stringify(parsed.value, null, 2);
      else checkPayload();
      payload.focusAt(parsed.ok ? undefined : parsed.error.offset);
    });

    // Recent payloads: the times shown in words, one chosen fills the editor.
    const recent = byId("recent");
    if (recent) {
      Array.from(recent.options).forEach(function (option) {
        const item = data.recent[Number(option.value)];
        if (option.value !== "" && item && item.createdAt) {
          option.textContent = item.runId + " · " + window.podtask.relativeTime(item.createdAt);
        }
      });
      recent.addEventListener("change", function () {
        const item = data.recent[Number(recent.value)];
        if (recent.value === "" || !item) return;
        payload.value = JSON.stringify(item.payload, null, 2);
      });
    }

    // Templates.
    const templateSelect = byId("template");
    const templateName = byId("template-name");
    const deleteButton = byId("delete-template");

    function taskTemplates() {
      return readTemplates()[task.id] || {};
    }

    function listTemplates(selected) {
      const names = Object.keys(taskTemplates()).sort();
      templateSelect.replaceChildren(new Option("Choose a template…", ""));
      for (const name of names) templateSelect.append(new Option(name, name, false, name === selected));
      deleteButton.disabled = !selected;
    }

    function saveTemplate() {
      const name = templateName.value.trim();
      if (!name) {
        window.podtask.notify("Name the template first.", "error");
        templateName.focus();
        return;
      }
      const fields = {};
      for (const id of OPTION_FIELDS) fields[id] = byId(id).value;
      const all = readTemplates();
      all[task.id] = Object.assign({}, all[task.id] || {});
      all[task.id][name] = {
        payload: payload.value,
        metadata: metadata.value,
        options: fields,
        savedAt: new Date().toISOString(),
      };
      try {
        writeTemplates(all);
      } catch (error) {
        window.podtask.notify("The template could not be saved in this browser: " + error.message, "error");
        return;
      }
      listTemplates(name);
      window.podtask.notify("Template “" + name + "” saved in this browser.", "ok");
    }

    function loadTemplate(name) {
      const template = taskTemplates()[name];
      if (!template) return;
      for (const id of OPTION_FIELDS) {
        if (template.options && id in template.options) byId(id).value = template.options[id];
      }
      metadata.value = template.metadata || "{}";
      if ((template.metadata || "{}").trim() !== "{}") byId("metadata-section").open = true;
      payload.value = template.payload || "";
      templateName.value = name;
      deleteButton.disabled = false;
    }

    byId("save-template").addEventListener("click", saveTemplate);
    templateName.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        saveTemplate();
      }
    });
    templateSelect.addEventListener("change", function () {
      if (templateSelect.value) loadTemplate(templateSelect.value);
      else deleteButton.disabled = true;
    });
    deleteButton.addEventListener("click", function () {
      const name = templateSelect.value;
      if (!name) return;
      const all = readTemplates();
      if (all[task.id]) delete all[task.id][name];
      writeTemplates(all);
      listTemplates("");
      window.podtask.notify("Template “" + name + "” deleted.", "ok");
    });
    listTemplates("");

    // Running.
    let running = false;

    async function run() {
      if (running || window.podtask.readOnly()) return;
      const payloadCheck = checkPayload();
      const metadataCheck = checkMetadata();
      const chosen = options();
      showProblems(optionsRegion, chosen.problems.map(function (p) {
        return { where: p.path, message: p.message };
      }));
      if (!metadataCheck.ok) byId("metadata-section").open = true;
      if (!payloadCheck.ok || !metadataCheck.ok || chosen.problems.length) {
        const what = !payloadCheck.ok ? "payload" : !metadataCheck.ok ? "metadata" : "options";
        window.podtask.notify("Not sent: fix the " + what + " first.", "error");
        if (!payloadCheck.ok) payload.focusAt(payloadCheck.syntax ? payloadCheck.syntax.offset : undefined);
        else if (!metadataCheck.ok) metadata.focusAt(metadataCheck.syntax ? metadataCheck.syntax.offset : undefined);
        return;
      }
      chosen.options.metadata = metadataCheck.value;
      running = true;
      runButton.disabled = true;
      runState.textContent = "Triggering a test run of " + task.id + "…";
      try {
        const triggered = await window.podtask.api(
          "POST",
          "/api/v1/tasks/" + encodeURIComponent(task.id) + "/trigger",
          { payload: payloadCheck.value, options: chosen.options }
        );
        runState.textContent = "Triggered " + triggered.id + ": opening its page…";
        location.assign("/runs/" + encodeURIComponent(triggered.id));
      } catch (error) {
        running = false;
        runButton.disabled = window.podtask.readOnly();
        runState.textContent = "";
        const details = (error.details || []).map(function (detail) {
          return (detail.field ? detail.field + ": " : "") + detail.message;
        });
        window.podtask.notify(
          "The run was not triggered: " + error.message + (details.length ? " (" + details.join("; ") + ")" : ""),
          "error"
        );
      }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      run();
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.altKey) {
        event.preventDefault();
        run();
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
