// Workflow Engine admin page.
//
// Talks only to the engine's public REST API, with the master key (ENGINE_API_KEY) in the
// X-API-Key header; the key lives in sessionStorage (this tab only) and never in a URL.
// Every piece of data is rendered with createElement/textContent: never as HTML.

const KEY_STORAGE = "workflow-engine.admin.master-key";
const API = "/api/v1";
const PAGE_SIZE = 25;

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
const toasts = document.getElementById("toasts");
const dialog = document.getElementById("dialog");
const versionLabel = document.getElementById("engine-version");

// ---- DOM helpers ---------------------------------------------------------------------------

/** An element with attributes, properties (`on*` listeners) and children (nodes or text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

function replace(el, ...children) {
  clear(el);
  return add(el, children);
}

const enc = encodeURIComponent;

// ---- formatting ----------------------------------------------------------------------------

const DASHBOARD_STATUS = {
  DASHBOARD_STATUS_ACTIVE: ["Active", "ok"],
  DASHBOARD_STATUS_SUSPENDED: ["Suspended", "bad"],
  DASHBOARD_STATUS_WEBHOOKS_DISABLED: ["Webhooks disabled", "warn"],
};
const SESSION_STATUS = {
  SESSION_STATUS_STOPPED: ["Stopped", ""],
  SESSION_STATUS_STARTING: ["Starting", "info"],
  SESSION_STATUS_SCAN_QR_CODE: ["Scan QR code", "info"],
  SESSION_STATUS_WORKING: ["Working", "ok"],
  SESSION_STATUS_FAILED: ["Failed", "bad"],
};
const DELIVERY_STATUS = {
  DELIVERY_STATUS_PENDING: ["Pending", "info"],
  DELIVERY_STATUS_SUCCEEDED: ["Succeeded", "ok"],
  DELIVERY_STATUS_FAILED: ["Failed", "bad"],
  DELIVERY_STATUS_HELD: ["Held", "warn"],
};
const RUNNING_SESSION = new Set(["SESSION_STATUS_STARTING", "SESSION_STATUS_SCAN_QR_CODE", "SESSION_STATUS_WORKING"]);
const REDELIVERABLE = new Set(["DELIVERY_STATUS_SUCCEEDED", "DELIVERY_STATUS_FAILED"]);

function badge(table, value) {
  const [label, tone] = table[value] || [String(value || "Unknown").replace(/^[A-Z]+_STATUS_/, ""), ""];
  return h("span", { class: `badge ${tone}` }, label);
}

/** int64 fields arrive as strings in protobuf JSON. */
function num(value) {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const fmt = (value) => numberFormat.format(num(value));
const plural = (n, one, many) => `${fmt(n)} ${num(n) === 1 ? one : many}`;

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const fullDateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function relative(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds <= 0 ? "just now" : "in a few seconds";
  const steps = [[3600, 60, "minute"], [86400, 3600, "hour"], [86400 * 7, 86400, "day"]];
  for (const [limit, unit, name] of steps) {
    if (abs < limit) return relativeFormat.format(Math.round(seconds / unit), name);
  }
  return dateFormat.format(date);
}

/** A <time> element: relative for recent times, absolute otherwise; the exact time as its title. */
function when(iso, { absolute = false, empty = "—" } = {}) {
  if (!iso) return h("span", { class: "faint" }, empty);
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  const label = absolute ? dateFormat.format(date) : relative(date);
  return h("time", { datetime: iso, title: fullDateFormat.format(date) }, label);
}

function duration(totalSeconds) {
  let s = Math.max(0, Math.floor(num(totalSeconds)));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d} d ${hours} h`;
  if (hours) return `${hours} h ${m} min`;
  if (m) return `${m} min ${s} s`;
  return `${s} s`;
}

function mono(value, cls = "id") {
  return value ? h("span", { class: cls }, value) : h("span", { class: "faint" }, "—");
}

function dashboardLink(agencyId) {
  return h("a", { class: "id", href: `#/dashboards/${enc(agencyId)}` }, agencyId);
}

// ---- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const message = (body && typeof body.message === "string" && body.message) || "";
    super(message || (status ? `HTTP ${status}` : "network error"));
    this.status = status;
    this.code = body && body.code;
    this.details = (body && Array.isArray(body.details) && body.details) || [];
    this.retryAfter = retryAfter;
    const info = this.details.find((d) => String(d["@type"] || "").endsWith("google.rpc.ErrorInfo"));
    this.reason = info ? info.reason : "";
  }

  get violations() {
    const bad = this.details.find((d) => String(d["@type"] || "").endsWith("google.rpc.BadRequest"));
    return (bad && bad.fieldViolations) || [];
  }
}

const getKey = () => sessionStorage.getItem(KEY_STORAGE) || "";

/** Call the REST API; resolves to the JSON body, rejects with an ApiError. */
async function api(method, path, { query, body, key } = {}) {
  const url = new URL(API + path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json", "X-API-Key": key ?? getKey() };
  const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { message: "The engine could not be reached. Is it running?" });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get("retry-after"));
  return data || {};
}

const STATUS_TEXT = {
  400: "Bad request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  409: "Conflict",
  429: "Too many requests",
  500: "Internal error",
  501: "Not implemented",
  503: "Unavailable",
  504: "Timed out",
};

