// Switchboard agent desktop: plain JavaScript over the engine's REST API and the agent WebSocket.
// State lives in `desk`; every change re-renders the parts it touches. Text from the server is always
// set with textContent (never as HTML), except knowledge-base articles, which the server renders from
// Markdown with raw HTML switched off.
"use strict";

const API = "/api/v1";
const desk = {
  token: null, user: null, agent: null, config: null,
  contacts: new Map(),  // contact id -> {id, queue, channel, attributes, history, state, deadline, pop, offeredAt}
  filed: new Map(),     // contact id -> cases filed from it in another CRM this session (newest first)
  pops: new Map(),      // contact id -> pop that arrived before its offer was drawn
  current: null,        // the contact the case form files against
  people: [],           // matched people of the current contact
  socket: null, lastId: null, retry: 0, serial: 0,
  metrics: { pops: [] },  // offer-to-pop times measured in the page (ms), read by the browser tests
};
window.deskMetrics = desk.metrics;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// HTTP
class ApiError extends Error {
  constructor(status, body) {
    super(problemText(status, body));
    this.status = status;
    this.body = body;
  }
}

function problemText(status, body) {
  if (body && typeof body === "object") {
    const parts = [body.detail || body.title || `HTTP ${status}`];
    if (Array.isArray(body.errors)) {
      for (const e of body.errors) if (e && e.message && !parts[0].includes(e.message)) parts.push(`${e.field}: ${e.message}`);
    }
    return parts.join("; ");
  }
  return `HTTP ${status}`;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (desk.token) headers["Authorization"] = `Bearer ${desk.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { detail: "the engine cannot be reached (network error)" });
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text.slice(0, 200) }; }
  if (!resp.ok) {
    if (resp.status === 401 && desk.token) signOut("Your session has ended: sign in again.");
    throw new ApiError(resp.status, data);
  }
  return data;
}

function announce(text) {
  const a = $("announcer");
  a.textContent = "";
  setTimeout(() => { a.textContent = text; }, 30);  // a change, so screen readers speak it again
}

function showError(el, err) { el.textContent = err ? (err.message || String(err)) : ""; }

// ---------------------------------------------------------------------------------------------
// sign in / out
async function signIn(ev) {
  ev.preventDefault();
  const username = $("login-username").value.trim(), password = $("login-password").value;
  showError($("login-error"), null);
  if (!username || !password) {
    showError($("login-error"), "Enter your user name and password.");
    (username ? $("login-password") : $("login-username")).focus();
    return;
  }
  try {
    const r = await api("POST", "/auth/login", { username, password });
    if (!r.agent) throw new Error(`User ${r.username} is not an agent: this desktop is for agents.`);
    desk.token = r.access_token;
    desk.user = r.username;
    desk.agent = r.agent;
    sessionStorage.setItem("switchboard.desk", JSON.stringify({ token: desk.token, user: desk.user, agent: desk.agent }));
    await openDesk();
  } catch (err) {
    desk.token = null;
    showError($("login-error"), err);
    $("login-password").focus();
  }
}

function signOut(message) {
  sessionStorage.removeItem("switchboard.desk");
  desk.token = null;
  if (desk.socket) { desk.socket.onclose = null; desk.socket.close(); desk.socket = null; }
  desk.contacts.clear();
  $("desk-view").hidden = true;
  $("login-view").hidden = false;
  showError($("login-error"), message || null);
  $("login-username").focus();
}

async function openDesk() {
  desk.config = await api("GET", "/desk/config");
  $("login-view").hidden = true;
  $("desk-view").hidden = false;
  $("site-name").textContent = desk.config.site;
  fillSelect($("not-ready-reason"), desk.config.not_ready_reasons.map((r) => [r, r]));
  fillSelect($("case-service"), [["", "Choose a service type"],
    ...desk.config.services.map((s) => [s.code, `${s.name} (${s.department})`])]);
  renderCaseAttributes();
  await refreshAgent();
  await reloadContacts();
  connect();
  $("btn-ready").focus();
}

function fillSelect(select, pairs) {
  select.replaceChildren(...pairs.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value; o.textContent = label;
    return o;
  }));
}

// ---------------------------------------------------------------------------------------------
// agent state
const STATE_TEXT = {
  logged_out: "Logged out of queues", available: "Available", reserved: "Contact offered", busy: "On a contact",
  wrap_up: "Wrap-up", not_ready: "Not ready",
};

async function refreshAgent() {
  try {
    const a = await api("GET", `/agents/${encodeURIComponent(desk.agent)}`);
    $("agent-name").textContent = a.name || a.id;
    const label = STATE_TEXT[a.state] || a.state;
    $("agent-state").textContent = a.state === "not_ready" && a.reason ? `${label} (${a.reason})` : label;
    $("agent-state").dataset.state = a.state;
    desk.agentState = a.state;
    $("btn-queue-logout").hidden = a.state === "logged_out";
  } catch (err) {
    showError($("desk-error"), err);
  }
}

async function stateAction(fn) {
  showError($("desk-error"), null);
  try { await fn(); } catch (err) { showError($("desk-error"), err); }
  await refreshAgent();
  announce(`State: ${$("agent-state").textContent}`);
}

const agentPath = () => `/agents/${encodeURIComponent(desk.agent)}`;

// ---------------------------------------------------------------------------------------------
// the socket: offers, contact events, screen-pops
function connect() {
  if (!desk.token) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let url = `${proto}//${location.host}${API}/ws/agent?token=${encodeURIComponent(desk.token)}&agent=${encodeURIComponent(desk.agent)}`;
  if (desk.lastId) url += `&after=${encodeURIComponent(desk.lastId)}`;
  const ws = new WebSocket(url);
  desk.socket = ws;
  ws.onopen = () => { desk.retry = 0; };
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    setLink(false);
    if (desk.socket !== ws || !desk.token) return;
    if (ev.code === 4401) { signOut("Your session has ended: sign in again."); return; }
    if (ev.code === 4409) { desk.lastId = null; }  // too far behind: reload, then live again
    const wait = Math.min(10000, 500 * 2 ** desk.retry++);
    setTimeout(async () => {
      if (desk.lastId === null) await reloadContacts();
      connect();
    }, wait);
  };
}

