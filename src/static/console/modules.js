// What the console knows about each module: the reading that colours a sensor, its fields, its KPIs.
// KPIs use the same formulas as the server's /api/dashboard/overview (src/services/dashboard.py).
export const READING_MODULES = ["traffic", "environment", "waste", "energy"];
export const MODULES = [...READING_MODULES, "emergency"];
export const SEVERITIES = ["low", "medium", "high", "critical"];
export const LEVEL_NAMES = ["normal", "elevated", "high", "critical"];

const band = (value, [a, b, c]) => (value >= c ? 3 : value >= b ? 2 : value >= a ? 1 : 0);
const AQI_LEVEL = {good: 0, moderate: 1, unhealthy_for_sensitive_groups: 2};

// Per module: the metric that colours a sensor and is charted, and the fields its detail shows.
export const METRIC = {
  traffic: {field: "congestion_level", label: "Congestion", unit: "%", level: (r) => band(r.congestion_level, [40, 70, 85]),
            fields: [["vehicle_count", "Vehicles", ""], ["average_speed", "Speed", " km/h"],
                     ["congestion_level", "Congestion", " %"], ["occupancy_pct", "Occupancy", " %"]]},
  environment: {field: "aqi", label: "AQI", unit: "", level: (r) => AQI_LEVEL[r.aqi_category] ?? 3,
                fields: [["aqi", "AQI", ""], ["aqi_category", "Category", ""], ["pm25", "PM2.5", " µg/m³"],
                         ["pm10", "PM10", " µg/m³"], ["no2", "NO₂", " µg/m³"], ["o3", "O₃", " µg/m³"],
                         ["co2", "CO₂", " ppm"], ["noise_db", "Noise", " dB"], ["temperature_c", "Temperature", " °C"],
                         ["humidity_pct", "Humidity", " %"]]},
  waste: {field: "fill_level_pct", label: "Fill", unit: "%", level: (r) => band(r.fill_level_pct, [60, 80, 95]),
          fields: [["fill_level_pct", "Fill", " %"], ["waste_type", "Type", ""], ["temperature_c", "Temperature", " °C"],
                   ["battery_pct", "Battery", " %"]]},
  energy: {field: "utilization_pct", label: "Utilisation", unit: "%", level: (r) => band(r.utilization_pct, [70, 85, 95]),
           fields: [["load_mw", "Load", " MW"], ["capacity_mw", "Capacity", " MW"], ["utilization_pct", "Utilisation", " %"],
                    ["renewable_pct", "Renewable", " %"], ["frequency_hz", "Frequency", " Hz"], ["voltage_kv", "Voltage", " kV"]]},
};

const mean = (values) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);
const sum = (values) => values.reduce((a, b) => a + b, 0);

// KPIs of a module from its latest reading per sensor: [label, value, digits, unit], the first is the headline.
export function kpis(module, readings) {
  const r = [...readings];
  if (module === "traffic") {
    return [["Congestion", mean(r.map((x) => x.congestion_level)), 1, " %"],
            ["Average speed", mean(r.map((x) => x.average_speed)), 1, " km/h"],
            ["Vehicles / min", sum(r.map((x) => x.vehicle_count)), 0, ""]];
  }
  if (module === "environment") {
    return [["Average AQI", mean(r.map((x) => x.aqi)), 0, ""],
            ["Worst AQI", r.length ? Math.max(...r.map((x) => x.aqi)) : null, 0, ""],
            ["Poor air sensors", r.filter((x) => METRIC.environment.level(x) >= 2).length, 0, ""]];
  }
  if (module === "waste") {
    return [["Average fill", mean(r.map((x) => x.fill_level_pct)), 1, " %"],
            ["Bins ≥ 80 %", r.filter((x) => x.fill_level_pct >= 80).length, 0, ""],
            ["Bins", r.length, 0, ""]];
  }
  const load = sum(r.map((x) => x.load_mw)), capacity = sum(r.map((x) => x.capacity_mw || 0));
  const renewable = sum(r.map((x) => x.renewable_mw || 0));
  return [["Total load", r.length ? load : null, 1, " MW"],
          ["Utilisation", capacity ? (load / capacity) * 100 : null, 1, " %"],
          ["Renewables", load ? (renewable / load) * 100 : null, 1, " %"]];
}

export const title = (module) => module[0].toUpperCase() + module.slice(1);
