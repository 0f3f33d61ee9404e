// Admin: scheduled jobs (pause, resume, run now) and alert rules (enable or disable).
import {h, ago, fmt, words} from "./dom.js";
import {title} from "./modules.js";
import {get, post, patch} from "./api.js";

export function createJobs(root, {onError, notify}) {
  const body = h("tbody");
  root.replaceChildren(h("table", {class: "table"},
    h("thead", {}, h("tr", {}, ["Job", "Every", "Last run", "Runs", "Failures", ""].map((c) => h("th", {scope: "col"}, c)))),
    body));

  async function act(job, action) {
    try {
      await post(`/api/system/jobs/${job.id}/${action}`);
      notify(`${job.id}: ${action === "run" ? "started" : `${action}d`}`);
      await load();
    } catch (error) {
      onError(error);
    }
  }

  function button(job, action, label) {
    const node = h("button", {type: "button", "data-action": action}, label);
    node.addEventListener("click", () => act(job, action));
    return node;
  }

  async function load() {
    const jobs = (await get("/api/system/jobs")).items;
    body.replaceChildren(...jobs.map((job) => h("tr", {"data-id": job.id, class: job.paused ? "paused" : ""},
      h("th", {scope: "row", title: job.description}, words(job.id), job.paused ? h("span", {class: "badge"}, "paused") : null),
      h("td", {}, `${fmt(job.interval_s, 0)} s`),
      h("td", {title: job.last_error || ""}, job.last_run_at ? ago(job.last_run_at) : "–"),
      h("td", {}, fmt(job.runs)),
      h("td", {class: job.failures ? "bad" : ""}, fmt(job.failures)),
      h("td", {class: "actions"}, job.paused ? button(job, "resume", "Resume") : button(job, "pause", "Pause"),
        button(job, "run", "Run now")))));
  }

  return {load};
}

const OPS = {gt: ">", gte: "≥", lt: "<", lte: "≤", eq: "=", outside: "outside", inside: "inside"};

function levels(rule) {
  return (rule.levels || []).map((l) =>
    `${l.severity} ${OPS[l.op] || l.op} ${Array.isArray(l.value) ? l.value.join("–") : l.value}`).join(", ");
}

export function createRules(root, {onError, notify}) {
  const body = h("tbody");
  root.replaceChildren(h("table", {class: "table"},
    h("thead", {}, h("tr", {}, ["Rule", "Module", "Metric", "Levels", "Enabled"].map((c) => h("th", {scope: "col"}, c)))),
    body));

  async function toggle(rule, input) {
    try {
      await patch(`/api/alerts/rules/${rule.id}`, {enabled: input.checked});
      notify(`${rule.name}: ${input.checked ? "enabled" : "disabled"}`);
    } catch (error) {
      input.checked = !input.checked;
      onError(error);
    }
  }

  async function load() {
    const rules = (await get("/api/alerts/rules?limit=100")).items;
    body.replaceChildren(...rules.map((rule) => {
      const input = h("input", {type: "checkbox", checked: rule.enabled, "aria-label": `${rule.name} enabled`});
      input.addEventListener("change", () => toggle(rule, input));
      return h("tr", {"data-id": rule.id},
        h("th", {scope: "row"}, rule.name),
        h("td", {}, title(rule.module)),
        h("td", {}, words(rule.metric || "")),
        h("td", {}, levels(rule)),
        h("td", {}, input));
    }));
  }

  return {load};
}