function setLink(up) {
  const el = $("link-state");
  el.dataset.link = up ? "up" : "down";
  el.textContent = up ? "Connected" : "Reconnecting…";
}

function onMessage(m) {
  if (m.id) desk.lastId = m.id;
  if (m.type === "hello") {
    setLink(true);
    if (m.last_id && !desk.lastId) desk.lastId = m.last_id;
    refreshAgent();
    return;
  }
  if (m.type === "resync") { desk.lastId = null; return; }
  if (m.type === "cti.screen_pop") { onPop(m); return; }
  const c = m.contact ? desk.contacts.get(m.contact) : null;
  switch (m.type) {
    case "ContactOffered":
      if (m.agent !== desk.agent) break;
      upsertContact({ id: m.contact, state: "offered", deadline: m.deadline, offeredAt: performance.now(),
        queue: m.contact_info?.queue, channel: m.contact_info?.channel,
        attributes: m.contact_info?.attributes || {}, history: m.contact_info?.history || [] });
      announceOffer(desk.contacts.get(m.contact));
      break;
    case "ContactAnswered":
      if (c && m.agent === desk.agent) setState(c, "connected");
      break;
    case "ContactHeld": if (c) setState(c, "held"); break;
    case "ContactResumed": if (c) setState(c, "connected"); break;
    case "ContactEnded":
      if (c) { setState(c, "wrap_up"); announce(`Contact ended: wrap-up for ${c.id}`); }
      break;
    case "OfferMissed":
      if (c && m.agent === desk.agent) dropContact(c, `Offer ${m.reason === "timeout" ? "timed out" : m.reason}`);
      break;
    case "ContactTransferred":
      if (c && m.to_agent !== desk.agent) dropContact(c, "Transferred");
      break;
    case "WrapUpCompleted":
      if (c) dropContact(c, "Wrap-up done");
      break;
    case "ContactAbandoned":
      if (c) dropContact(c, "The caller hung up");
      break;
  }
  if (m.type && m.type.startsWith("Agent") || m.contact) refreshAgentSoon();
}

let agentTimer = null;
function refreshAgentSoon() {
  clearTimeout(agentTimer);
  agentTimer = setTimeout(refreshAgent, 150);
}

