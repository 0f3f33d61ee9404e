// The live city map, drawn in SVG from the server's city model (/console/city.json) and live readings.
// Units are kilometres from the city centre (x east, y south), so no map tiles are needed.
import {h, svg, fmt, words} from "./dom.js";
import {METRIC, LEVEL_NAMES, title} from "./modules.js";

const KM_PER_DEG = 111.32;
const PAD_KM = 0.9;
const UNIT_LETTER = {ambulance: "A", fire: "F", police: "P"};

// A district is the set of points nearest its centre (src/services/city.py nearest_district), so its area
// is the centre's Voronoi cell: the bounding box clipped by the bisector with every other centre.
function voronoiCell(site, others, box) {
  let poly = box;
  for (const other of others) {
    const [mx, my] = [(site[0] + other[0]) / 2, (site[1] + other[1]) / 2];
    const [dx, dy] = [other[0] - site[0], other[1] - site[1]];
    const side = (p) => (p[0] - mx) * dx + (p[1] - my) * dy;  // <= 0: on the site's side
    const next = [];
    poly.forEach((p, i) => {
      const q = poly[(i + 1) % poly.length];
      const sp = side(p), sq = side(q);
      if (sp <= 0) next.push(p);
      if ((sp < 0 && sq > 0) || (sp > 0 && sq < 0)) {
        const t = sp / (sp - sq);
        next.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
      }
    });
    poly = next;
  }
  return poly;
}

function shape(module) {
  if (module === "traffic") return svg("circle", {r: 0.075});
  if (module === "environment") return svg("rect", {x: -0.07, y: -0.07, width: 0.14, height: 0.14, transform: "rotate(45)"});
  if (module === "waste") return svg("rect", {x: -0.055, y: -0.055, width: 0.11, height: 0.11});
  return svg("path", {d: "M0,-0.14L0.12,-0.07L0.12,0.07L0,0.14L-0.12,0.07L-0.12,-0.07Z"});
}

