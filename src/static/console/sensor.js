// The sensor detail: latest reading and a chart of its recent history (REST history, then the live stream).
import {h, svg, fmt, timeOf, words} from "./dom.js";
import {METRIC, LEVEL_NAMES, title} from "./modules.js";
import {timeChart} from "./charts.js";
import {get} from "./api.js";

const POINTS = 120;

export function createSensorDetail(root, {onClose, onError}) {
  let current = null;  // {module, id, points}
  const heading = h("h3", {id: "sensor-title", tabindex: "-1"});
  const meta = h("p", {class: "muted"});
  const table = h("dl", {class: "reading"});
  const chart = svg("svg", {class: "chart", role: "img", "aria-label": "Recent history"});
  const close = h("button", {type: "button", class: "icon", "aria-label": "Close sensor details", onclick: () => hide()}, "×");
  root.replaceChildren(h("div", {class: "detail-head"}, heading, close), meta, table, h("h4", {}, "Recent history"), chart);
  root.addEventListener("keydown", (event) => { if (event.key === "Escape") hide(); });

  function render(reading) {
    const metric = METRIC[current.module];
    meta.textContent = `${title(current.module)} · ${reading.district || "–"} · ${LEVEL_NAMES[metric.level(reading)]} · ${timeOf(reading.timestamp)}`;
    table.replaceChildren(...metric.fields.filter(([key]) => reading[key] !== undefined && reading[key] !== null)
      .flatMap(([key, label, unit]) => [h("dt", {}, label),
        typeof reading[key] === "number" ? h("dd", {"data-field": key}, fmt(reading[key], 1, unit))
          : h("dd", {"data-field": key, class: "text"}, words(reading[key]))]));
    timeChart(chart, current.points, `${metric.label}${metric.unit ? ` (${metric.unit})` : ""}`);
  }

  function addPoint(reading) {
    const value = reading[METRIC[current.module].field];
    const t = new Date(reading.timestamp);
    if (typeof value !== "number" || current.points.some((p) => p.t.getTime() === t.getTime())) return;
    current.points.push({t, v: value});
    current.points.sort((a, b) => a.t - b.t);
    if (current.points.length > POINTS) current.points.shift();
  }

  async function show(module, id, latest) {
    current = {module, id, points: [], latest};
    root.hidden = false;
    heading.textContent = id;
    if (latest) { addPoint(latest); render(latest); } else meta.textContent = "Loading…";
    heading.focus();
    try {
      const page = await get(`/api/${module}/data?sensor_id=${encodeURIComponent(id)}&limit=${POINTS}&sort=-timestamp`);
      if (!current || current.id !== id) return;
      page.items.forEach(addPoint);
      render(current.latest || page.items[0] || {});
    } catch (error) {
      onError(error);
    }
  }

  // A live reading: redraw if it is the sensor on show.
  function push(module, reading) {
    if (!current || current.module !== module || current.id !== reading.sensor_id) return;
    current.latest = reading;
    addPoint(reading);
    render(reading);
  }

  function hide() {
    if (!current) return;
    current = null;
    root.hidden = true;
    onClose();
  }

  return {show, push, hide};
}