async function reloadContacts() {
  // after a reconnect that lost events: what the engine says I hold now, and each one's pop again
  try {
    const page = await api("GET", `/contacts?agent=${encodeURIComponent(desk.agent)}&limit=50`);
    const live = new Set();
    for (const x of page.items) {
      if (!["offered", "connected", "held", "wrap_up"].includes(x.state)) continue;
      live.add(x.id);
      upsertContact({ id: x.id, state: x.state, deadline: x.offer_deadline, queue: x.queue, channel: x.channel,
        attributes: x.attributes || {}, history: x.history || [] });
      api("GET", `/contacts/${encodeURIComponent(x.id)}/pop`).then(onPop).catch(() => {});
    }
    for (const c of [...desk.contacts.values()]) if (!live.has(c.id)) dropContact(c, null);
  } catch (err) {
    showError($("desk-error"), err);
  }
}

// ---------------------------------------------------------------------------------------------
// contact cards
function upsertContact(data) {
  let c = desk.contacts.get(data.id);
  if (!c) {
    c = { pop: null, ...data };
    desk.contacts.set(c.id, c);
    c.el = $("contact-template").content.firstElementChild.cloneNode(true);
    c.el.dataset.contact = c.id;
    wireCard(c);
    $("contacts").append(c.el);
    const early = desk.pops.get(c.id);
    if (early) { desk.pops.delete(c.id); c.pop = early; }
  } else {
    Object.assign(c, data);
  }
  renderCard(c);
  if (!desk.current || !desk.contacts.has(desk.current)) setCurrent(c.id);
  $("no-contacts").hidden = desk.contacts.size > 0;
  return c;
}

function dropContact(c, why) {
  c.el.remove();
  desk.contacts.delete(c.id);
  if (why) announce(`${why}: ${c.id}`);
  $("no-contacts").hidden = desk.contacts.size > 0;
  if (desk.current === c.id) {
    const next = desk.contacts.keys().next();
    if (!next.done) setCurrent(next.value);
    else renderCaseFor();  // the last contact stays the case form's target until another arrives
  }
}

function setState(c, state) {
  c.state = state;
  renderCard(c);
}

function queueConfig(queue) { return (desk.config.queues || {})[queue] || { wrap_up_codes: [], wrap_up_code_required: false }; }

function callerOf(c) {
  const a = c.attributes || {};
  return a.caller_id || a.ani || a.email || a.from || "unknown caller";
}

function renderCard(c) {
  const el = c.el, q = queueConfig(c.queue);
  const channel = c.channel || "contact";
  el.querySelector(".card-title").textContent = `${channel === "voice" ? "Call" : channel} from ${callerOf(c)}`;
  el.querySelector(".card").setAttribute("aria-label", `${channel} ${c.id}`);
  const stateText = { offered: "Offered: accept or reject", connected: "Connected", held: "On hold",
    wrap_up: "Wrap-up" }[c.state] || c.state;
  el.querySelector(".contact-state").textContent = stateText;
  el.dataset.state = c.state;
  const facts = [["Queue", q.name || c.queue], ["Contact", c.id]];
  for (const [k, v] of Object.entries(c.attributes || {})) {
    if (["caller_uri"].includes(k) || v === null || typeof v === "object") continue;
    facts.push([k.replace(/_/g, " "), String(v)]);
  }
  el.querySelector(".facts").replaceChildren(...facts.flatMap(([k, v]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v;
    return [dt, dd];
  }));
  el.querySelector(".offer-actions").hidden = c.state !== "offered";
  el.querySelector(".talk-actions").hidden = !["connected", "held"].includes(c.state);
  el.querySelector('[data-action="hold"]').hidden = c.state !== "connected";
  el.querySelector('[data-action="resume"]').hidden = c.state !== "held";
  el.querySelector("form.transfer").hidden = !["connected", "held"].includes(c.state);
  const wrap = el.querySelector("form.wrapup");
  wrap.hidden = c.state !== "wrap_up";
  const codeSelect = wrap.querySelector("select");
  if (!codeSelect.options.length) {
    const codes = q.wrap_up_codes.map((x) => [x, x]);
    fillSelect(codeSelect, q.wrap_up_code_required ? [["", "Choose a code (required)"], ...codes]
      : [["", "No code"], ...codes]);
    codeSelect.required = q.wrap_up_code_required;
    const tq = el.querySelector('form.transfer select[name="to_queue"]');
    fillSelect(tq, Object.entries(desk.config.queues).map(([id, x]) => [id, x.name || id]));
    if (c.queue) tq.value = c.queue;  // to an agent in the same queue by default
    fillSelect(el.querySelector('form.transfer select[name="to_agent"]'), [["", "Anyone (no named agent)"],
      ...desk.config.agents.filter((a) => a.id !== desk.agent).map((a) => [a.id, a.name])]);
  }
  renderTransferNote(c);
  renderPop(c);
}

