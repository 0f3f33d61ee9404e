// The alert feed: REST's open alerts, then live ones (subscribe_alerts with the user's filter), with
// replay after a reload or a fresh session (`since`), live alert_updated, and acknowledge/resolve for operators.
import {h, ago, words} from "./dom.js";
import {MODULES, SEVERITIES, title} from "./modules.js";
import {get, post} from "./api.js";
import {call} from "./socket.js";

const FILTER_KEY = "citypulse.alert_filter";
const SHOWN = 100;
const FIRST_REPLAY_MS = 5 * 60 * 1000;  // a first session replays the last minutes (merged by id) to close the gap after REST

function readFilter() {
  try {
    const saved = JSON.parse(localStorage.getItem(FILTER_KEY));
    if (saved && Array.isArray(saved.severity_levels) && Array.isArray(saved.modules)) return saved;
  } catch { /* a default below */ }
  return {severity_levels: [...SEVERITIES], modules: [...MODULES]};
}

export function createAlertFeed(root, {user, canWrite, onCritical, onError}) {
  const alerts = new Map();  // id -> alert
  const cursorKey = `citypulse.alert_cursor.${user.id}`;
  let filter = readFilter();
  let socket = null;

  const list = h("ol", {class: "alert-list", "aria-live": "polite", "aria-relevant": "additions"});
  const summary = h("p", {class: "muted", id: "alert-summary"});
  const picker = (name, options, chosen) => h("fieldset", {class: `picker picker-${name}`},
    h("legend", {}, name === "severity" ? "Severity" : "Module"),
    options.map((option) => h("label", {class: `chip ${name === "severity" ? `sev-${option}` : ""}`},
      h("input", {type: "checkbox", name, value: option, checked: chosen.includes(option), onchange: changeFilter}),
      name === "severity" ? option : title(option))));
  const filters = h("div", {class: "filters"},
    picker("severity", SEVERITIES, filter.severity_levels), picker("module", MODULES, filter.modules));
  root.replaceChildren(filters, summary, list);

  function changeFilter() {
    const checked = (name) => [...root.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
    filter = {severity_levels: checked("severity"), modules: checked("module")};
    localStorage.setItem(FILTER_KEY, JSON.stringify(filter));
    render();
    if (socket && socket.connected) subscribe(socket).catch(onError);
  }

  // Empty choices mean "all" to the server; here the user unticked everything, which means none shown.
  const matches = (alert) => filter.severity_levels.includes(alert.severity) && filter.modules.includes(alert.module);

  function advanceCursor(alert) {
    const raised = alert.raised_at || alert.created_at;
    const cursor = localStorage.getItem(cursorKey);
    if (raised && (!cursor || raised > cursor)) localStorage.setItem(cursorKey, raised);
  }

  function merge(alert) {
    const known = alerts.get(alert.id);
    const {escalated, replayed, change, ...stored} = alert;
    // alert_updated and replays carry the whole alert as stored: the newest last_seen wins.
    if (!known || (stored.last_seen || "") >= (known.last_seen || "") || change) alerts.set(alert.id, stored);
    return !known;
  }

  async function load() {
    const page = await get(`/api/alerts?status=open&limit=${SHOWN}&sort=-raised_at`);
    page.items.forEach(merge);
    render();
  }

  // (Re)subscribe with the current filter, replaying what was raised since the last alert this user saw.
  async function subscribe(sock) {
    socket = sock;
    const since = localStorage.getItem(cursorKey) || new Date(Date.now() - FIRST_REPLAY_MS).toISOString();
    const none = !filter.severity_levels.length || !filter.modules.length;
    if (none) return call(sock, "unsubscribe_alerts");
    return call(sock, "subscribe_alerts", {...filter, since});
  }

  // A live, escalated or replayed alert (<module>_alert).
  function receive(alert) {
    const isNew = merge(alert);
    advanceCursor(alert);
    render(alert.id);
    if (alert.severity === "critical" && !alert.replayed && (isNew || alert.escalated)) onCritical(alert);
  }

  function updated(alert) {
    merge(alert);
    render();
  }

  async function act(alert, action, note) {
    try {
      const result = await post(`/api/alerts/${alert.id}/${action}`, {note: note || null});
      merge({...result, change: action});
      render();
    } catch (error) {
      onError(error);
    }
  }

  function actions(alert) {
    if (!canWrite() || alert.status === "resolved") return null;
    const form = h("form", {class: "note-form", hidden: true});
    const note = h("input", {type: "text", name: "note", maxlength: 1000, placeholder: "Note (optional)", "aria-label": "Note"});
    const confirm = h("button", {type: "submit", class: "primary"});
    const cancel = h("button", {type: "button", onclick: () => { form.hidden = true; }}, "Cancel");
    form.append(note, confirm, cancel);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      confirm.disabled = true;
      act(alert, form.dataset.action, note.value.trim());
    });
    const open = (action, label) => () => {
      form.dataset.action = action;
      confirm.textContent = label;
      form.hidden = false;
      note.focus();
    };
    return h("div", {class: "alert-actions"},
      alert.status === "active" ? h("button", {type: "button", class: "ack", onclick: open("acknowledge", "Acknowledge")}, "Acknowledge") : null,
      h("button", {type: "button", class: "resolve", onclick: open("resolve", "Resolve")}, "Resolve"),
      form);
  }

  function item(alert, fresh) {
    const by = alert.status === "acknowledged" && alert.acknowledged_by ? ` by ${alert.acknowledged_by.username || alert.acknowledged_by.email}` : "";
    const resolvedBy = alert.status === "resolved" && alert.resolved_by
      ? ` by ${typeof alert.resolved_by === "string" ? alert.resolved_by : alert.resolved_by.username || alert.resolved_by.email}` : "";
    return h("li", {class: `alert sev-${alert.severity} st-${alert.status}${fresh ? " fresh" : ""}`, "data-id": alert.id,
                    "data-status": alert.status, "data-sensor": alert.sensor_id || ""},
      h("div", {class: "alert-head"},
        h("span", {class: `badge sev-${alert.severity}`}, alert.severity),
        h("span", {class: "alert-module"}, title(alert.module)),
        h("span", {class: "alert-status"}, words(alert.status) + by + resolvedBy),
        h("time", {datetime: alert.raised_at, title: alert.raised_at}, ago(alert.raised_at))),
      h("p", {class: "alert-message"}, alert.message, alert.count > 1 ? h("span", {class: "count"}, ` ×${alert.count}`) : null),
      alert.note ? h("p", {class: "alert-note"}, `Note: ${alert.note}`) : null,
      actions(alert));
  }

  function render(freshId) {
    const shown = [...alerts.values()].filter(matches)
      .sort((a, b) => (b.raised_at || "").localeCompare(a.raised_at || "")).slice(0, SHOWN);
    const open = shown.filter((a) => a.status !== "resolved").length;
    summary.textContent = `${open} open · ${shown.length} shown`;
    // Keep a half-typed note: rows with an open form are left as they are unless their alert changed.
    const editing = new Map([...list.querySelectorAll("li")].filter((li) => li.querySelector("form:not([hidden])"))
      .map((li) => [li.dataset.id, li]));
    list.replaceChildren(...shown.map((alert) => {
      const row = editing.get(alert.id);
      return row && row.dataset.status === alert.status ? row : item(alert, alert.id === freshId);
    }));
    if (!shown.length) list.append(h("li", {class: "empty"}, "No alerts for this filter."));
  }

  return {load, subscribe, receive, updated, render};
}