/** A sentence (or two) explaining an error to an admin. */
function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong in this page: ${error && error.message}`;
  if (error.status === 0) return error.message;
  const head = `${error.status} ${STATUS_TEXT[error.status] || "Error"}`;
  let text = `${error.message} (${head}).`;
  if (error.status === 429 && error.retryAfter) text += ` Try again in ${error.retryAfter} s.`;
  const violations = error.violations.map((v) => `${v.field}: ${v.description}`);
  if (violations.length) text += ` ${violations.join("; ")}.`;
  return text;
}

// ---- notifications -------------------------------------------------------------------------

function toast(message, tone = "ok") {
  const item = h("div", { class: `toast ${tone}` }, message);
  toasts.append(item);
  setTimeout(() => item.remove(), tone === "bad" ? 9000 : 5000);
}

/** Report a failure of an action outside a dialog; a refused key ends the session. */
function report(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("expired");
    return;
  }
  toast(describe(error), "bad");
}

function alertBox(error) {
  return h("div", { class: "alert", role: "alert" }, h("strong", {}, "Error: "), describe(error));
}

function loading(label = "Loading…") {
  return h("div", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), label);
}

// ---- dialog --------------------------------------------------------------------------------

/**
 * Ask for confirmation (and optional fields) in a modal <dialog>, then run `run(values)`.
 * The dialog stays open while it runs and shows its error; resolves to run's result, or null.
 */
function confirmDialog({ title, description, fields = [], confirm, danger = false, run }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const inputs = {};
    const errorBox = h("div", { class: "alert", role: "alert", hidden: true });
    const fieldEls = fields.map((field) => {
      const id = `dialog-${field.name}`;
      const hintId = field.hint ? `${id}-hint` : null;
      const common = { id, name: field.name, required: field.required, "aria-describedby": hintId };
      const input =
        field.type === "textarea"
          ? h("textarea", { ...common, rows: 3, maxlength: field.maxlength })
          : h("input", { ...common, type: field.type || "text", value: field.value });
      inputs[field.name] = input;
      return h(
        "div",
        { class: "field" },
        h("label", { for: id }, field.label),
        input,
        field.hint && h("span", { class: "hint", id: hintId }, field.hint),
      );
    });
    const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
    const ok = h("button", { type: "submit", class: `btn ${danger ? "btn-danger" : "btn-primary"}` }, confirm);
    const form = h(
      "form",
      {},
      h(
        "div",
        { class: "dialog-body" },
        h("h2", { id: "dialog-title" }, title),
        description && h("p", { id: "dialog-description" }, description),
        fieldEls,
        errorBox,
      ),
      h("div", { class: "dialog-foot" }, cancel, ok),
    );
    let busy = false;
    let result = null;

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (busy) return;
      const values = {};
      for (const field of fields) {
        values[field.name] = inputs[field.name].value.trim();
        if (field.required && !values[field.name]) {
          replace(errorBox, `${field.label} is required.`);
          errorBox.hidden = false;
          inputs[field.name].focus();
          return;
        }
      }
      busy = true;
      ok.disabled = cancel.disabled = true;
      ok.setAttribute("aria-busy", "true");
      errorBox.hidden = true;
      try {
        result = (await run(values)) ?? true;
        dialog.close();
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) {
          dialog.close();
          signOut("expired");
          return;
        }
        replace(errorBox, h("strong", {}, "Error: "), describe(error));
        errorBox.hidden = false;
      } finally {
        busy = false;
        ok.disabled = cancel.disabled = false;
        ok.removeAttribute("aria-busy");
      }
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.oncancel = (event) => {
      if (busy) event.preventDefault();
    };
    dialog.onclose = () => {
      dialog.onclose = null;
      clear(dialog);
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
      resolve(result);
    };
    replace(dialog, form);
    if (description) dialog.setAttribute("aria-describedby", "dialog-description");
    else dialog.removeAttribute("aria-describedby");
    dialog.showModal();
    (fields.length ? inputs[fields[0].name] : danger ? cancel : ok).focus();
  });
}

// ---- sign-in -------------------------------------------------------------------------------

function signInMessage(error) {
  if (error.status === 401) {
    return "The engine did not accept this key (401 Unauthorized). Check that it is the master key (ENGINE_API_KEY).";
  }
  if (error.status === 403) {
    return "This key is valid but is not the engine's master key (403 Forbidden): dashboard API keys cannot open the admin page.";
  }
  return describe(error);
}

function showSignIn({ notice = "", error = "" } = {}) {
  renderId += 1;
  topbar.hidden = true;
  document.title = "Sign in · Workflow Engine Admin";
  const input = h("input", {
    id: "master-key",
    name: "master-key",
    type: "password",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "master-key-hint",
  });
  const errorBox = h("div", { class: "alert", role: "alert", id: "sign-in-error", hidden: !error }, error);
  const button = h("button", { type: "submit", class: "btn btn-primary" }, "Sign in");
  const form = h(
    "form",
    { "aria-labelledby": "sign-in-title" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "master-key" }, "Master key"),
      input,
      h(
        "span",
        { class: "hint", id: "master-key-hint" },
        "The engine's ENGINE_API_KEY. Kept in this browser tab only, sent only in the X-API-Key header.",
      ),
    ),
    errorBox,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      replace(errorBox, "Enter the master key.");
      errorBox.hidden = false;
      input.focus();
      return;
    }
    button.disabled = true;
    replace(button, "Signing in…");
    try {
      const health = await api("GET", "/admin/health", { key });
      sessionStorage.setItem(KEY_STORAGE, key);
      showVersion(health);
      await render({ focus: true });
    } catch (err) {
      replace(errorBox, err instanceof ApiError ? signInMessage(err) : describe(err));
      errorBox.hidden = false;
      input.select();
      input.focus();
    } finally {
      button.disabled = false;
      replace(button, "Sign in");
    }
  });
  replace(
    main,
    h(
      "div",
      { class: "signin" },
      h(
        "section",
        { class: "panel signin-card" },
        h(
          "div",
          { class: "signin-brand" },
          h("img", { src: "/admin/favicon.svg", alt: "", width: 30, height: 30 }),
          "Workflow Engine",
          h("span", { class: "tag" }, "Admin"),
        ),
        h("h1", { id: "sign-in-title", tabindex: "-1" }, "Sign in"),
        h("p", {}, "Manage every dashboard, session and webhook delivery of this engine."),
        notice && h("div", { class: "notice", role: "status" }, notice),
        form,
        h("p", { class: "signin-foot" }, "Closing the tab forgets the key."),
      ),
    ),
  );
  input.focus();
}

function signOut(why) {
  sessionStorage.removeItem(KEY_STORAGE);
  versionLabel.textContent = "";
  if (dialog.open) dialog.close();
  if (why === "expired") {
    showSignIn({ error: "The engine no longer accepts the key you signed in with (401). Sign in again." });
  } else {
    showSignIn({ notice: "You are signed out. The key was removed from this tab." });
  }
}

function showVersion(health) {
  if (health && health.version) versionLabel.textContent = `Engine v${health.version}`;
}

// ---- paged lists ---------------------------------------------------------------------------

/**
 * A list loaded page by page (`pageToken` → `nextPageToken`), with Previous/Next buttons.
 * `load(token)` returns the response; `rows(items, reload)` renders one page.
 */
function pagedList({ load, itemsKey, rows, empty, label }) {
  const body = h("div", { class: "table-wrap" });
  const position = h("span", { "aria-live": "polite" });
  const previous = h("button", { type: "button", class: "btn btn-sm" }, "Previous");
  const next = h("button", { type: "button", class: "btn btn-sm" }, "Next");
  const pager = h("div", { class: "pager", hidden: true }, position, h("div", { class: "actions" }, previous, next));
  const el = h("div", { class: "panel" }, body, pager);
  const tokens = [""];
  let index = 0;
  let nextToken = "";

  async function show() {
    const data = await load(tokens[index]);
    const items = data[itemsKey] || [];
    nextToken = data.nextPageToken || "";
    replace(body, items.length ? rows(items, reload) : h("div", { class: "empty" }, empty));
    // Disabling the focused button would drop the focus: hand it to the other one.
    const focused = document.activeElement;
    pager.hidden = index === 0 && !nextToken;
    previous.disabled = index === 0;
    next.disabled = !nextToken;
    position.textContent = `${label} · page ${index + 1}`;
    if (previous.disabled && focused === previous) next.focus();
    if (next.disabled && focused === next) previous.focus();
  }

  function reload() {
    return show().catch(report);
  }

  previous.addEventListener("click", () => {
    if (index > 0) index -= 1;
    reload();
  });
  next.addEventListener("click", () => {
    if (!nextToken) return;
    tokens[index + 1] = nextToken;
    index += 1;
    reload();
  });
  // A failed first load is shown in place (the filters above stay usable); a refused key signs out.
  const ready = show().catch((error) => {
    if (error instanceof ApiError && error.status === 401) throw error;
    replace(body, h("div", { class: "panel-body" }, alertBox(error)));
  });
  return { el, ready, reload };
}

function table(columns, rowEls, caption) {
  return h(
    "table",
    {},
    caption && h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rowEls),
  );
}

/** Focus the first button of the row `key` (after its table was rendered again). */
function focusRow(key) {
  const row = main.querySelector(`[data-row="${CSS.escape(key)}"]`);
  const target = row && (row.querySelector("button") || row.querySelector("a"));
  if (target) target.focus();
}

// ---- dashboards ----------------------------------------------------------------------------

function sessionChips(counts = {}) {
  const parts = [
    ["working", "working", "ok"],
    ["scanQrCode", "scan QR", "info"],
    ["starting", "starting", "info"],
    ["stopped", "stopped", ""],
    ["failed", "failed", "bad"],
  ]
    .filter(([key]) => num(counts[key]) > 0)
    .map(([key, label, tone]) => h("span", { class: `chip ${tone}` }, h("b", {}, fmt(counts[key])), ` ${label}`));
  return parts.length ? h("div", { class: "chips" }, parts) : h("span", { class: "faint" }, "none");
}

function deliveryChips(counts = {}) {
  const parts = [
    ["succeeded", "ok", "ok"],
    ["failed", "failed", "bad"],
    ["pending", "pending", "info"],
    ["held", "held", "warn"],
  ]
    .filter(([key]) => num(counts[key]) > 0)
    .map(([key, label, tone]) => h("span", { class: `chip ${tone}` }, h("b", {}, fmt(counts[key])), ` ${label}`));
  return parts.length ? h("div", { class: "chips" }, parts) : h("span", { class: "faint" }, "none");
}

function nameOf(summary) {
  return summary.dashboardName ? `“${summary.dashboardName}” (${summary.agencyId})` : summary.agencyId;
}

function suspend(summary) {
  return confirmDialog({
    title: "Suspend dashboard?",
    description:
      `${nameOf(summary)} will be refused on every API call (403) and its webhooks held ` +
      "until an admin activates it again.",
    fields: [
      {
        name: "reason",
        label: "Reason",
        type: "textarea",
        required: true,
        maxlength: 500,
        hint: "Recorded in the dashboard's status history.",
      },
    ],
    confirm: "Suspend dashboard",
    danger: true,
    run: async ({ reason }) => {
      await api("POST", `/admin/dashboards/${enc(summary.agencyId)}/suspend`, { body: { reason } });
      toast(`Suspended ${summary.dashboardName || summary.agencyId}.`);
    },
  });
}

function activate(summary) {
  const disabled = summary.status === "DASHBOARD_STATUS_WEBHOOKS_DISABLED";
  return confirmDialog({
    title: disabled ? "Re-enable webhooks?" : "Activate dashboard?",
    description: disabled
      ? `${nameOf(summary)} gets its webhooks again; held deliveries go out now.`
      : `${nameOf(summary)} may call the API again, and its held webhooks go out now.`,
    confirm: disabled ? "Re-enable webhooks" : "Activate dashboard",
    run: async () => {
      await api("POST", `/admin/dashboards/${enc(summary.agencyId)}/activate`, { body: {} });
      toast(`Activated ${summary.dashboardName || summary.agencyId}.`);
    },
  });
}

function statusActions(summary, after, size = "btn-sm") {
  const label = summary.dashboardName || summary.agencyId;
  const buttons = [];
  if (summary.status !== "DASHBOARD_STATUS_SUSPENDED") {
    buttons.push(
      h(
        "button",
        {
          type: "button",
          class: `btn ${size} btn-danger-outline`,
          "aria-label": `Suspend ${label}`,
          onclick: async () => (await suspend(summary)) && after(),
        },
        "Suspend",
      ),
    );
  }
  if (summary.status !== "DASHBOARD_STATUS_ACTIVE") {
    buttons.push(
      h(
        "button",
        {
          type: "button",
          class: `btn ${size} btn-ok-outline`,
          "aria-label": `Activate ${label}`,
          onclick: async () => (await activate(summary)) && after(),
        },
        summary.status === "DASHBOARD_STATUS_WEBHOOKS_DISABLED" ? "Re-enable" : "Activate",
      ),
    );
  }
  return buttons;
}

function dashboardRows(items, reload) {
  const container = table(
    [
      { label: "Agency ID" },
      { label: "Dashboard" },
      { label: "Status" },
      { label: "Sessions" },
      { label: "Deliveries 24 h" },
      { label: "Last success" },
      { label: "Actions" },
    ],
    items.map((d) =>
      h(
        "tr",
        { class: "row", "data-row": d.agencyId },
        h("td", { class: "nowrap" }, dashboardLink(d.agencyId)),
        h(
          "td",
          { class: "cell-name" },
          h("div", { class: "cell-main" }, d.dashboardName || "—"),
          h("div", { class: "cell-sub" }, d.dashboardUrl),
        ),
        h("td", {}, badge(DASHBOARD_STATUS, d.status)),
        h("td", {}, sessionChips(d.sessionCounts)),
        h("td", {}, deliveryChips(d.deliveries24h)),
        h("td", { class: "nowrap" }, when(d.lastSuccessfulDeliveryTime, { empty: "never" })),
        h(
          "td",
          {},
          h(
            "div",
            { class: "actions" },
            statusActions(d, async () => {
              await reload();
              focusRow(d.agencyId);
            }),
          ),
        ),
      ),
    ),
    "Dashboards",
  );
  return container;
}

function dashboardsList({ query = "", status = "", pageSize = PAGE_SIZE } = {}) {
  return pagedList({
    load: (token) => api("GET", "/admin/dashboards", { query: { query, status, pageSize, pageToken: token } }),
    itemsKey: "dashboards",
    rows: dashboardRows,
    label: "Dashboards",
    empty: [
      h("strong", {}, "No dashboards"),
      query || status ? "Nothing matches these filters." : "No dashboard has registered with this engine yet.",
    ],
  });
}

// ---- overview ------------------------------------------------------------------------------

function tile({ label, value, unit, sub, tone = "", wide = false, extra }) {
  return h(
    "div",
    { class: `tile ${tone} ${wide ? "tile-wide" : ""}`, role: "group", "aria-label": label },
    h("div", { class: "tile-label" }, label),
    value !== undefined && h("div", { class: "tile-value" }, value, unit && h("span", { class: "unit" }, unit)),
    extra,
    sub && h("div", { class: "tile-sub" }, sub),
  );
}

function healthTiles(health) {
  const outbox = health.outbox || {};
  const rate = Number(health.deliverySuccessRate5m ?? 1);
  const p95 = Number(health.deliveryP95LatencyMs5m ?? 0);
  const attempts = num(health.deliveryAttempts5m);
  const providers = Object.entries(health.providerStatus || {}).sort(([a], [b]) => a.localeCompare(b));
  const providersOk = providers.every(([, s]) => s === "ok");
  const started = new Date(Date.now() - num(health.uptimeSeconds) * 1000);
  const counter = (value) => (num(value) > 0 ? "warn" : "ok");
  return h(
    "div",
    { class: "tiles" },
    tile({
      label: "Database",
      value: health.databaseOk ? "OK" : "Unreachable",
      tone: health.databaseOk ? "ok" : "bad",
      sub: health.databaseOk ? `${fmt(health.databaseLatencyMs)} ms ping` : "The engine cannot reach its database",
    }),
    tile({ label: "Uptime", value: duration(health.uptimeSeconds), sub: `Since ${dateFormat.format(started)}` }),
    tile({ label: "Version", value: health.version || "—", sub: "Workflow Engine" }),
    tile({
      label: "Providers",
      tone: providersOk ? "ok" : "bad",
      extra: h(
        "ul",
        { class: "providers" },
        providers.length
          ? providers.map(([name, status]) =>
              h(
                "li",
                {},
                h("span", { class: "mono" }, name),
                status === "ok"
                  ? h("span", { class: "badge ok" }, "OK")
                  : h("span", { class: "provider-error", title: status }, h("span", { class: "badge bad" }, "Error"), " ", status),
              ),
            )
          : h("li", { class: "faint" }, "none configured"),
      ),
    }),
    tile({
      label: "Delivery success",
      value: attempts ? fmt(Math.round(rate * 1000) / 10) : "—",
      unit: attempts ? "%" : "",
      tone: !attempts ? "" : rate >= 0.99 ? "ok" : rate >= 0.9 ? "warn" : "bad",
      sub: attempts ? `${fmt(attempts)} attempts in the last 5 min, share answered 2xx` : "No attempts in the last 5 min",
    }),
    tile({
      label: "Delivery p95",
      value: attempts ? fmt(Math.round(p95)) : "—",
      unit: attempts ? "ms" : "",
      tone: p95 > 5000 ? "warn" : "",
      sub: "Attempt latency, last 5 min",
    }),
    tile({
      label: "Outbox backlog",
      wide: true,
      tone: num(outbox.failed) > 0 ? "bad" : num(outbox.held) > 0 || num(outbox.retrying) > 0 ? "warn" : "ok",
      extra: h(
        "dl",
        { class: "backlog" },
        [
          ["Due", outbox.due],
          ["Retrying", outbox.retrying],
          ["Held", outbox.held],
          ["Failed", outbox.failed],
        ].map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, fmt(value)))),
      ),
      sub: num(outbox.failed) > 0 ? h("a", { href: "#/deliveries" }, "Review failed deliveries") : "Webhooks waiting to go out",
    }),
    tile({
      label: "Rate-limit rejections",
      value: fmt(health.rateLimitRejections),
      tone: counter(health.rateLimitRejections),
      sub: "Requests refused with 429 since start",
    }),
    tile({
      label: "Auth failures",
      value: fmt(health.authFailures),
      tone: counter(health.authFailures),
      sub: "Missing or wrong credentials since start",
    }),
    tile({
      label: "Unroutable events",
      value: fmt(health.unroutableProviderEvents),
      tone: counter(health.unroutableProviderEvents),
      sub: "Provider events for unknown sessions",
    }),
  );
}

function pageHead(title, { subtitle, actions = [], crumbs } = {}) {
  return h(
    "div",
    {},
    crumbs &&
      h(
        "nav",
        { class: "breadcrumb", "aria-label": "Breadcrumb" },
        h(
          "ol",
          {},
          crumbs.map(([label, href]) =>
            h("li", {}, href ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label)),
          ),
        ),
      ),
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", { tabindex: "-1" }, title), subtitle && h("p", { class: "subtitle" }, subtitle)),
      h("div", { class: "head-actions" }, actions),
    ),
  );
}

function refreshButton(label = "Refresh") {
  return h("button", { type: "button", class: "btn", id: "refresh", onclick: () => render({ quiet: true }) }, label);
}

async function viewOverview() {
  const dashboards = dashboardsList({ pageSize: 10 });
  const [health] = await Promise.all([api("GET", "/admin/health"), dashboards.ready]);
  showVersion(health);
  return [
    pageHead("Overview", {
      subtitle: ["Engine health as of ", timeFormat.format(new Date()), "."],
      actions: [refreshButton()],
    }),
    healthTiles(health),
    h(
      "section",
      { class: "section", "aria-labelledby": "overview-dashboards" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { id: "overview-dashboards" }, "Dashboards"),
        h("a", { href: "#/dashboards" }, "All dashboards, with search →"),
      ),
      dashboards.el,
    ),
  ];
}

// ---- filters -------------------------------------------------------------------------------

/** A filter bar whose values live in the URL hash (so a filtered view can be linked to). */
function filterForm(path, fields, params) {
  const controls = {};
  const els = fields.map((field) => {
    const id = `filter-${field.name}`;
    const current = params.get(field.name) ?? field.default ?? "";
    let control;
    if (field.options) {
      const options = [...field.options];
      if (current && !options.some(([value]) => value === current)) options.push([current, current]);
      control = h(
        "select",
        { id, name: field.name },
        options.map(([value, label]) => h("option", { value, selected: value === current }, label)),
      );
    } else {
      control = h("input", {
        id,
        name: field.name,
        type: field.type || "text",
        value: current,
        placeholder: field.placeholder,
        autocomplete: "off",
        spellcheck: "false",
      });
    }
    controls[field.name] = control;
    return h("div", { class: "field" }, h("label", { for: id }, field.label), control);
  });
  const form = h(
    "form",
    { class: "panel filters", role: "search", "aria-label": "Filters" },
    els,
    h(
      "div",
      { class: "filter-actions" },
      h("button", { type: "submit", class: "btn btn-primary", id: "filter-apply" }, "Apply"),
      h(
        "button",
        {
          type: "button",
          class: "btn",
          id: "filter-clear",
          onclick: () => navigate(`#${path}`, { focus: false, quiet: true }),
        },
        "Clear",
      ),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const search = new URLSearchParams();
    for (const [name, control] of Object.entries(controls)) {
      const value = control.value.trim();
      if (value) search.set(name, value);
    }
    const qs = search.toString();
    navigate(`#${path}${qs ? `?${qs}` : ""}`, { focus: false, quiet: true });
  });
  return form;
}