function agentName(id) { return (desk.config.agents.find((a) => a.id === id) || {}).name || id; }

function renderTransferNote(c) {
  // the note the last agent left when they transferred it here (the contact's history carries it)
  const box = c.el.querySelector(".transfer-note");
  const t = [...(c.history || [])].reverse().find((h) => h.event === "transferred");
  box.hidden = !(t && t.note);
  if (t && t.note) box.textContent = `Transferred by ${t.from_agent ? agentName(t.from_agent) : "the queue"}: ${t.note}`;
}

function renderPop(c) {
  const box = c.el.querySelector(".pop"), status = box.querySelector(".pop-status");
  const people = box.querySelector(".pop-people"), cases = box.querySelector(".pop-cases");
  const p = c.pop;
  box.dataset.status = p ? p.status : "pending";
  if (!p) { status.textContent = "Looking up the caller…"; people.replaceChildren(); cases.replaceChildren(); return; }
  if (p.status === "unavailable") {
    status.textContent = `⚠ ${p.message || "CRM unavailable"}: look the caller up by hand.`;
  } else if (p.status === "no_match") {
    status.textContent = `No match in ${p.crm} for ${p.caller?.phone || p.caller?.email || "this caller"}: new caller.`;
  } else {
    status.textContent = `Found in the CRM (${p.crm}):`;
  }
  people.replaceChildren(...p.people.map((x) => {
    const li = document.createElement("li");
    li.className = "person";
    li.textContent = x.name + (x.address ? ` — ${x.address}` : "");
    return li;
  }));
  if (p.status === "matched") {
    const head = document.createElement("li");
    head.className = "cases-head";
    head.textContent = p.cases.length ? `Open cases (${p.cases.length}):` : "No open cases.";
    cases.replaceChildren(head, ...p.cases.map((k) => caseItem(k, c.id)));
  } else {
    cases.replaceChildren();
  }
}

// a case in a list; an open one gets "Add note" when a contact is in hand (the note goes through the CRM)
function caseItem(k, contactId) {
  const li = document.createElement("li");
  li.className = "case-item";
  li.dataset.reference = k.reference;
  const ref = document.createElement("strong");
  ref.textContent = k.reference;
  const rest = document.createElement("span");
  const describe = () => {
    const opened = k.opened_at || k.requested_at;
    rest.textContent = ` ${k.title || k.service_name || ""} — ${(k.status || "").replace(/_/g, " ")}` +
      (opened ? ", opened " + opened.slice(0, 10) : "");
  };
  describe();
  li.append(ref, rest);
  if (contactId && k.status !== "closed" && (k.id || k.reference)) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "quiet";
    b.textContent = "Add note";
    b.setAttribute("aria-label", `Add note to ${k.reference}`);
    b.addEventListener("click", () => noteForm(li, k, contactId, describe));
    li.append(b);
  }
  return li;
}

function noteForm(li, k, contactId, describe) {
  let f = li.querySelector("form.case-note");
  if (f) { f.hidden = !f.hidden; if (!f.hidden) f.note.focus(); return; }
  const n = ++desk.serial;
  f = document.createElement("form");
  f.className = "case-note";
  f.noValidate = true;
  const label = document.createElement("label");
  label.htmlFor = `case-note-${n}`;
  label.textContent = `Note for ${k.reference}`;
  const text = document.createElement("textarea");
  text.id = `case-note-${n}`;
  text.name = "note";
  text.rows = 2;
  text.maxLength = 10000;
  f.append(label, text);
  if (desk.config.case_statuses.length) {  // only where the CRM takes status moves from the desk
    const sl = document.createElement("label");
    sl.htmlFor = `case-status-${n}`;
    sl.textContent = "New status";
    const select = document.createElement("select");
    select.id = `case-status-${n}`;
    select.name = "status";
    fillSelect(select, [["", "Keep the status"], ...desk.config.case_statuses.map((x) => [x, x.replace(/_/g, " ")])]);
    f.append(sl, select);
  }
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save note";
  const err = document.createElement("p");
  err.className = "error";
  err.setAttribute("role", "alert");
  f.append(save, err);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const note = text.value.trim(), status = f.status ? f.status.value : "";
    showError(err, null);
    if (!note && !status) {
      text.setAttribute("aria-invalid", "true");
      showError(err, "Write a note or choose a new status.");
      text.focus();
      return;
    }
    text.removeAttribute("aria-invalid");
    save.disabled = true;
    try {
      const r = await api("POST", `/contacts/${encodeURIComponent(contactId)}/cases/${encodeURIComponent(k.id || k.reference)}`,
        { note: note || null, status: status || null });
      k.status = r.status;
      describe();
      f.remove();
      const done = document.createElement("p");
      done.className = "case-done";
      done.setAttribute("role", "status");
      done.textContent = `${note ? "Note added" : "Status changed"} to ${r.reference} (${r.status.replace(/_/g, " ")}).`;
      li.querySelector(".case-done")?.remove();
      li.append(done);
      announce(done.textContent);
    } catch (e) {
      showError(err, crmError(e));
    } finally {
      save.disabled = false;
    }
  });
  li.append(f);
  text.focus();
}

