// The console's entry point: sign-in, then the live views wired to REST and the socket.
import {$, $$, h} from "./dom.js";
import {currentUser, get, onSessionEnd, signIn, signOut} from "./api.js";
import {call, openSocket} from "./socket.js";
import {createMap, legend} from "./map.js";
import {createPanels} from "./panels.js";
import {createSensorDetail} from "./sensor.js";
import {createAlertFeed} from "./alerts.js";
import {createIncidents, createTasks, loadEmergency} from "./operations.js";
import {createJobs, createRules} from "./admin.js";
import {MODULES, READING_MODULES, title} from "./modules.js";

const RANK = {viewer: 0, operator: 1, admin: 2};
const STREAM_INTERVAL_MS = 1000;
const EMERGENCY_POLL_MS = 10000;  // units change state without a broadcast; 6 requests a minute of the 100 allowed
const JOBS_POLL_MS = 20000;
const LAYERS_KEY = "citypulse.layers";
const STATE_TEXT = {connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", recovered: "Recovered",
                    offline: "Offline"};

let running = null;  // the signed-in console: its socket and timers

const role = () => (currentUser() ? currentUser().role : "viewer");
const canWrite = () => RANK[role()] >= RANK.operator;

function setConnection(state) {
  const node = $("#conn");
  node.dataset.state = state;
  $(".conn-text", node).textContent = STATE_TEXT[state];
}

let toastTimer = null;
function toast(text, kind = "info") {
  const node = $("#toast");
  node.textContent = text;
  node.dataset.kind = kind;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, kind === "error" ? 8000 : 4000);
}

// Every failure shows the server's `message` (the API's one error shape), never a blank panel. After the
// session ended the sign-in page says why; requests still in flight then have nothing to add.
const showError = (error) => {
  if (running && error.error !== "signed_out") toast(error.message || String(error), "error");
};

let audio = null;
function beep() {
  if (!$("#sound").checked) return;
  audio ||= new AudioContext();
  const tone = audio.createOscillator(), gain = audio.createGain();
  tone.frequency.value = 880;
  gain.gain.setValueAtTime(0.15, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
  tone.connect(gain).connect(audio.destination);
  tone.start();
  tone.stop(audio.currentTime + 0.6);
}

let bannerTimer = null;
function banner(text, kind) {
  const node = $("#banner");
  node.textContent = text;
  node.dataset.kind = kind;
  node.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { node.hidden = true; }, 12000);
}

function showSignIn(message) {
  $("#app").hidden = true;
  $("#account").hidden = true;
  $("#signin").hidden = false;
  const note = $("#signin-message");
  note.textContent = message || "";
  note.hidden = !message;
  setConnection("offline");
  $("#identifier").focus();
}

function applyRole(name) {
  for (const node of $$("[data-min-role]")) node.hidden = RANK[name] < RANK[node.dataset.minRole];
  $("#account-role").textContent = name;
}

function layerToggles(map) {
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(LAYERS_KEY)) || {}; } catch { /* all on */ }
  const box = $("#layers");
  box.replaceChildren(box.firstElementChild, ...MODULES.map((module) => {
    const input = h("input", {type: "checkbox", value: module, checked: saved[module] !== false});
    input.addEventListener("change", () => {
      saved[module] = input.checked;
      localStorage.setItem(LAYERS_KEY, JSON.stringify(saved));
      map.setLayer(module, input.checked);
    });
    map.setLayer(module, input.checked);
    return h("label", {class: `chip layer-${module}`}, input, title(module));
  }));
}

