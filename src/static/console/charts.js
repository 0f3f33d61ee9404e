// Hand-drawn SVG charts: a sparkline for panels and a time chart for a sensor's history.
import {fmt, svg, timeOf} from "./dom.js";

function scale(domainMin, domainMax, rangeMin, rangeMax) {
  const span = domainMax - domainMin || 1;
  return (value) => rangeMin + ((value - domainMin) / span) * (rangeMax - rangeMin);
}

// values: numbers, oldest first. Redraws into `node` (an <svg>), keeping its viewBox of 100 x 30.
export function sparkline(node, values) {
  node.replaceChildren();
  const points = values.filter((v) => v !== null && v !== undefined);
  if (points.length < 2) return;
  const lo = Math.min(...points), hi = Math.max(...points);
  const pad = (hi - lo) * 0.1 || 1;
  const x = scale(0, points.length - 1, 1, 99), y = scale(lo - pad, hi + pad, 29, 1);
  const line = points.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
  node.append(
    svg("path", {class: "spark-area", d: `${line}L99,30L1,30Z`}),
    svg("path", {class: "spark-line", d: line}),
    svg("circle", {class: "spark-dot", cx: x(points.length - 1).toFixed(1), cy: y(points.at(-1)).toFixed(1), r: 1.6}),
  );
}

// points: [{t: Date, v: number}], oldest first. A line with min/max and first/last time labels.
export function timeChart(node, points, unit = "") {
  const W = 320, H = 140, L = 38, R = 8, T = 10, B = 22;
  node.setAttribute("viewBox", `0 0 ${W} ${H}`);
  node.replaceChildren();
  if (points.length < 2) {
    node.append(svg("text", {x: W / 2, y: H / 2, class: "chart-empty", "text-anchor": "middle"}, "Waiting for readings…"));
    return;
  }
  const t0 = points[0].t.getTime(), t1 = points.at(-1).t.getTime();
  const values = points.map((p) => p.v);
  const lo = Math.min(...values), hi = Math.max(...values);
  const pad = (hi - lo) * 0.1 || 1;
  const x = scale(t0, t1, L, W - R), y = scale(lo - pad, hi + pad, H - B, T);
  const line = points.map((p, i) => `${i ? "L" : "M"}${x(p.t.getTime()).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
  const digits = hi - lo < 10 ? 1 : 0;
  node.append(
    svg("line", {class: "chart-axis", x1: L, y1: H - B, x2: W - R, y2: H - B}),
    svg("line", {class: "chart-grid", x1: L, y1: y(hi), x2: W - R, y2: y(hi)}),
    svg("line", {class: "chart-grid", x1: L, y1: y(lo), x2: W - R, y2: y(lo)}),
    svg("text", {class: "chart-label", x: L - 4, y: y(hi) + 3, "text-anchor": "end"}, fmt(hi, digits)),
    svg("text", {class: "chart-label", x: L - 4, y: y(lo) + 3, "text-anchor": "end"}, fmt(lo, digits)),
    svg("text", {class: "chart-label", x: L, y: H - 6}, timeOf(points[0].t)),
    svg("text", {class: "chart-label", x: W - R, y: H - 6, "text-anchor": "end"}, timeOf(points.at(-1).t)),
    svg("text", {class: "chart-label", x: L + 4, y: T + 2}, unit),
    svg("path", {class: "chart-line", d: line}),
    svg("circle", {class: "spark-dot", cx: x(t1).toFixed(1), cy: y(points.at(-1).v).toFixed(1), r: 3}),
  );
}
