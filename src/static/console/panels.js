// Module panels: headline KPIs and a live sparkline per module, recomputed from each coalesced frame.
import {h, svg, fmt, ago} from "./dom.js";
import {kpis, title} from "./modules.js";
import {sparkline} from "./charts.js";

const HISTORY = 60;  // sparkline points kept (one per frame that changed the module)

export function createPanels(root) {
  const panels = {};
  root.replaceChildren();

  function panel(module) {
    const values = h("dl", {class: "kpis"});
    const spark = svg("svg", {class: "spark", viewBox: "0 0 100 30", preserveAspectRatio: "none", "aria-hidden": "true"});
    const updated = h("p", {class: "updated"}, "waiting for data");
    const node = h("article", {class: `panel panel-${module}`, "data-module": module, "aria-labelledby": `panel-${module}-title`},
      h("h3", {id: `panel-${module}-title`}, title(module)), values, spark, updated);
    root.append(node);
    panels[module] = {node, values, spark, updated, series: [], at: null};
  }

  function show(module, items, at) {
    const p = panels[module];
    p.values.replaceChildren(...items.flatMap(([label, value, digits, unit], i) => [
      h("dt", {}, label), h("dd", {class: i ? "" : "headline", "data-kpi": label}, fmt(value, digits, unit))]));
    const headline = items[0][1];
    if (headline !== null && headline !== undefined) {
      p.series.push(headline);
      if (p.series.length > HISTORY) p.series.shift();
      sparkline(p.spark, p.series);
    }
    p.at = at || new Date().toISOString();
    p.updated.textContent = `updated ${ago(p.at)}`;
  }

  // A reading module's KPIs from its latest reading per sensor (a Map of sensor id -> reading).
  function update(module, latest) {
    if (!latest.size) return;
    const newest = [...latest.values()].reduce((a, r) => (r.timestamp > a ? r.timestamp : a), "");
    show(module, kpis(module, latest.values()), newest || null);
  }

  function updateEmergency(units, incidents) {
    const available = units.filter((u) => u.status === "available").length;
    const moving = units.filter((u) => u.status === "en_route").length;
    show("emergency", [["Available units", available, 0, ` / ${units.length}`],
                       ["Open incidents", incidents.filter((i) => i.module === "emergency").length, 0, ""],
                       ["Units en route", moving, 0, ""]]);
  }

  function refreshAges() {
    for (const p of Object.values(panels)) if (p.at) p.updated.textContent = `updated ${ago(p.at)}`;
  }

  ["traffic", "environment", "waste", "energy", "emergency"].forEach(panel);
  return {update, updateEmergency, refreshAges};
}