async function start() {
  const user = currentUser();
  const run = {timers: [], socket: null};
  running = run;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#account").hidden = false;
  $("#account-name").textContent = user.username || user.email;
  applyRole(user.role);

  const latest = Object.fromEntries(READING_MODULES.map((m) => [m, new Map()]));
  const picker = $("#sensor-pick");
  const detail = createSensorDetail($("#sensor-detail"), {onClose: () => { map.select(null); picker.value = ""; }, onError: showError});
  const selectSensor = (module, id) => {
    map.select(id);
    picker.value = `${module}:${id}`;
    detail.show(module, id, latest[module].get(id));
  };
  let map;
  try {
    map = await createMap($("#map"), {onSelect: selectSensor});
  } catch (error) {
    showError(error);
    return;
  }
  if (running !== run) return;
  $("#legend").replaceChildren(legend());
  layerToggles(map);
  picker.onchange = () => {
    const [module, id] = picker.value.split(":");
    if (id) selectSensor(module, id);
    else detail.hide();
  };

  const panels = createPanels($("#panels"));
  const feed = createAlertFeed($("#alerts"), {
    user, canWrite, onError: showError,
    onCritical: (alert) => { banner(`Critical ${alert.module} alert: ${alert.message}`, "critical"); beep(); },
  });
  const incidents = createIncidents($("#incidents"), {canWrite, onError: showError, notify: toast, onDone: () => refreshEmergency()});
  const tasks = canWrite() ? createTasks($("#tasks"), {user, onError: showError}) : null;
  const jobs = role() === "admin" ? createJobs($("#jobs"), {onError: showError, notify: toast}) : null;
  const rules = role() === "admin" ? createRules($("#rules"), {onError: showError, notify: toast}) : null;

  function fillPicker() {
    picker.replaceChildren(h("option", {value: ""}, "Choose…"), ...READING_MODULES.map((module) =>
      h("optgroup", {label: title(module)}, [...latest[module].keys()].sort().map((id) => h("option", {value: `${module}:${id}`}, id)))));
  }

  function applyReading(module, reading) {
    latest[module].set(reading.sensor_id, reading);
    map.setReading(module, reading);
    detail.push(module, reading);
  }

  async function loadLatest() {
    const snapshot = await get("/api/dashboard/real-time-data");
    if (running !== run) return;
    for (const module of READING_MODULES) {
      (snapshot.data[module] || []).forEach((reading) => applyReading(module, reading));
      panels.update(module, latest[module]);
    }
    fillPicker();
  }

  let emergencyTimer = null;
  async function refreshEmergency() {
    clearTimeout(emergencyTimer);  // a dispatch alert and the poll coming together fetch once
    emergencyTimer = setTimeout(async () => {
      try {
        const {units, incidents: open} = await loadEmergency();
        if (running !== run) return;
        map.setEmergency(units, open);
        incidents.render(open);
        panels.updateEmergency(units, open);
      } catch (error) {
        showError(error);
      }
    }, 200);
  }

  let fresh = 0;
  const socket = openSocket({
    onState: setConnection,
    onConnected: (info) => {
      if (info.user.role !== user.role) {  // the role changed: follow it (the server already does)
        user.role = info.user.role;
        applyRole(info.user.role);
        feed.render();
        refreshEmergency();
      }
    },
    onFresh: () => {
      call(socket, "subscribe_stream", {modules: READING_MODULES, interval_ms: STREAM_INTERVAL_MS}).catch(showError);
      feed.subscribe(socket).catch(showError);
      if (fresh++) {  // a new session after a gap the server could not recover: catch up by REST
        loadLatest().catch(showError);
        refreshEmergency();
      }
    },
  });
  run.socket = socket;
  for (const module of READING_MODULES) {
    socket.on(`${module}_updates`, (frame) => {
      frame.readings.forEach((reading) => applyReading(module, reading));
      panels.update(module, latest[module]);
    });
  }
  for (const module of MODULES) socket.on(`${module}_alert`, (alert) => feed.receive(alert));
  socket.on("alert_updated", (alert) => feed.updated(alert));
  socket.on("emergency_alert", () => refreshEmergency());
  socket.on("public_alert", (alert) => banner(`${alert.title}: ${alert.message}`, alert.severity));
  if (tasks) socket.on("task_status", (task) => tasks.status(task));

  // Timers of a console that was stopped meanwhile (signed out during start-up) stop themselves.
  const every = (fn, ms) => {
    const timer = setInterval(() => (running === run ? fn() : clearInterval(timer)), ms);
    run.timers.push(timer);
  };
  every(() => { map.tick(); panels.refreshAges(); }, 1000);
  every(refreshEmergency, EMERGENCY_POLL_MS);
  if (jobs) every(() => jobs.load().catch(showError), JOBS_POLL_MS);

  await Promise.all([loadLatest(), feed.load(), refreshEmergency(), tasks && tasks.load(), jobs && jobs.load(),
                     rules && rules.load()].map((p) => Promise.resolve(p).catch(showError)));
}

function stop() {
  if (!running) return;
  running.timers.forEach(clearInterval);
  if (running.socket) running.socket.disconnect();
  running = null;
  $("#banner").hidden = true;
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("#signin-button"), note = $("#signin-message");
  const identifier = $("#identifier").value.trim(), password = $("#password").value;
  if (!identifier || !password) {
    note.textContent = "Enter your email (or username) and password.";
    note.hidden = false;
    return;
  }
  button.disabled = true;
  try {
    await signIn(identifier, password);
    $("#password").value = "";
    note.hidden = true;
    await start();
  } catch (error) {
    note.textContent = error.message;  // the API's message: "Invalid credentials", "Too many requests", ...
    note.hidden = false;
  } finally {
    button.disabled = false;
  }
});

$("#sign-out").addEventListener("click", async () => {
  stop();
  await signOut();
  showSignIn("You have signed out.");
});

onSessionEnd((message) => {
  stop();
  showSignIn(message);
});

if (currentUser()) start().catch(showError);
else showSignIn();
