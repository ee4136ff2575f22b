/* The API keys page: create a key (shown once, with a copy button) and revoke one, through
   the JSON API (POST /api/v1/keys, DELETE /api/v1/keys/{name}). */
(function () {
  "use strict";
  const { api, element, notify } = window.podtask;

  const form = document.getElementById("create-key");
  const nameField = document.getElementById("key-name");
  const table = document.getElementById("keys");
  const body = table.tBodies[0];

  function revokeButton(name) {
    return element(
      "button",
      {
        type: "button",
        class: "button button-danger button-small",
        "data-revoke": name,
        "aria-label": "Revoke " + name,
        "data-write": true,
      },
      "Revoke"
    );
  }

  function keyRow(key) {
    const access =
      key.access === "read" ? element("span", { class: "badge badge-read-only" }, "read-only") : "write";
    const created = key.createdAt
      ? element("time", { datetime: key.createdAt, "data-relative": true }, key.createdAt)
      : element("span", { class: "muted" }, "not recorded");
    return element(
      "tr",
      { "data-key-name": key.name },
      element("td", {}, key.name),
      element("td", {}, access),
      element("td", {}, created),
      element("td", { class: "nowrap" }, revokeButton(key.name))
    );
  }

  function fieldError(message) {
    let error = document.getElementById("key-name-error");
    if (!message) {
      if (error) error.remove();
      nameField.removeAttribute("aria-invalid");
      nameField.setAttribute("aria-describedby", "key-name-hint");
      return;
    }
    if (!error) {
      error = element("span", { id: "key-name-error", class: "field-error", role: "alert" });
      nameField.parentElement.append(error);
    }
    error.textContent = message;
    nameField.setAttribute("aria-invalid", "true");
    nameField.setAttribute("aria-describedby", "key-name-hint key-name-error");
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const name = nameField.value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9._@+-]*$/.test(name) || name.length > 100) {
      fieldError("Give a name of letters, digits and . _ @ + -, starting with a letter or digit.");
      nameField.focus();
      return;
    }
    fieldError(null);
    const access = form.querySelector('input[name="access"]:checked').value;
    try {
      const created = await api("POST", "/api/v1/keys", { name: name, access: access });
      document.getElementById("new-key-name").textContent = created.name;
      document.getElementById("new-key-value").textContent = created.key;
      document.getElementById("new-key").hidden = false;
      const empty = body.querySelector("td[colspan]");
      if (empty) empty.parentElement.remove();
      body.append(keyRow(created));
      form.reset();
    } catch (error) {
      if (error.code === "key_exists" || error.status === 422) {
        fieldError(error.message);
        nameField.focus();
      } else {
        notify(error.message, "error");
      }
    }
  });

  table.addEventListener("click", async function (event) {
    const button = event.target instanceof Element ? event.target.closest("[data-revoke]") : null;
    if (!button || button.disabled) return;
    const name = button.dataset.revoke;
    const own = name === table.dataset.sessionKey;
    const warning = own
      ? "Revoke the key " + name + "? This session signed in with it and ends at once."
      : "Revoke the key " + name + "? Every client and dashboard session using it stops working.";
    if (!window.confirm(warning)) return;
    button.disabled = true;
    try {
      await api("DELETE", "/api/v1/keys/" + encodeURIComponent(name));
    } catch (error) {
      button.disabled = false;
      notify(error.message, "error");
      return;
    }
    if (own) {
      location.assign("/sign-in");
      return;
    }
    button.closest("tr").remove();
    notify("Revoked the key " + name + ".", "ok");
  });
})();