// a CRM that is down: nothing was stored, the agent tries again (the form keeps what they typed)
function crmError(e) {
  return e && e.status === 503 && e.body && String(e.body.type || "").endsWith("/crm-unavailable")
    ? "CRM unavailable, try again." : e;
}

function announceOffer(c) {
  const q = queueConfig(c.queue);
  const note = c.el.querySelector(".transfer-note");
  announce(`New ${c.channel || "contact"} offered from ${callerOf(c)}, queue ${q.name || c.queue}.` +
    `${note.hidden ? "" : ` ${note.textContent}.`} Accept or reject.`);
  const accept = c.el.querySelector('[data-action="accept"]');
  if (!document.activeElement || document.activeElement === document.body) accept.focus();
}

function onPop(p) {
  if (!p || p.agent !== desk.agent && !(p.agents || []).includes(desk.agent)) return;
  const c = desk.contacts.get(p.contact);
  if (!c) { desk.pops.set(p.contact, p); return; }
  c.pop = p;
  renderPop(c);
  if (c.offeredAt !== undefined && c.popMs === undefined) {
    c.popMs = performance.now() - c.offeredAt;
    c.el.dataset.popMs = c.popMs.toFixed(1);
    desk.metrics.pops.push({ contact: c.id, ms: c.popMs, status: p.status });
  }
  if (p.status === "matched") {
    announce(`Caller: ${p.people.map((x) => x.name).join(", ")}. ${p.cases.length} open case${p.cases.length === 1 ? "" : "s"}.`);
  } else if (p.status === "unavailable") {
    announce(p.message || "CRM unavailable");
  } else {
    announce("No match: new caller");
  }
  if (desk.current === c.id) setCurrent(c.id);
}

function wireCard(c) {
  const el = c.el;
  const err = el.querySelector(".card-error");
  for (const btn of el.querySelectorAll("button[data-action]")) {
    btn.addEventListener("click", async () => {
      const action = btn.dataset.action;
      showError(err, null);
      btn.disabled = true;
      try {
        const r = await api("POST", `/contacts/${encodeURIComponent(c.id)}/${action}`, action === "reject" ? { reason: "rejected" } : undefined);
        if (action === "reject") dropContact(c, "Rejected");
        else if (desk.contacts.has(c.id)) {
          setState(c, r.state);
          setCurrent(c.id);
          const next = { accept: '[data-action="end"]', hold: '[data-action="resume"]', resume: '[data-action="hold"]',
            end: 'form.wrapup select' }[action];
          if (next) el.querySelector(next).focus();
        }
        announce({ accept: "Accepted", hold: "On hold", resume: "Resumed", end: "Ended: choose a wrap-up code",
          reject: "Rejected" }[action] || action);
      } catch (e) {
        showError(err, e);
      } finally {
        btn.disabled = false;
      }
    });
  }
  el.querySelector("form.transfer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    showError(err, null);
    try {
      const body = { to_queue: f.to_queue.value, note: f.note.value };
      if (f.to_agent.value) body.to_agent = f.to_agent.value;
      await api("POST", `/contacts/${encodeURIComponent(c.id)}/transfer`, body);
      const where = f.to_agent.value ? f.to_agent.selectedOptions[0].textContent
        : f.to_queue.selectedOptions[0]?.textContent || f.to_queue.value;
      dropContact(c, `Transferred to ${where}`);
    } catch (e) { showError(err, e); }
  });
  el.querySelector("form.wrapup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const select = ev.target.code;
    showError(err, null);
    if (select.required && !select.value) {
      showError(err, "Choose a wrap-up code: this queue requires one.");
      select.setAttribute("aria-invalid", "true");
      select.focus();
      return;
    }
    select.removeAttribute("aria-invalid");
    try {
      await api("POST", `/contacts/${encodeURIComponent(c.id)}/wrap-up`, { code: select.value || null });
      dropContact(c, "Wrap-up done");
      $("work").focus();
    } catch (e) { showError(err, e); }
  });
}