export async function createMap(root, {onSelect}) {
  const city = await (await fetch("/console/city.json")).json();
  const [lng0, lat0] = city.districts[0].center;
  const kx = KM_PER_DEG * Math.cos((lat0 * Math.PI) / 180);
  const project = ([lng, lat]) => [(lng - lng0) * kx, (lat0 - lat) * KM_PER_DEG];

  const known = [...city.roads.flatMap((r) => [r.from, r.to]), ...city.districts.map((d) => d.center)].map(project);
  const xs = known.map((p) => p[0]), ys = known.map((p) => p[1]);
  const [x0, y0] = [Math.min(...xs) - PAD_KM, Math.min(...ys) - PAD_KM];
  const [x1, y1] = [Math.max(...xs) + PAD_KM, Math.max(...ys) + PAD_KM];
  root.setAttribute("viewBox", `${x0.toFixed(3)} ${y0.toFixed(3)} ${(x1 - x0).toFixed(3)} ${(y1 - y0).toFixed(3)}`);
  root.replaceChildren();

  const layer = (name) => root.appendChild(svg("g", {class: `layer layer-${name}`}));
  const base = layer("base"), roads = layer("roads");
  const layers = {traffic: layer("traffic"), environment: layer("environment"), waste: layer("waste"),
                  energy: layer("energy"), emergency: layer("emergency")};
  const labels = layer("labels");  // on top, so names stay legible over markers

  const box = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  const centres = city.districts.map((d) => project(d.center));
  city.districts.forEach((district, i) => {
    const cell = voronoiCell(centres[i], centres.filter((_, j) => j !== i), box);
    base.append(svg("path", {class: `district d${i % 4}`, d: `M${cell.map((p) => p.map((v) => v.toFixed(3)).join(",")).join("L")}Z`},
                    svg("title", {}, district.name)));
    labels.append(svg("text", {class: "district-label", x: centres[i][0], y: centres[i][1] - 0.32, "text-anchor": "middle"},
                      district.name));
  });
  for (const road of city.roads) {
    const [a, b] = [project(road.from), project(road.to)];
    roads.append(svg("line", {class: road.arterial ? "road arterial" : "road", x1: a[0], y1: a[1], x2: b[0], y2: b[1]}));
  }
  const depot = project(city.depot.location);
  roads.append(svg("rect", {class: "depot", x: depot[0] - 0.08, y: depot[1] - 0.08, width: 0.16, height: 0.16},
                   svg("title", {}, city.depot.name)));

  const markers = new Map();  // sensor id -> {node, module}
  let selected = null;

  function setReading(module, reading) {
    const id = reading.sensor_id;
    const coordinates = reading.location && reading.location.coordinates;
    let marker = markers.get(id);
    if (!marker && !coordinates) return;  // a sensor that never said where it is can't be drawn
    if (!marker) {
      const node = svg("g", {class: `marker ${module}`, "data-id": id, "data-module": module}, shape(module), svg("title"));
      node.addEventListener("click", () => onSelect(module, id));
      layers[module].append(node);
      marker = {node, module};
      markers.set(id, marker);
      if (id === selected) node.classList.add("selected");
    }
    if (coordinates) {
      const [x, y] = project(coordinates);
      marker.node.setAttribute("transform", `translate(${x.toFixed(3)},${y.toFixed(3)})`);
    }
    const metric = METRIC[module];
    const level = metric.level(reading);
    marker.node.setAttribute("class", `marker ${module} lvl-${level}${id === selected ? " selected" : ""}`);
    marker.node.dataset.value = reading[metric.field];
    marker.node.lastChild.textContent =
      `${id} (${title(module)}, ${reading.district || ""}): ${metric.label} ${fmt(reading[metric.field], 1)}${metric.unit} – ${LEVEL_NAMES[level]}`;
  }

  function select(id) {
    for (const marker of markers.values()) marker.node.classList.toggle("selected", marker.node.dataset.id === id);
    selected = id;
  }

  // Emergency: open incidents (emergency and traffic) and units; en-route units move along their trip.
  let units = [], incidents = [];
  const emergency = layers.emergency;

  function unitPosition(unit, now) {
    const from = project(unit.location.coordinates);
    if (unit.status !== "en_route" || !unit.destination || !unit.dispatched_at || !unit.eta_at) return from;
    const to = project(unit.destination.coordinates);
    const start = Date.parse(unit.dispatched_at), end = Date.parse(unit.eta_at);
    const t = Math.min(1, Math.max(0, (now - start) / Math.max(1, end - start)));
    return [from[0] + t * (to[0] - from[0]), from[1] + t * (to[1] - from[1])];
  }

  function drawEmergency() {
    const now = Date.now();
    emergency.replaceChildren();
    for (const incident of incidents) {
      const [x, y] = project(incident.location.coordinates);
      const kind = incident.module === "traffic" ? "traffic-incident" : "incident";
      emergency.append(svg("g", {class: `${kind} sev-${incident.severity}`, transform: `translate(${x.toFixed(3)},${y.toFixed(3)})`},
        svg("circle", {class: "pulse", r: 0.16}),
        svg("circle", {r: 0.1}),
        svg("text", {y: 0.045, "text-anchor": "middle"}, "!"),
        svg("title", {}, `${words(incident.type)} incident, ${incident.severity}, ${words(incident.status)} (${incident.district})`)));
    }
    for (const unit of units) {
      const [x, y] = unitPosition(unit, now);
      if (unit.status === "en_route" && unit.destination) {
        const [tx, ty] = project(unit.destination.coordinates);
        emergency.append(svg("line", {class: "trip", x1: x, y1: y, x2: tx, y2: ty}));
      }
      emergency.append(svg("g", {class: `unit ${unit.kind} st-${unit.status}`, transform: `translate(${x.toFixed(3)},${y.toFixed(3)})`},
        svg("circle", {r: 0.09}),
        svg("text", {y: 0.04, "text-anchor": "middle"}, UNIT_LETTER[unit.kind] || "?"),
        svg("title", {}, `${unit.unit_id} (${unit.kind}): ${words(unit.status)}`)));
    }
  }

  function setEmergency(nextUnits, nextIncidents) {
    units = nextUnits;
    incidents = nextIncidents;
    drawEmergency();
  }

  function setLayer(module, visible) {
    layers[module].classList.toggle("hidden", !visible);
  }

  return {setReading, select, setEmergency, tick: drawEmergency, setLayer, districts: city.districts.map((d) => d.name)};
}

// The legend under the map: what the colours and shapes mean.
export function legend() {
  return h("ul", {class: "legend"},
    LEVEL_NAMES.map((name, level) => h("li", {}, h("span", {class: `swatch lvl-${level}`}), name)),
    h("li", {}, h("span", {class: "swatch incident-swatch"}), "incident"),
    h("li", {}, h("span", {class: "swatch unit-swatch"}), "unit (A/F/P)"));
}
