// Warden console: a small single-page application over the read-only JSON
// API under /api. Everything from the server is shown as text (never as
// HTML), so an id or a detail cannot inject markup.
"use strict";

const TOKEN_KEY = "warden.token";
const ORG_KEY = "warden.org";
const PAGES = ["check", "roles", "groups", "rules", "whatif"];

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Protobuf JSON names enum values with their type's prefix; the documents
// write them bare (OWNER, READ_WRITE).
function word(v) {
  if (typeof v !== "string") return v === undefined || v === null ? "" : String(v);
  return v.replace(/^(REASON_|ACCESS_LEVEL_|FIELD_LEVEL_|TRACE_OUTCOME_)/, "");
}

// A value on one line: text and enum words as the documents write them,
// lists joined, an entity as "kind 'id' (relation)", a message with a
// sentence as that sentence, anything else as JSON.
function plain(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return word(v);
  if (Array.isArray(v)) return v.map(plain).join(", ");
  if (typeof v === "object") {
    if (typeof v.detail === "string" && v.detail) return v.detail;
    if (typeof v.kind === "string" && typeof v.id === "string") {
      return v.relation ? `${v.kind} '${v.id}' (${v.relation})` : `${v.kind} '${v.id}'`;
    }
    return JSON.stringify(v);
  }
  return String(v);
}

function isEmpty(v) {
  return v === null || v === undefined || v === "" || v === 0 ||
    (typeof v === "string" && v.endsWith("_UNSPECIFIED")) || (Array.isArray(v) && v.length === 0);
}

function showError(e) {
  const box = $("error");
  if (!e) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = e.field ? `${e.code}: ${e.field}: ${e.message}` : `${e.code}: ${e.message}`;
}

async function api(path, body) {
  const headers = { "Accept": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch("/api" + path, init);
  } catch (err) {
    throw { code: "UNAVAILABLE", field: "", message: "the console cannot be reached: " + err };
  }
  let json = null;
  try { json = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    throw json && json.code ? json : { code: "HTTP_" + response.status, field: "", message: response.statusText };
  }
  return json;
}

const org = () => $("org").value;
const enc = encodeURIComponent;

function fillSelect(select, values, keep) {
  const previous = keep ? select.value : "";
  select.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  if (previous && values.includes(previous)) select.value = previous;
}

async function loadOrganizations() {
  showError(null);
  $("status").textContent = "loading…";
  try {
    const answer = await api("/orgs");
    const ids = answer.organizations.map((o) => o.org_id);
    fillSelect($("org"), ids, false);
    const saved = sessionStorage.getItem(ORG_KEY);
    if (saved && ids.includes(saved)) $("org").value = saved;
    $("status").textContent = ids.length ? `${ids.length} organization(s)` : "no organization";
    await orgChanged();
  } catch (e) {
    fillSelect($("org"), [], false);
    $("status").textContent = "";
    showError(e);
  }
}

let modules = [];

async function orgChanged() {
  if (!org()) return;
  sessionStorage.setItem(ORG_KEY, org());
  showError(null);
  $("answer").hidden = true;
  try {
    const [users, mods] = await Promise.all([
      api(`/orgs/${enc(org())}/users`),
      api(`/orgs/${enc(org())}/modules`),
    ]);
    fillSelect($("subject"), users.users.map((u) => u.id), true);
    modules = mods.modules;
    fillSelect($("module"), modules.map((m) => m.id), true);
    await moduleChanged();
    await showPage();
  } catch (e) { showError(e); }
}

async function moduleChanged() {
  const m = modules.find((x) => x.id === $("module").value);
  fillSelect($("action"), m ? m.check_actions : [], true);
  await loadRecords();
}

async function loadRecords() {
  const module = $("module").value;
  if (!module) return;
  try {
    const answer = await api(`/orgs/${enc(org())}/modules/${enc(module)}/records?prefix=${enc($("record").value)}`);
    $("record-list").replaceChildren(...answer.records.map((r) => el("option", { value: r })));
  } catch (e) { showError(e); }
}