// ---------------------------------------------------------------------------------------------
// the current contact: case form target and caller history
function setCurrent(id) {
  const changed = desk.current !== id;
  desk.current = id;
  for (const c of desk.contacts.values()) c.el.classList.toggle("current", c.id === id);
  const c = desk.contacts.get(id);
  if (changed) {  // a new caller: forget the last one's resident and typed details
    desk.createdFor = null;
    for (const f of ["case-first-name", "case-last-name", "case-phone"]) $(f).value = "";
  }
  // the builtin CRM's people are the case store's residents (their history and cases live here); another
  // CRM's people and open cases show on the card and in the history list, and a case is filed by name
  const pop = c && c.pop;
  desk.people = pop && pop.crm === "builtin" ? pop.people : [];
  desk.foreign = pop && pop.crm !== "builtin" && pop.status === "matched" ? pop : null;
  desk.caseContact = c ? { id: c.id, channel: c.channel, attributes: c.attributes } : desk.caseContact;
  const select = $("history-person");
  const prior = select.value;
  if (desk.people.length) {
    fillSelect(select, desk.people.map((p) => [p.id, p.name]));
    select.disabled = false;
    if (desk.people.some((p) => p.id === prior)) select.value = prior;
  } else if (!desk.createdFor) {
    fillSelect(select, [["", "No resident matched"]]);
    select.disabled = true;
  }
  renderCaseFor();
  loadHistory();
}

function renderCaseFor() {
  const k = desk.caseContact, person = desk.people[0] || desk.foreign?.people[0], matched = Boolean(person);
  $("case-for").textContent = k ? `For contact ${k.id}${matched ? ` (${person.name})` : ""}.` : "For: no contact in hand.";
  $("case-new-resident").hidden = matched;
  if (!matched && k && !$("case-phone").value) $("case-phone").value = k.attributes?.caller_id || k.attributes?.ani || "";
  filterServices();
}

function filterServices() {
  const channel = { callback: "voice", work_item: "web" }[desk.caseContact?.channel] || desk.caseContact?.channel;
  for (const o of $("case-service").options) {
    const s = desk.config.services.find((x) => x.code === o.value);
    o.hidden = o.disabled = Boolean(s && channel && !s.channels.includes(channel));
  }
}

function casesHead(text) {
  const head = document.createElement("li");
  head.className = "cases-head";
  head.textContent = text;
  return head;
}

async function loadHistory() {
  const list = $("history-list"), rid = $("history-person").value, cid = desk.caseContact?.id;
  if (!rid && desk.config.crm !== "builtin") {
    // another CRM: the pop's open cases stand in for the history, plus what was filed on this contact
    const items = [], shown = new Set();
    if (desk.foreign) {
      items.push(casesHead(`Open cases in ${desk.foreign.crm}:`));
      for (const k of desk.foreign.cases) { shown.add(k.reference); items.push(caseItem(k, cid)); }
    }
    const filed = (desk.filed.get(cid) || []).filter((k) => !shown.has(k.reference));
    if (filed.length) items.push(casesHead("Filed on this contact:"), ...filed.map((k) => caseItem(k, cid)));
    list.replaceChildren(...items);
    return;
  }
  if (!rid) { list.replaceChildren(); return; }
  try {
    const r = await api("GET", `/residents/${encodeURIComponent(rid)}`);
    if ($("history-person").value !== rid) return;
    const items = r.cases.map((k) => caseItem({ ...k, title: k.service_name, opened_at: k.requested_at }, cid));
    if (!items.length) {
      const li = document.createElement("li");
      li.textContent = "No cases yet.";
      items.push(li);
    }
    list.replaceChildren(...items);
  } catch (err) {
    list.replaceChildren();
    showError($("case-error"), err);
  }
}