// ---- dashboards views ----------------------------------------------------------------------

async function viewDashboards({ params }) {
  const query = params.get("query") || "";
  const status = params.get("status") || "";
  const list = dashboardsList({ query, status });
  await list.ready;
  return [
    pageHead("Dashboards", {
      subtitle: "Every dashboard registered with this engine, by agency ID.",
      actions: [refreshButton()],
    }),
    filterForm(
      "/dashboards",
      [
        { name: "query", label: "Search", type: "search", placeholder: "Name, agency ID or URL" },
        {
          name: "status",
          label: "Status",
          options: [["", "Any status"], ...Object.entries(DASHBOARD_STATUS).map(([value, [label]]) => [value, label])],
        },
      ],
      params,
    ),
    list.el,
  ];
}

function propList(entries) {
  return h(
    "dl",
    { class: "props" },
    entries.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

function panel(title, id, ...content) {
  return h(
    "section",
    { class: "panel", "aria-labelledby": id },
    h("h2", { class: "panel-title", id }, title),
    content,
  );
}

function rateLimitForm(agencyId, limit = {}, custom = false) {
  const rps = h("input", {
    id: "rate-rps",
    name: "requestsPerSecond",
    type: "number",
    min: "0.001",
    step: "any",
    required: true,
    value: limit.requestsPerSecond ?? "",
  });
  const burst = h("input", {
    id: "rate-burst",
    name: "burst",
    type: "number",
    min: "1",
    step: "1",
    required: true,
    value: limit.burst ?? "",
  });
  const errorBox = h("div", { class: "alert", role: "alert", hidden: true });
  const save = h("button", { type: "submit", class: "btn btn-primary", id: "rate-save" }, "Save rate limit");
  const reset = h("button", { type: "button", class: "btn", id: "rate-reset" }, "Reset to engine default");

  async function put(body, message) {
    save.disabled = reset.disabled = true;
    errorBox.hidden = true;
    try {
      await api("PUT", `/admin/dashboards/${enc(agencyId)}/rate-limit`, { body: { rateLimit: body } });
      toast(message);
      await render({ quiet: true });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return report(error);
      replace(errorBox, h("strong", {}, "Error: "), describe(error));
      errorBox.hidden = false;
    } finally {
      save.disabled = reset.disabled = false;
    }
  }

  const form = h(
    "form",
    { "aria-label": "Rate limit" },
    h(
      "div",
      { class: "inline-form" },
      h("div", { class: "field" }, h("label", { for: "rate-rps" }, "Requests per second"), rps),
      h("div", { class: "field" }, h("label", { for: "rate-burst" }, "Burst"), burst),
      h("div", { class: "actions" }, save, reset),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { requestsPerSecond: Number(rps.value), burst: Math.round(Number(burst.value)) };
    put(body, `Rate limit set to ${fmt(body.requestsPerSecond)} requests/s, burst ${fmt(body.burst)}.`);
  });
  reset.addEventListener("click", () => put({ requestsPerSecond: 0, burst: 0 }, "Rate limit reset to the engine's default."));
  return h(
    "div",
    { class: "panel-body" },
    h(
      "p",
      { class: "muted small" },
      "The token bucket of this dashboard's API key. The values shown are the ones in force: ",
      custom ? "this dashboard's own limit." : "the engine's default.",
    ),
    form,
    errorBox,
  );
}

function recoverDialog(agencyId, label) {
  return confirmDialog({
    title: "Recover failed deliveries?",
    description: `Every FAILED delivery of ${label} is queued again (same event id), or only those created since a time.`,
    fields: [
      {
        name: "since",
        label: "Only deliveries created since (optional)",
        type: "datetime-local",
        hint: "Your local time. Leave empty to recover every failed delivery.",
      },
    ],
    confirm: "Recover deliveries",
    run: async ({ since }) => {
      const body = {};
      if (since) {
        const date = new Date(since);
        if (Number.isNaN(date.getTime())) throw new Error("that date is not valid");
        body.since = date.toISOString();
      }
      const { recovered = 0 } = await api("POST", `/admin/dashboards/${enc(agencyId)}/deliveries/recover`, { body });
      toast(`${plural(recovered, "failed delivery", "failed deliveries")} of ${agencyId} queued again.`);
      return { recovered };
    },
  });
}

async function viewDashboard({ args: [agencyId] }) {
  const sessions = sessionsList({
    load: (token) =>
      api("GET", `/admin/dashboards/${enc(agencyId)}/sessions`, { query: { pageSize: PAGE_SIZE, pageToken: token } }),
    showAgency: false,
  });
  const deliveries = deliveriesList({
    load: (token, status) =>
      api("GET", "/webhooks/deliveries", { query: { agencyId, status, pageSize: 20, pageToken: token } }),
    showAgency: false,
    withStatusFilter: true,
  });
  const [{ dashboard }] = await Promise.all([
    api("GET", `/admin/dashboards/${enc(agencyId)}`),
    sessions.ready,
    deliveries.ready,
  ]);
  const summary = dashboard.summary || {};
  const config = dashboard.config || {};
  const name = summary.dashboardName || agencyId;
  const after = async () => {
    await render({ quiet: true });
    main.querySelector(".head-actions button")?.focus();
  };

  const keys = dashboard.apiKeys || [];
  const history = dashboard.statusHistory || [];
  const now = Date.now();

  return [
    pageHead(name, {
      crumbs: [["Dashboards", "#/dashboards"], [name]],
      subtitle: [h("code", {}, agencyId), " ", badge(DASHBOARD_STATUS, summary.status)],
      actions: [
        statusActions(summary, after, ""),
        h(
          "button",
          {
            type: "button",
            class: "btn",
            id: "recover-deliveries",
            onclick: async () => (await recoverDialog(agencyId, nameOf(summary))) && render({ quiet: true }),
          },
          "Recover failed deliveries",
        ),
        refreshButton(),
      ],
    }),
    h(
      "div",
      { class: "panel stats" },
      [
        ["Sessions", sessionChips(summary.sessionCounts)],
        ["Deliveries 24 h", deliveryChips(summary.deliveries24h)],
        ["Last successful delivery", when(summary.lastSuccessfulDeliveryTime, { empty: "never" })],
        ["Registered", when(summary.createTime, { absolute: true })],
      ].map(([label, value]) => h("div", {}, h("span", { class: "stat-label" }, label), value)),
    ),
    h(
      "div",
      { class: "grid-2" },
      panel(
        "Configuration",
        "config-title",
        h(
          "div",
          { class: "panel-body tight" },
          propList([
            ["Agency ID", h("code", {}, config.agencyId || agencyId)],
            ["Name", config.dashboardName || "—"],
            ["Webhook URL", h("code", {}, config.dashboardUrl || "—")],
            ["Status", badge(DASHBOARD_STATUS, config.status)],
            [
              "Webhook secret",
              config.webhookSecretSet
                ? ["Set", config.webhookSecretHint ? [" · ends in ", h("code", {}, `…${config.webhookSecretHint}`)] : ""]
                : h("span", { class: "badge warn" }, "Not set"),
            ],
            ["Created", when(config.createTime, { absolute: true })],
            ["Updated", when(config.updateTime, { absolute: true })],
          ]),
        ),
      ),
      h(
        "div",
        { class: "stack" },
        panel("Rate limit", "rate-title", rateLimitForm(agencyId, dashboard.rateLimit || config.rateLimit, Boolean(dashboard.rateLimitCustom))),
        panel(
          "API keys",
          "keys-title",
          keys.length
            ? h(
                "div",
                { class: "table-wrap" },
                table(
                  [{ label: "Prefix" }, { label: "Created" }, { label: "Expires" }],
                  keys.map((k) => {
                    const expired = k.expireTime && new Date(k.expireTime).getTime() <= now;
                    return h(
                      "tr",
                      {},
                      h("td", {}, h("code", {}, `${k.prefix}…`)),
                      h("td", {}, when(k.createTime, { absolute: true })),
                      h(
                        "td",
                        {},
                        k.expireTime
                          ? [when(k.expireTime), " ", h("span", { class: `badge ${expired ? "" : "warn"}` }, expired ? "Expired" : "Rotated out")]
                          : h("span", { class: "badge ok" }, "Current"),
                      ),
                    );
                  }),
                  "API keys",
                ),
              )
            : h("div", { class: "empty" }, "No API keys."),
        ),
      ),
    ),
    h(
      "section",
      { class: "section", "aria-labelledby": "history-title" },
      h("div", { class: "section-head" }, h("h2", { id: "history-title" }, "Status history")),
      h(
        "div",
        { class: "panel" },
        history.length
          ? h(
              "div",
              { class: "table-wrap" },
              table(
                [{ label: "When" }, { label: "Status" }, { label: "By" }, { label: "Reason" }],
                history.map((change) =>
                  h(
                    "tr",
                    {},
                    h("td", { class: "nowrap" }, when(change.changeTime, { absolute: true })),
                    h("td", {}, badge(DASHBOARD_STATUS, change.status)),
                    h("td", {}, change.actor || "—"),
                    h("td", { class: "cell-name" }, change.reason || h("span", { class: "faint" }, "—")),
                  ),
                ),
                "Status history",
              ),
            )
          : h("div", { class: "empty" }, "Never suspended or disabled."),
      ),
    ),
    h(
      "section",
      { class: "section", "aria-labelledby": "sessions-title" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { id: "sessions-title" }, "Sessions"),
        h("a", { href: `#/sessions?agencyId=${enc(agencyId)}` }, "Open in Sessions →"),
      ),
      sessions.el,
    ),
    h(
      "section",
      { class: "section", "aria-labelledby": "deliveries-title" },
      h(
        "div",
        { class: "section-head" },
        h(
          "div",
          {},
          h("h2", { id: "deliveries-title" }, "Recent deliveries"),
          h("p", { class: "muted small" }, "Webhooks to this dashboard, newest first. Expand one to see its attempts."),
        ),
        deliveries.filter,
      ),
      deliveries.el,
    ),
  ];
}

// ---- sessions ------------------------------------------------------------------------------

const PNG_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const IMAGE_TYPES = new Set(["image/png", "image/gif", "image/jpeg"]);

async function loadQr(session, holder) {
  try {
    const qr = await api("GET", `/sessions/${enc(session.sessionId)}/qr`, { query: { agencyId: session.agencyId } });
    const type = IMAGE_TYPES.has(qr.mimeType) ? qr.mimeType : "image/png";
    if (!qr.png || !PNG_BASE64.test(qr.png)) throw new Error("the engine sent no QR image");
    const label = session.name || session.sessionId;
    replace(
      holder,
      h("img", { src: `data:${type};base64,${qr.png}`, alt: `QR code to pair session ${label}`, width: 128, height: 128 }),
      h("span", { class: "qr-placeholder" }, "Scan with WhatsApp"),
    );
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return report(error);
    replace(holder, h("span", { class: "qr-placeholder" }, "QR code unavailable: ", error.message));
  }
}

function stopSession(session) {
  return confirmDialog({
    title: "Stop session?",
    description: `Session ${session.name || session.sessionId} (${session.agencyId} / ${session.tenantId}) stops; it stays paired and can be started again.`,
    confirm: "Stop session",
    run: async () => {
      await api("POST", `/sessions/${enc(session.sessionId)}/stop`, { body: { agencyId: session.agencyId } });
      toast(`Stopped session ${session.name || session.sessionId}.`);
    },
  });
}

function deleteSession(session) {
  return confirmDialog({
    title: "Delete session?",
    description:
      `Session ${session.name || session.sessionId} (${session.agencyId} / ${session.tenantId}) is removed at its ` +
      "provider and from the API. Its conversations and messages stay listable.",
    confirm: "Delete session",
    danger: true,
    run: async () => {
      await api("DELETE", `/sessions/${enc(session.sessionId)}`, { query: { agencyId: session.agencyId } });
      toast(`Deleted session ${session.name || session.sessionId}.`);
    },
  });
}

function sessionsList({ load, showAgency }) {
  const list = pagedList({
    load,
    itemsKey: "sessions",
    label: "Sessions",
    empty: [h("strong", {}, "No sessions"), "There are no sessions here (deleted sessions are not listed)."],
    rows: (items, reload) => {
      const columns = [
        { label: "Session" },
        showAgency && { label: "Agency" },
        { label: "Tenant" },
        { label: "Provider" },
        { label: "Status" },
        { label: "Account" },
        { label: "Updated" },
        { label: "QR code" },
        { label: "Actions" },
      ].filter(Boolean);
      const container = table(
        columns,
        items.map((s) => {
          const label = s.name || s.sessionId;
          const qr = h("div", { class: "qr" });
          if (s.status === "SESSION_STATUS_SCAN_QR_CODE") {
            replace(qr, h("span", { class: "qr-placeholder" }, "Loading QR code…"));
            loadQr(s, qr);
          } else {
            replace(qr, h("span", { class: "faint" }, "—"));
          }
          const afterAction = async (done) => {
            if (done) {
              await reload();
              focusRow(s.sessionId);
            }
          };
          return h(
            "tr",
            { class: "row", "data-row": s.sessionId },
            h("td", { class: "cell-name" }, h("div", { class: "cell-main" }, s.name || "—"), h("div", { class: "cell-sub id" }, s.sessionId)),
            showAgency && h("td", { class: "nowrap" }, dashboardLink(s.agencyId)),
            h("td", {}, mono(s.tenantId)),
            h("td", {}, s.provider || "—"),
            h("td", {}, badge(SESSION_STATUS, s.status)),
            h("td", {}, mono(s.accountId)),
            h("td", { class: "nowrap" }, when(s.updateTime || s.createTime)),
            h("td", {}, qr),
            h(
              "td",
              {},
              h(
                "div",
                { class: "actions" },
                RUNNING_SESSION.has(s.status) &&
                  h(
                    "button",
                    {
                      type: "button",
                      class: "btn btn-sm",
                      "aria-label": `Stop session ${label}`,
                      onclick: async () => afterAction(await stopSession(s)),
                    },
                    "Stop",
                  ),
                h(
                  "button",
                  {
                    type: "button",
                    class: "btn btn-sm btn-danger-outline",
                    "aria-label": `Delete session ${label}`,
                    onclick: async () => afterAction(await deleteSession(s)),
                  },
                  "Delete",
                ),
              ),
            ),
          );
        }),
        "Sessions",
      );
      return container;
    },
  });
  return list;
}

async function viewSessions({ params }) {
  const filters = {
    agencyId: params.get("agencyId") || "",
    tenantId: params.get("tenantId") || "",
    status: params.get("status") || "",
    provider: params.get("provider") || "",
  };
  const list = sessionsList({
    load: (token) => api("GET", "/admin/sessions", { query: { ...filters, pageSize: PAGE_SIZE, pageToken: token } }),
    showAgency: true,
  });
  const [health] = await Promise.all([api("GET", "/admin/health"), list.ready]);
  const providers = Object.keys(health.providerStatus || {}).sort();
  return [
    pageHead("Sessions", {
      subtitle: "Every live session of every dashboard, newest first.",
      actions: [refreshButton()],
    }),
    filterForm(
      "/sessions",
      [
        { name: "agencyId", label: "Agency ID", placeholder: "any agency" },
        { name: "tenantId", label: "Tenant ID", placeholder: "any tenant" },
        {
          name: "status",
          label: "Status",
          options: [["", "Any status"], ...Object.entries(SESSION_STATUS).map(([value, [label]]) => [value, label])],
        },
        { name: "provider", label: "Provider", options: [["", "Any provider"], ...providers.map((p) => [p, p])] },
      ],
      params,
    ),
    list.el,
  ];
}

// ---- deliveries ----------------------------------------------------------------------------

function attemptsView(delivery) {
  const attempts = delivery.attempts || [];
  return h(
    "div",
    { class: "attempts" },
    h("h3", {}, `Attempts of ${delivery.deliveryId}`),
    attempts.length
      ? table(
          [
            { label: "#", num: true },
            { label: "When" },
            { label: "HTTP status" },
            { label: "Duration", num: true },
            { label: "Error" },
            { label: "Response" },
          ],
          attempts.map((a) =>
            h(
              "tr",
              {},
              h("td", { class: "num" }, fmt(a.attemptNumber)),
              h("td", { class: "nowrap" }, when(a.attemptTime, { absolute: true })),
              h(
                "td",
                {},
                num(a.responseStatus)
                  ? h("span", { class: `badge ${num(a.responseStatus) < 300 ? "ok" : "bad"}` }, String(a.responseStatus))
                  : h("span", { class: "badge bad" }, "No response"),
              ),
              h("td", { class: "num nowrap" }, `${fmt(a.durationMs)} ms`),
              h("td", { class: "cell-name" }, a.error || h("span", { class: "faint" }, "—")),
              h("td", {}, a.responseBodyExcerpt ? h("pre", { class: "excerpt" }, a.responseBodyExcerpt) : h("span", { class: "faint" }, "—")),
            ),
          ),
          "Delivery attempts",
        )
      : h("p", { class: "muted" }, "No attempt has been made yet."),
    delivery.event &&
      h(
        "details",
        { class: "payload" },
        h("summary", {}, "Event payload"),
        h("pre", {}, JSON.stringify(delivery.event, null, 2)),
      ),
  );
}

async function redeliver(delivery) {
  await api("POST", `/webhooks/deliveries/${enc(delivery.deliveryId)}/redeliver`, {
    body: { agencyId: delivery.agencyId },
  });
  toast(`Delivery ${delivery.deliveryId} queued again.`);
}

function deliveriesList({ load, showAgency, withStatusFilter = false, status: initialStatus = "" }) {
  let status = initialStatus;
  const list = pagedList({
    load: (token) => load(token, status),
    itemsKey: "deliveries",
    label: "Deliveries",
    empty: [h("strong", {}, "No deliveries"), "Nothing to show here."],
    rows: (items, reload) => {
      const columns = [
        { label: "Event" },
        showAgency && { label: "Agency" },
        { label: "Status" },
        { label: "Attempts", num: true },
        { label: "Created" },
        { label: "Last attempt" },
        { label: "Next attempt" },
        { label: "Actions" },
      ].filter(Boolean);
      const rows = [];
      const container = table(columns, rows, "Deliveries");
      const tbody = container.querySelector("tbody");
      for (const d of items) {
        const detailId = `attempts-${d.deliveryId}`;
        const detail = h("tr", { class: "detail-row", id: detailId, hidden: true }, h("td", { colspan: columns.length }));
        const toggle = h(
          "button",
          {
            type: "button",
            class: "btn btn-sm",
            "aria-expanded": "false",
            "aria-controls": detailId,
            "aria-label": `Attempts of ${d.deliveryId}`,
          },
          "Attempts",
        );
        toggle.addEventListener("click", async () => {
          const open = toggle.getAttribute("aria-expanded") === "true";
          toggle.setAttribute("aria-expanded", String(!open));
          detail.hidden = open;
          if (open) return;
          const cell = detail.firstChild;
          replace(cell, loading("Loading attempts…"));
          try {
            const { delivery } = await api("GET", `/webhooks/deliveries/${enc(d.deliveryId)}`, {
              query: { agencyId: d.agencyId },
            });
            replace(cell, attemptsView(delivery || d));
          } catch (error) {
            if (error instanceof ApiError && error.status === 401) return report(error);
            replace(cell, alertBox(error));
          }
        });
        const again =
          REDELIVERABLE.has(d.status) &&
          h(
            "button",
            {
              type: "button",
              class: "btn btn-sm",
              "aria-label": `Redeliver ${d.deliveryId}`,
              onclick: async (event) => {
                const button = event.currentTarget;
                button.disabled = true;
                try {
                  await redeliver(d);
                  await reload();
                  focusRow(d.deliveryId);
                } catch (error) {
                  report(error);
                  button.disabled = false;
                }
              },
            },
            "Redeliver",
          );
        tbody.append(
          h(
            "tr",
            { class: "row", "data-row": d.deliveryId },
            h("td", { class: "cell-name" }, h("div", { class: "cell-main" }, d.eventType || "—"), h("div", { class: "cell-sub id" }, d.deliveryId)),
            showAgency && h("td", { class: "nowrap" }, dashboardLink(d.agencyId)),
            h("td", {}, badge(DELIVERY_STATUS, d.status)),
            h("td", { class: "num" }, fmt(d.attemptCount)),
            h("td", { class: "nowrap" }, when(d.createTime)),
            h("td", { class: "nowrap" }, when(d.lastAttemptTime)),
            h("td", { class: "nowrap" }, d.status === "DELIVERY_STATUS_PENDING" ? when(d.nextAttemptTime) : h("span", { class: "faint" }, "—")),
            h("td", {}, h("div", { class: "actions" }, toggle, again)),
          ),
          detail,
        );
      }
      return container;
    },
  });
  if (withStatusFilter) {
    const select = h(
      "select",
      { id: "delivery-status", name: "status" },
      [["", "Any status"], ...Object.entries(DELIVERY_STATUS).map(([value, [label]]) => [value, label])].map(([value, label]) =>
        h("option", { value, selected: value === status }, label),
      ),
    );
    select.addEventListener("change", () => {
      status = select.value;
      list.reload();
    });
    list.filter = h("div", { class: "field" }, h("label", { for: "delivery-status" }, "Status"), select);
  }
  return list;
}

async function viewDeliveries({ params }) {
  const agencyId = params.get("agencyId") || "";
  const chosen = params.get("status");
  const status = chosen === null ? "DELIVERY_STATUS_FAILED" : chosen === "any" ? "" : chosen;
  let agencies = new Map();
  const list = deliveriesList({
    load: async (token) => {
      const data = await api("GET", "/admin/deliveries", {
        query: { agencyId, status, pageSize: PAGE_SIZE, pageToken: token },
      });
      agencies = new Map();
      for (const d of [...(data.deliveries || [])].sort((a, b) => a.agencyId.localeCompare(b.agencyId))) {
        agencies.set(d.agencyId, (agencies.get(d.agencyId) || 0) + 1);
      }
      return data;
    },
    showAgency: true,
  });
  await list.ready;
  const failedOnly = status === "DELIVERY_STATUS_FAILED";

  const recoverPanel =
    failedOnly &&
    agencies.size > 0 &&
    h(
      "section",
      { class: "panel section-panel", "aria-labelledby": "recover-title" },
      h("h2", { class: "panel-title", id: "recover-title" }, "Recover by dashboard"),
      h(
        "ul",
        { class: "recover-list" },
        [...agencies.entries()].map(([agency, count]) =>
          h(
            "li",
            { "data-row": agency },
            h("span", {}, dashboardLink(agency), h("span", { class: "muted small" }, ` · ${plural(count, "failed delivery", "failed deliveries")} on this page`)),
            h(
              "button",
              {
                type: "button",
                class: "btn btn-sm",
                "aria-label": `Recover failed deliveries of ${agency}`,
                onclick: async () => (await recoverDialog(agency, agency)) && render({ quiet: true }),
              },
              "Recover failed deliveries…",
            ),
          ),
        ),
      ),
    );

  return [
    pageHead(failedOnly ? "Failed deliveries" : "Deliveries", {
      subtitle: failedOnly
        ? "Webhooks that failed every attempt, across all dashboards. Redeliver one, or recover a dashboard's."
        : "Webhook deliveries across all dashboards.",
      actions: [refreshButton()],
    }),
    filterForm(
      "/deliveries",
      [
        { name: "agencyId", label: "Agency ID", placeholder: "any agency" },
        {
          name: "status",
          label: "Status",
          default: "DELIVERY_STATUS_FAILED",
          options: [["any", "Any status"], ...Object.entries(DELIVERY_STATUS).map(([value, [label]]) => [value, label])],
        },
      ],
      params,
    ),
    recoverPanel,
    list.el,
  ];
}

// ---- router --------------------------------------------------------------------------------

const ROUTES = [
  { pattern: /^\/overview$/, view: viewOverview, nav: "overview", title: () => "Overview" },
  { pattern: /^\/dashboards$/, view: viewDashboards, nav: "dashboards", title: () => "Dashboards" },
  { pattern: /^\/dashboards\/([^/]+)$/, view: viewDashboard, nav: "dashboards", title: ([id]) => id },
  { pattern: /^\/sessions$/, view: viewSessions, nav: "sessions", title: () => "Sessions" },
  { pattern: /^\/deliveries$/, view: viewDeliveries, nav: "deliveries", title: () => "Failed deliveries" },
];

let renderId = 0;

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "");
  const [path, qs = ""] = (raw.startsWith("/") ? raw : "/overview").split(/\?(.*)/s);
  return { path, params: new URLSearchParams(qs) };
}