function stepItem(step, decides) {
  const head = el("div", { class: "step-head" },
    el("b", { class: "reason" }, word(step.reason)),
    el("span", { class: "badge level" }, word(step.level)),
    decides ? el("span", { class: "decides-mark" }, "decides") : null);
  const item = el("li", { "data-reason": word(step.reason), class: decides ? "decides" : "" }, head);
  if (step.detail) item.append(el("p", { class: "detail" }, step.detail));
  // Any field a step carries besides these three is shown as it comes.
  const extra = Object.entries(step).filter(([k, v]) => !["reason", "level", "detail"].includes(k) && !isEmpty(v));
  if (extra.length) {
    const dl = el("dl", { class: "extra" });
    for (const [k, v] of extra) dl.append(el("dt", {}, k), el("dd", { "data-field": k }, plain(v)));
    item.append(dl);
  }
  return item;
}

async function runCheck(event) {
  event.preventDefault();
  showError(null);
  // Hidden until this check's answer is in, so nobody reads the last one.
  $("answer").hidden = true;
  const request = {
    subject: $("subject").value,
    module: $("module").value,
    action: $("action").value,
  };
  if ($("record").value) request.record_id = $("record").value;
  if ($("field").value) request.field = $("field").value;
  if ($("at").value) request.at = $("at").value;
  const assign = $("assign-to").value;
  if (assign) {
    const [kind, ...rest] = assign.split(":");
    const id = rest.join(":");
    if (kind === "user") request.assign_to = { user_id: id };
    else if (kind === "group") request.assign_to = { group_id: id };
    else { showError({ code: "INVALID_ARGUMENT", field: "assign_to", message: "user:ID or group:ID is expected" }); return; }
  }
  try {
    const answer = await api(`/orgs/${enc(org())}/check`, request);
    const decision = $("decision");
    decision.textContent = answer.allowed ? "ALLOW" : "DENY";
    decision.className = answer.allowed ? "allow" : "deny";
    $("reason").textContent = word(answer.reason);
    $("level").textContent = word(answer.level);
    $("revision").textContent = answer.revision;
    const steps = answer.trace || [];
    // The step that decided: the one whose outcome says so; in a trace
    // without outcomes, the first naming the answer's reason at the
    // answer's level (the highest level, ties to the first path), else the
    // last naming its reason (a step that gives no level, such as ADMIN).
    const same = (s) => word(s.reason) === word(answer.reason);
    let deciding;
    if (steps.some((s) => !["", "UNSPECIFIED"].includes(word(s.outcome)))) {
      deciding = steps.findIndex((s) => word(s.outcome) === "DECIDED");
    } else {
      deciding = steps.findIndex((s) => same(s) && word(s.level) === word(answer.level));
      if (deciding < 0) steps.forEach((s, i) => { if (same(s)) deciding = i; });
    }
    $("trace").replaceChildren(...steps.map((s, i) => stepItem(s, i === deciding)));
    $("answer").hidden = false;
    // On a phone the answer starts below the form: bring it into view
    // (on a desktop it already shows beside the form, which stays).
    if ($("answer").getBoundingClientRect().top > window.innerHeight * 0.6) {
      $("answer").scrollIntoView({ block: "start" });
    }
  } catch (e) {
    $("answer").hidden = true;
    showError(e);
  }
}

function roleNode(role, children, usersByRole) {
  const users = usersByRole.get(role.id) || [];
  const node = el("li", { "data-role": role.id },
    el("div", { class: "node" },
      el("b", {}, role.id),
      role.name && role.name !== role.id ? el("span", {}, role.name) : null,
      el("span", { class: "muted users" }, users.length ? "users: " + users.join(", ") : "no users")));
  const kids = children.get(role.id) || [];
  if (kids.length) node.append(el("ul", {}, ...kids.map((k) => roleNode(k, children, usersByRole))));
  return node;
}

async function showRoles() {
  const [roles, users] = await Promise.all([
    api(`/orgs/${enc(org())}/roles`),
    api(`/orgs/${enc(org())}/users`),
  ]);
  const children = new Map();
  const roots = [];
  for (const r of roles.roles) {
    if (r.parent) {
      if (!children.has(r.parent)) children.set(r.parent, []);
      children.get(r.parent).push(r);
    } else roots.push(r);
  }
  const usersByRole = new Map();
  for (const u of users.users) {
    if (!u.role) continue;
    if (!usersByRole.has(u.role)) usersByRole.set(u.role, []);
    usersByRole.get(u.role).push(u.id);
  }
  $("roles-tree").replaceChildren(...roots.map((r) => roleNode(r, children, usersByRole)));
  if (!roots.length) $("roles-tree").replaceChildren(el("li", { class: "muted" }, "no roles"));
}

function line(label, value, cls) {
  return el("p", { class: cls || "" }, el("span", { class: "muted" }, label + ": "), isEmpty(value) ? "—" : plain(value));
}

