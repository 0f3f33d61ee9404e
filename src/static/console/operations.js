// Operations: open incidents (dispatch the nearest unit) and background tasks (reports and exports)
// with live task_status progress and a download link. Write controls only for operators and admins.
import {h, ago, fmt, words} from "./dom.js";
import {READING_MODULES, title} from "./modules.js";
import {get, post, download} from "./api.js";

const OPEN_EMERGENCY = new Set(["reported", "dispatched", "on_scene"]);
const OPEN_TRAFFIC = new Set(["reported", "responding"]);

// Emergency units and open incidents, polled: units change state without a broadcast of their own.
export async function loadEmergency() {
  const [units, emergency, traffic] = await Promise.all([
    get("/api/emergency/units?limit=200"),
    get("/api/emergency/incidents?limit=100&sort=-reported_at"),
    get("/api/traffic/incidents?limit=100&sort=-reported_at"),
  ]);
  const incidents = [
    ...emergency.items.filter((i) => OPEN_EMERGENCY.has(i.status)).map((i) => ({...i, module: "emergency"})),
    ...traffic.items.filter((i) => OPEN_TRAFFIC.has(i.status)).map((i) => ({...i, module: "traffic"})),
  ];
  return {units: units.items, incidents};
}

export function createIncidents(root, {canWrite, onDone, onError, notify}) {
  const list = h("ul", {class: "incident-list"});
  root.replaceChildren(list);

  async function dispatchNearest(incident, button) {
    button.disabled = true;
    try {
      const result = await post(`/api/emergency/incidents/${incident.id}/dispatch-nearest`, {});
      notify(`${result.unit.unit_id} dispatched: ${fmt(result.distance_km, 2)} km, ETA ${fmt(result.eta_min, 1)} min`);
      onDone();
    } catch (error) {
      button.disabled = false;
      onError(error);
    }
  }

  function render(incidents) {
    list.replaceChildren(...incidents.map((incident) => {
      const assigned = (incident.assigned_units || []).map((u) => u.unit_id).join(", ");
      const button = canWrite() && incident.module === "emergency"
        ? h("button", {type: "button", class: "dispatch"}, "Dispatch nearest unit") : null;
      if (button) button.addEventListener("click", () => dispatchNearest(incident, button));
      return h("li", {class: `incident sev-${incident.severity}`, "data-id": incident.id},
        h("div", {class: "alert-head"},
          h("span", {class: `badge sev-${incident.severity}`}, incident.severity),
          h("strong", {}, `${words(incident.type)} · ${incident.district}`),
          h("span", {class: "alert-status"}, words(incident.status)),
          h("time", {datetime: incident.reported_at}, ago(incident.reported_at))),
        incident.description ? h("p", {class: "alert-message"}, incident.description) : null,
        assigned ? h("p", {class: "muted"}, `Units: ${assigned}`) : null,
        button);
    }));
    if (!incidents.length) list.append(h("li", {class: "empty"}, "No open incidents."));
  }

  return {render};
}

export function createTasks(root, {user, onError}) {
  const tasks = new Map();
  const list = h("ul", {class: "task-list"});
  const type = h("select", {name: "task_type", id: "task-type"},
    h("option", {value: "report_generation"}, "Report (all modules)"),
    h("option", {value: "data_export"}, "Export readings"));
  const module = h("select", {name: "module", id: "task-module"}, READING_MODULES.map((m) => h("option", {value: m}, title(m))));
  const format = h("select", {name: "format", id: "task-format"}, h("option", {value: "csv"}, "CSV"), h("option", {value: "json"}, "JSON"));
  const hours = h("select", {name: "hours", id: "task-hours"},
    h("option", {value: "1"}, "Last hour"), h("option", {value: "3"}, "Last 3 hours"), h("option", {value: "24"}, "Last 24 hours"));
  const exportOnly = h("span", {class: "export-only"},
    h("label", {for: "task-module"}, "Module"), module, h("label", {for: "task-format"}, "Format"), format);
  const form = h("form", {class: "task-form"},
    h("label", {for: "task-type"}, "Task"), type, h("label", {for: "task-hours"}, "Range"), hours, exportOnly,
    h("button", {type: "submit", class: "primary"}, "Submit"));
  const sync = () => { exportOnly.hidden = type.value !== "data_export"; };
  type.addEventListener("change", sync);
  sync();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const to = new Date(), from = new Date(to.getTime() - Number(hours.value) * 3600 * 1000);
    const data = {from: from.toISOString(), to: to.toISOString()};
    if (type.value === "data_export") Object.assign(data, {module: module.value, format: format.value});
    try {
      const submitted = await post("/api/tasks/submit", {task_type: type.value, data, priority: 5});
      // task_status may already have arrived; don't overwrite a newer state with "queued".
      if (!tasks.has(submitted.task_id)) {
        tasks.set(submitted.task_id, {id: submitted.task_id, task_type: type.value, status: submitted.status, progress: 0,
                                      created_at: new Date().toISOString()});
      }
      render();
    } catch (error) {
      onError(error);
    }
  });
  root.replaceChildren(form, list);

  function row(task) {
    const done = task.status === "completed";
    const bar = h("progress", {max: 100, value: done ? 100 : task.progress || 0, "aria-label": `${words(task.task_type)} progress`});
    const save = done ? h("button", {type: "button", class: "download"}, task.task_type === "data_export" ? "Download file" : "Download report") : null;
    if (save) {
      save.addEventListener("click", () => download(`/api/tasks/${task.id}/result`, `${task.task_type}-${task.id}.json`).catch(onError));
    }
    return h("li", {class: `task st-${task.status}`, "data-id": task.id},
      h("div", {class: "alert-head"},
        h("strong", {}, words(task.task_type)),
        h("span", {class: "alert-status task-status"}, task.status),
        h("time", {datetime: task.created_at}, ago(task.created_at))),
      bar,
      task.message || task.error ? h("p", {class: "muted"}, task.error || task.message) : null,
      save);
  }

  function render() {
    const shown = [...tasks.values()].sort((a, b) => (b.created_at || "").localeCompare(a.created_at || "")).slice(0, 8);
    list.replaceChildren(...shown.map(row));
    if (!shown.length) list.append(h("li", {class: "empty"}, "No tasks yet."));
  }

  async function load() {
    // Admins would list everyone's tasks; task_status reaches only the owner, so show one's own.
    const page = await get(`/api/tasks?limit=8${user.role === "admin" ? `&owner=${user.id}` : ""}`);
    page.items.forEach((task) => tasks.set(task.id, task));
    render();
  }

  function status(task) {  // task_status: the whole task, as REST shows it
    tasks.set(task.id, task);
    render();
  }

  return {load, status};
}