function renderCaseAttributes() {
  const box = $("case-attributes");
  const s = desk.config.services.find((x) => x.code === $("case-service").value);
  box.replaceChildren();
  if (!s) return;
  for (const a of s.attributes) {
    const id = `case-attr-${a.code}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = a.description + (a.required ? " (required)" : "");
    let input;
    if (a.values.length) {
      input = document.createElement("select");
      fillSelect(input, [["", a.required ? "Choose one" : "Not given"], ...a.values.map((v) => [v.key, v.name])]);
    } else {
      input = document.createElement("input");
      input.maxLength = 200;
    }
    input.id = id;
    input.dataset.attribute = a.code;
    input.required = a.required;
    box.append(label, input);
  }
  $("case-location").required = s.needs_location;
  $("case-location").previousElementSibling.textContent =
    `Location (address of the problem)${s.needs_location ? " (required)" : ""}`;
}

async function createCase(ev) {
  ev.preventDefault();
  showError($("case-error"), null);
  const service = $("case-service").value;
  const missing = [];
  if (!service) missing.push($("case-service"));
  for (const el of $("case-attributes").querySelectorAll("[required]")) if (!el.value.trim()) missing.push(el);
  if ($("case-location").required && !$("case-location").value.trim()) missing.push($("case-location"));
  for (const el of $("case-form").querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  if (missing.length) {
    for (const el of missing) el.setAttribute("aria-invalid", "true");
    const names = missing.map((el) => (el.labels[0]?.textContent || el.id).replace(" (required)", ""));
    showError($("case-error"), `Fill in: ${names.join(", ")}.`);
    missing[0].focus();
    return;
  }
  const body = { service_code: service, description: $("case-description").value.trim() || null,
    location: { address: $("case-location").value.trim() || null }, attributes: {} };
  for (const el of $("case-attributes").querySelectorAll("[data-attribute]")) {
    if (el.value.trim()) body.attributes[el.dataset.attribute] = el.value.trim();
  }
  const k = desk.caseContact;
  if (desk.config.crm !== "builtin") { await createCrmCase(k, body); return; }
  if (k) body.contact_id = k.id;
  else body.channel = "voice";
  const rid = $("history-person").value;
  if (rid) body.resident_id = Number(rid);
  else {
    const first = $("case-first-name").value.trim(), last = $("case-last-name").value.trim();
    const phone = $("case-phone").value.trim();
    if (first || last || phone) body.resident = { first_name: first || null, last_name: last || null, phones: phone ? [phone] : [] };
  }
  $("case-submit").disabled = true;
  try {
    const created = await api("POST", "/cases", body);
    const result = $("case-result");
    result.replaceChildren();
    const p = document.createElement("p");
    p.className = "reference";
    p.append("Case created. Reference number: ");
    const ref = document.createElement("strong");
    ref.id = "case-reference";
    ref.textContent = created.reference;
    p.append(ref, `. Read it to the caller; expected response by ${created.expected_response_date}.`);
    result.append(p);
    announce(`Case created: reference ${created.reference.split("").join(" ")}`);
    for (const id of ["case-description", "case-location"]) $(id).value = "";
    if (created.resident_id) {
      const select = $("history-person");
      if (![...select.options].some((o) => o.value === String(created.resident_id))) {
        const name = [$("case-first-name").value.trim(), $("case-last-name").value.trim()].filter(Boolean).join(" ");
        fillSelect(select, [[String(created.resident_id), name || `Resident ${created.resident_id}`]]);
        desk.createdFor = created.resident_id;
      }
      select.disabled = false;
      select.value = String(created.resident_id);
    }
    await loadHistory();
  } catch (err) {
    showError($("case-error"), err);
  } finally {
    $("case-submit").disabled = false;
  }
}

// Another CRM (Dynamics, webhook): the case is filed there, through the engine's connector, from the
// contact in hand; the CRM's own reference number comes back. The builtin store keeps /cases (above),
// which also acknowledges with the expected response date.
async function createCrmCase(k, form) {
  if (!k) { showError($("case-error"), "Take a contact first: a case is filed from the contact in hand."); return; }
  const body = { service_code: form.service_code, description: form.description || "",
    location: form.location.address, attributes: form.attributes };
  const person = desk.foreign?.people[0];
  if (person) body.person_id = person.id;
  else {
    for (const [key, id] of [["first_name", "case-first-name"], ["last_name", "case-last-name"], ["phone", "case-phone"]]) {
      if ($(id).value.trim()) body[key] = $(id).value.trim();
    }
  }
  $("case-submit").disabled = true;
  try {
    const created = await api("POST", `/contacts/${encodeURIComponent(k.id)}/case`, body);
    const p = document.createElement("p");
    p.className = "reference";
    p.append(`Case created in ${created.crm}. Reference number: `);
    const ref = document.createElement("strong");
    ref.id = "case-reference";
    ref.textContent = created.reference;
    p.append(ref, ". Read it to the caller.");
    $("case-result").replaceChildren(p);
    announce(`Case created: reference ${created.reference.split("").join(" ")}`);
    for (const id of ["case-description", "case-location"]) $(id).value = "";
    desk.filed.set(k.id, [created, ...(desk.filed.get(k.id) || [])]);
    await loadHistory();
    const c = desk.contacts.get(k.id);
    // the pop asks the CRM afresh: the new case shows among the caller's open cases
    if (c) api("GET", `/contacts/${encodeURIComponent(k.id)}/pop`).then(onPop).catch(() => {});
  } catch (err) {
    showError($("case-error"), crmError(err));
  } finally {
    $("case-submit").disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// click-to-dial and the knowledge base
async function dial(ev) {
  ev.preventDefault();
  const number = $("dial-number").value.trim();
  const out = $("dial-result");
  out.className = "";
  if (!number) { out.textContent = "Enter a number to call."; out.className = "error"; $("dial-number").focus(); return; }
  out.textContent = `Calling ${number}…`;
  try {
    const r = await api("POST", `${agentPath()}/dial`, { number });
    out.textContent = `Calling ${number}${r && r.contact ? ` (contact ${r.contact})` : ""}: your phone rings first.`;
  } catch (err) {
    out.textContent = `Call failed: ${err.message}`;
    out.className = "error";
  }
}

async function searchKb(ev) {
  ev.preventDefault();
  const q = $("kb-query").value.trim();
  const list = $("kb-results");
  try {
    const r = await api("GET", `/kb?q=${encodeURIComponent(q)}`);
    if (!r.items.length) {
      const li = document.createElement("li");
      li.textContent = `No article matches “${q}”.`;
      list.replaceChildren(li);
      announce("No article found");
      return;
    }
    list.replaceChildren(...r.items.map((a) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link-button";
      b.textContent = a.title;
      b.addEventListener("click", () => openArticle(a.slug));
      const s = document.createElement("p");
      s.className = "muted";
      s.textContent = a.summary;
      li.append(b, s);
      return li;
    }));
    announce(`${r.items.length} article${r.items.length === 1 ? "" : "s"} found`);
  } catch (err) {
    list.replaceChildren();
    showError($("desk-error"), err);
  }
}

async function openArticle(slug) {
  try {
    const a = await api("GET", `/kb/${encodeURIComponent(slug)}`);
    const box = $("kb-article");
    const h = document.createElement("h3");
    h.textContent = a.title;
    const body = document.createElement("div");
    body.innerHTML = a.html;  // rendered by the server from Markdown, raw HTML disabled
    box.replaceChildren(h, body);
    box.focus();
  } catch (err) { showError($("desk-error"), err); }
}

// ---------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  // from "logged out of queues" the state buttons log in first (one click to start the day)
  $("btn-ready").addEventListener("click", () => stateAction(async () => {
    if (desk.agentState === "logged_out") await api("POST", `${agentPath()}/login`, { ready: true });
    else await api("POST", `${agentPath()}/state`, { state: "ready" });
  }));
  $("btn-not-ready").addEventListener("click", () => stateAction(async () => {
    if (desk.agentState === "logged_out") await api("POST", `${agentPath()}/login`, { ready: false });
    await api("POST", `${agentPath()}/state`, { state: "not_ready", reason: $("not-ready-reason").value });
  }));
  $("btn-queue-logout").addEventListener("click", () => stateAction(() => api("POST", `${agentPath()}/logout`)));
  $("btn-sign-out").addEventListener("click", () => signOut(null));
  $("case-form").addEventListener("submit", createCase);
  $("case-service").addEventListener("change", renderCaseAttributes);
  $("history-person").addEventListener("change", loadHistory);
  $("dial-form").addEventListener("submit", dial);
  $("kb-form").addEventListener("submit", searchKb);
  const saved = sessionStorage.getItem("switchboard.desk");
  if (saved) {
    try {
      Object.assign(desk, JSON.parse(saved));
      openDesk().catch((err) => signOut(err.message));
      return;
    } catch (_) { sessionStorage.removeItem("switchboard.desk"); }
  }
  $("login-username").focus();
});