// A member set as the documents write it: {role: X}, {role_and_subordinates: X} or {group: X}.
function memberSet(set) {
  if (!set || typeof set !== "object") return plain(set);
  return Object.entries(set).map(([k, v]) => `${k} ${v}`).join(", ");
}

async function showGroups() {
  const answer = await api(`/orgs/${enc(org())}/groups`);
  $("groups-list").replaceChildren(...answer.groups.map((g) => el("div", { class: "card group", "data-group": g.id },
    el("h3", {}, g.id),
    g.name && g.name !== g.id ? el("p", {}, g.name) : null,
    line("kind", g.kind || "ORGANIZATION"),
    g.owner ? line("owner", g.owner) : null,
    line("users", g.users),
    line("roles", g.roles),
    line("roles and subordinates", g.roles_and_subordinates),
    line("groups", g.groups),
    line("leads", g.leads),
    line("expanded members", g.expanded_members, "members"))));
  if (!answer.groups.length) $("groups-list").replaceChildren(el("p", { class: "muted" }, "no groups"));
}

async function showRules() {
  const answer = await api(`/orgs/${enc(org())}/rules`);
  $("rules-list").replaceChildren(...answer.rules.map((r) => el("div", { class: "card rule", "data-rule": r.id },
    el("h3", {}, r.id),
    line("module", r.module),
    r.from ? line("from", memberSet(r.from)) : line("criteria", r.criteria ? Object.entries(r.criteria).map(([k, v]) => `${k} = ${v}`).join(", ") : ""),
    line("to", memberSet(r.to)),
    line("access", r.access),
    r.from ? line("records of", (r.from_users || []).concat((r.from_groups || []).map((g) => "group " + g)), "from-users") : null,
    line("reaches", r.to_users, "to-users"))));
  if (!answer.rules.length) $("rules-list").replaceChildren(el("p", { class: "muted" }, "no sharing rules"));
}

// One table row of text cells.
function row(tag, cells, attrs) {
  return el("tr", attrs || {}, ...cells.map((c) => el(tag, {}, c)));
}

async function runWhatIf(event) {
  event.preventDefault();
  showError(null);
  const out = $("whatif-result");
  out.replaceChildren();
  try {
    const answer = await api(`/orgs/${enc(org())}/simulate`, { change: $("whatif-change").value });
    const changes = answer.changes || [];
    const fields = answer.field_changes || [];
    out.append(el("p", { class: "whatif-summary" },
      `${changes.length} access change(s), ${fields.length} field change(s); ` +
      `${answer.compared} (subject, module) pair(s) compared at revision ${answer.revision}` +
      (answer.whole_org ? " (the whole organization)" : "") + ". Nothing was committed."));
    if (changes.length) {
      out.append(el("div", { class: "table-wrap" }, el("table", { id: "whatif-changes" },
        el("thead", {}, row("th", ["subject", "module", "action", "gained", "lost", "gained (sample)", "lost (sample)"])),
        el("tbody", {}, ...changes.map((c) => row("td", [
          c.subject, c.module, c.action, "+" + c.gained_count, "-" + c.lost_count,
          plain(c.gained_sample), plain(c.lost_sample),
        ], { "data-subject": c.subject, "data-action": c.action }))))));
    }
    if (fields.length) {
      out.append(el("div", { class: "table-wrap" }, el("table", { id: "whatif-fields" },
        el("thead", {}, row("th", ["subject", "module", "field", "before", "after"])),
        el("tbody", {}, ...fields.map((f) => row("td", [
          f.subject, f.module, f.field, plain(f.before), plain(f.after),
        ]))))));
    }
  } catch (e) { showError(e); }
}

async function showPage() {
  const name = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "check";
  for (const p of PAGES) {
    $("page-" + p).hidden = p !== name;
    $("nav-" + p).classList.toggle("active", p === name);
  }
  if (!org()) return;
  try {
    if (name === "roles") await showRoles();
    if (name === "groups") await showGroups();
    if (name === "rules") await showRules();
  } catch (e) { showError(e); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    loadOrganizations();
  });
  $("org").addEventListener("change", orgChanged);
  $("module").addEventListener("change", moduleChanged);
  $("record").addEventListener("input", loadRecords);
  $("check-form").addEventListener("submit", runCheck);
  $("whatif-form").addEventListener("submit", runWhatIf);
  window.addEventListener("hashchange", () => { showError(null); showPage(); });
  showPage();
  loadOrganizations();
});