/** Go to `hash`; options are those of render() (a filter keeps the page and its focus). */
function navigate(hash, options = { focus: true }) {
  if (window.location.hash === hash) render({ ...options, quiet: true });
  else {
    pendingOptions = options;
    window.location.hash = hash;
  }
}

let pendingOptions = null;

/** Render the page the hash names (or the sign-in form); `quiet` keeps the old page until the new one is ready. */
async function render({ focus = false, quiet = false } = {}) {
  const id = ++renderId;
  if (!getKey()) {
    showSignIn();
    return;
  }
  topbar.hidden = false;
  const { path, params } = parseHash();
  let route = null;
  let args = [];
  for (const candidate of ROUTES) {
    const match = candidate.pattern.exec(path);
    if (match) {
      route = candidate;
      args = match.slice(1).map((part) => {
        try {
          return decodeURIComponent(part);
        } catch {
          return part;
        }
      });
      break;
    }
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (route && link.dataset.nav === route.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!route) {
    document.title = "Not found · Workflow Engine Admin";
    replace(
      main,
      pageHead("Page not found"),
      h("div", { class: "panel error-panel" }, h("p", {}, "There is no page at this address."), h("a", { class: "btn", href: "#/overview" }, "Go to the overview")),
    );
    if (focus) main.querySelector("h1").focus();
    return;
  }
  document.title = `${route.title(args)} · Workflow Engine Admin`;
  // A quiet render (refresh, filter, after an action) puts focus back where it was, by element id.
  const active = document.activeElement;
  const keep = quiet && active && active !== main && main.contains(active) ? active.id : "";
  if (!quiet) replace(main, loading());
  try {
    const content = await route.view({ params, args });
    if (id !== renderId) return;
    replace(main, content);
    if (focus) main.querySelector("h1")?.focus();
    else if (keep) document.getElementById(keep)?.focus();
  } catch (error) {
    if (id !== renderId) return;
    if (error instanceof ApiError && error.status === 401) {
      signOut("expired");
      return;
    }
    replace(
      main,
      pageHead(error instanceof ApiError && error.status === 404 ? "Not found" : "Could not load this page", {
        crumbs: route.nav === "dashboards" && args.length ? [["Dashboards", "#/dashboards"], [args[0]]] : null,
      }),
      h(
        "div",
        { class: "panel error-panel" },
        alertBox(error),
        h("button", { type: "button", class: "btn btn-primary", onclick: () => render({ focus: true }) }, "Try again"),
      ),
    );
    if (focus) main.querySelector("h1")?.focus();
  }
}

window.addEventListener("hashchange", () => {
  const options = pendingOptions || { focus: true };
  pendingOptions = null;
  render(options);
});

document.getElementById("sign-out").addEventListener("click", () => signOut("user"));
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") || main).focus();
});

if (getKey()) {
  api("GET", "/admin/health").then(showVersion, () => {});
}
render();
