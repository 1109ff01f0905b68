// Vivace's operations console: one page over the GraphQL API at /graphql.
// The token is kept in this tab's session storage and sent with every
// request; a viewer token gets no edit controls (and the API refuses its
// mutations anyway).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const state = { me: null, view: "monitor", exc: { filter: {}, after: null, rows: [], selected: new Set(), current: null }, prev: null, timer: null };

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === "text") e.textContent = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
}

function flash(msg, bad) {
  const f = $("#flash");
  f.textContent = msg;
  f.className = bad ? "bad" : "good";
}

// gql sends a query; it throws the errors' messages joined.
async function gql(query, variables = {}) {
  const token = sessionStorage.getItem("vivace-token") || "";
  const resp = await fetch("/graphql", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + token }, body: JSON.stringify({ query, variables }) });
  if (resp.status === 401) { logout(); throw new Error("the token was refused: log in again"); }
  const body = await resp.json();
  if (body.errors && body.errors.length) {
    const err = new Error(body.errors.map((e) => e.message).join("; "));
    err.codes = body.errors.map((e) => e.extensions && e.extensions.code);
    throw err;
  }
  return body.data;
}

const fmtTime = (t) => (t ? t.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "");
const short = (id) => (id ? id.slice(0, 8) + "…" + id.slice(-4) : "");
const canEdit = () => state.me && state.me.canEdit;

function rows(tbody, list, render, empty) {
  tbody.replaceChildren(...(list.length ? list.map(render) : [el("tr", {}, el("td", { colspan: 12, class: "empty", text: empty || "nothing here" }))]));
}
const td = (v, cls) => el("td", { class: cls, text: v === null || v === undefined ? "" : String(v) });

// --- login ---------------------------------------------------------------

async function login(token) {
  sessionStorage.setItem("vivace-token", token);
  try {
    const d = await gql("{ me { name role clients allClients canEdit } }");
    state.me = d.me;
  } catch (e) {
    sessionStorage.removeItem("vivace-token");
    flash("Log in failed: " + e.message, true);
    return;
  }
  $("#who").textContent = `${state.me.name} · ${state.me.role} · ${state.me.allClients ? "all clients" : state.me.clients.join(", ")}`;
  document.body.classList.toggle("viewer", !state.me.canEdit);
  if (!state.me.canEdit) $$(".edit").forEach((e) => e.remove());
  if (document.activeElement) document.activeElement.blur();
  $("#token").value = "";
  $("#login").hidden = true;
  $("#nav").hidden = false;
  $("#logout").hidden = false;
  flash("");
  show(location.hash.slice(1) || "monitor");
}

function logout() {
  sessionStorage.removeItem("vivace-token");
  location.hash = "";
  location.reload();
}

// --- views ---------------------------------------------------------------

const views = { monitor: loadMonitor, exceptions: () => loadExceptions(true), catalog: loadFeed, sync: loadSync };

function show(view) {
  if (!views[view]) view = "monitor";
  if (state.view !== view) flash("");
  state.view = view;
  for (const s of Object.keys(views)) $("#" + s).hidden = s !== view;
  $$("#nav button").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
  if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
  clearInterval(state.timer);
  views[view]().catch((e) => flash(e.message, true));
  if (view === "monitor") state.timer = setInterval(() => loadMonitor().catch((e) => flash(e.message, true)), 5000);
}

async function loadMonitor() {
  const d = await gql(`{ files(first: 30) { id name client status records split murs exceptions filtered outcomes receivedAt }
    health { stages { stream received sent errors } lag { group topic lag } catalog { failed pending } syncBacklog { client oldestRatedAt unsynced } }
    syncJobs(first: 10) { startedAt client trigger status murs synced failed error } }`);
  rows($("#files tbody"), d.files, (f) => {
    const total = f.records === null ? null : f.records + f.split;
    return el("tr", { "data-file": f.id }, td(f.name), td(f.client), td(f.status, "st-" + f.status), td(total === null ? "reading…" : total, "num files-records"),
      td(f.murs, "num files-murs"), td(f.exceptions, "num files-exceptions"), td(f.filtered, "num"),
      el("td", {}, el("progress", { max: total || 1, value: total === null ? undefined : f.outcomes })), td(fmtTime(f.receivedAt)));
  }, "no files yet");
  const now = Date.now(), prev = state.prev;
  rows($("#stages tbody"), d.health.stages, (s) => {
    const p = prev && prev.stages[s.stream], dt = prev ? (now - prev.at) / 1000 : 0;
    const rate = (v, o) => (p && dt > 0 ? ((v - o) / dt).toFixed(1) : "–");
    return el("tr", {}, td(s.stream), td(rate(s.received, p && p.received), "num"), td(rate(s.sent, p && p.sent), "num"), td(s.errors, "num"), td(s.received, "num"));
  }, "no pipelines in this process");
  state.prev = { at: now, stages: Object.fromEntries(d.health.stages.map((s) => [s.stream, s])) };
  rows($("#lag tbody"), d.health.lag, (l) => el("tr", {}, td(l.group), td(l.topic), td(l.lag, l.lag > 0 ? "num warn" : "num")), "no lag reported");
  const c = d.health.catalog;
  $("#catalog-health").textContent = c.failed || c.pending ? `${c.failed} failed, ${c.pending} pending feed events` : "healthy: no failed or pending events";
  $("#catalog-health").className = c.failed ? "bad" : "good";
  const b = d.health.syncBacklog, failedJobs = d.syncJobs.filter((j) => j.failed || j.error).length;
  $("#sync-health").textContent = (b.length ? b.map((x) => `${x.client}: waiting since ${fmtTime(x.oldestRatedAt) || "the next cycle"}`).join("; ") : "nothing waiting") + (failedJobs ? ` · ${failedJobs} recent cycles with failures` : "");
  $("#sync-health").className = failedJobs ? "bad" : "good";
  rows($("#jobs tbody"), d.syncJobs, (j) => el("tr", {}, td(fmtTime(j.startedAt)), td(j.client), td(j.trigger), td(j.status), td(j.murs, "num"), td(j.synced, "num"), td(j.failed, "num"), td(j.error)), "no cycles yet");
}

// --- exceptions ----------------------------------------------------------

function excFilter() {
  const f = {};
  for (const [k, v] of new FormData($("#exc-filter"))) {
    if (v === "") continue;
    f[k] = k === "from" || k === "to" ? v + "T00:00:00Z" : v.trim();
  }
  return f;
}

const EXC_FIELDS = "id client recordId fileId line part stage code field message status attempts record createdAt";
const EXC_DETAIL = EXC_FIELDS + " arrived edited editedBy editedAt fields resolution reason supersededBy { fileId line part }";

async function loadExceptions(fresh) {
  const x = state.exc;
  const seq = (x.seq = (x.seq || 0) + 1);
  const filter = fresh ? excFilter() : x.filter, after = fresh ? null : x.after;
  const d = await gql(`query($f: ExceptionFilter, $after: String) { exceptions(filter: $f, first: 50, after: $after) {
      totalCount edges { node { ${EXC_FIELDS} } } pageInfo { endCursor hasNextPage } countsByCode { code count } } }`, { f: filter, after });
  if (seq !== x.seq) return; // a newer list was asked for meanwhile
  const c = d.exceptions;
  if (fresh) Object.assign(x, { filter, rows: [], selected: new Set() });
  const have = new Set(x.rows.map((r) => r.id));
  x.rows.push(...c.edges.map((e) => e.node).filter((n) => !have.has(n.id)));
  x.after = c.pageInfo.endCursor;
  $("#exc-more").hidden = !c.pageInfo.hasNextPage;
  $("#exc-counts").replaceChildren(el("span", { text: `${c.totalCount} exceptions` }),
    ...c.countsByCode.map((k) => el("button", { class: "chip", "data-code": k.code, on: { click: () => { $("#exc-filter").elements.code.value = k.code; loadExceptions(true); } } }, `${k.code} ${k.count}`)));
  rows($("#exc-table tbody"), x.rows, excRow, "no exceptions match");
  if ($("#exc-all")) $("#exc-all").checked = false;
}

function excRow(e) {
  const tr = el("tr", { tabindex: 0, "data-id": e.id, "data-record": e.recordId, class: state.exc.current === e.id ? "cur" : "", on: { click: (ev) => { if (ev.target.type !== "checkbox") openException(e.id); }, keydown: (ev) => { if (ev.key === "Enter") openException(e.id); } } });
  if (canEdit()) {
    const cb = el("input", { type: "checkbox", "aria-label": "select " + e.id, on: { change: () => (cb.checked ? state.exc.selected.add(e.id) : state.exc.selected.delete(e.id)) } });
    cb.checked = state.exc.selected.has(e.id);
    tr.append(el("td", {}, cb));
  }
  tr.append(td(e.code, "code"), td(e.stage), td(e.client), td(e.line, "num"), td(e.message), td(e.status, "st-" + e.status));
  return tr;
}

async function openException(id) {
  const d = await gql(`query($id: ID!) { exception(id: $id) { ${EXC_DETAIL} updatedAt file { name status } history { at actor action } } }`, { id });
  const e = d.exception;
  if (!e) return flash("no such exception", true);
  state.exc.current = id;
  $$("#exc-table tbody tr").forEach((tr) => tr.classList.toggle("cur", tr.dataset.id === id));
  $("#editor").hidden = false;
  $("#ed-id").textContent = short(e.id);
  const meta = [["Client", e.client], ["File", e.file ? `${e.file.name} (${e.file.status})` : e.fileId], ["Line", e.part ? `${e.line} part ${e.part}` : e.line],
    ["Record id", e.recordId], ["Stage", e.stage], ["Status", e.status + (e.resolution ? ` (${e.resolution})` : "")], ["Attempts", e.attempts], ["Recorded", fmtTime(e.createdAt)]];
  if (e.reason) meta.push(["Reason", e.reason]);
  if (e.editedBy) meta.push(["Edited", `${e.editedBy}, ${fmtTime(e.editedAt)}`]);
  $("#ed-meta").replaceChildren(...meta.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  $("#ed-error").textContent = `${e.code}${e.field ? " on " + e.field : ""}: ${e.message}`;
  const ta = $("#ed-record");
  ta.value = JSON.stringify(e.fields || e.record, null, 2);
  ta.readOnly = !canEdit() || e.status !== "open";
  $("#ed-arrived").textContent = JSON.stringify(e.arrived || e.record, null, 2);
  $("#ed-arrived-box").hidden = !e.edited && !e.arrived;
  $("#ed-result").textContent = "";
  $("#ed-history").replaceChildren(...e.history.map((h) => el("li", { text: `${fmtTime(h.at)} ${h.actor}: ${h.action}` })));
  $$("#editor .edit button").forEach((b) => (b.disabled = e.status !== "open"));
  // A record on its way through the pipeline again: look again until it
  // has its outcome (a MUR, or a new failure).
  clearTimeout(state.exc.watch);
  if (e.status === "reprocessing") state.exc.watch = setTimeout(() => { if (state.exc.current === id && state.view === "exceptions") openException(id).catch(() => {}); }, 2000);
}

async function act(what, fn) {
  try {
    const msg = await fn();
    flash(msg);
    return true;
  } catch (e) {
    flash(`${what}: ${e.message}`, true);
    return false;
  }
}

function ids(set) { return [...set]; }

// acted reports what a reprocess or discard did, following a job to its
// end.
async function acted(what, r) {
  const left = r.skipped.length ? `; ${r.skipped.length} left: ${r.skipped.slice(0, 3).map((s) => s.reason).join("; ")}` : "";
  if (!r.job) return `${r.accepted} ${what}${left}`;
  let j = r.job;
  while (j.status === "running") {
    flash(`${what}: ${j.done} of ${j.taken} so far…`);
    await new Promise((ok) => setTimeout(ok, 1000));
    j = (await gql("query($id: ID!) { exceptionJob(id: $id) { id status taken done skipped error } }", { id: j.id })).exceptionJob;
  }
  return `${j.done} ${what}, ${j.skipped} left${j.error ? " (" + j.error + ")" : ""}`;
}

const RESULT = "accepted skipped { id reason } job { id status taken done skipped error }";

function reprocess(idsList, filter) {
  return act("Reprocess", async () => {
    const d = await gql(`mutation($ids: [ID!], $f: ExceptionFilter) { reprocessExceptions(ids: $ids, filter: $f) { ${RESULT} } }`, { ids: idsList, f: filter });
    const msg = await acted("sent back through the pipeline", d.reprocessExceptions);
    await loadExceptions(true);
    if (state.exc.current) await openException(state.exc.current);
    return msg;
  });
}

function discard(idsList, filter) {
  const reason = prompt("Why are these records not to be billed?");
  if (!reason) return;
  return act("Discard", async () => {
    const d = await gql(`mutation($ids: [ID!], $f: ExceptionFilter, $r: String!) { discardExceptions(ids: $ids, filter: $f, reason: $r) { ${RESULT} } }`, { ids: idsList, f: filter, r: reason });
    const msg = await acted("discarded", d.discardExceptions);
    await loadExceptions(true);
    if (state.exc.current) await openException(state.exc.current);
    return msg;
  });
}

async function saveEdit() {
  const id = state.exc.current;
  let record;
  try { record = JSON.parse($("#ed-record").value); } catch (e) { $("#ed-result").textContent = "not JSON: " + e.message; $("#ed-result").className = "bad"; return; }
  try {
    await gql("mutation($id: ID!, $r: JSON!) { updateException(id: $id, record: $r) { accepted } }", { id, r: record });
    await openException(id);
    $("#ed-result").textContent = "saved: the edited record passes the stage's checks; reprocess it to send it again";
    $("#ed-result").className = "good";
  } catch (e) {
    $("#ed-result").textContent = e.message;
    $("#ed-result").className = "bad";
  }
}

// --- catalog sync --------------------------------------------------------

const feedSel = new Set();
async function loadFeed() {
  const f = Object.fromEntries([...new FormData($("#feed-filter"))].filter(([, v]) => v !== ""));
  const d = await gql("query($f: FeedEventFilter) { feedEvents(filter: $f, first: 200) { id client entity entityId outcome code message attempts } }", { f });
  feedSel.clear();
  rows($("#feed tbody"), d.feedEvents, (e) => {
    const tr = el("tr", {});
    if (canEdit()) {
      const cb = el("input", { type: "checkbox", "aria-label": "select " + e.id, on: { change: () => (cb.checked ? feedSel.add(e.id) : feedSel.delete(e.id)) } });
      tr.append(el("td", {}, cb));
    }
    tr.append(td(e.id), td(e.client), td(`${e.entity} ${e.entityId}`), td(e.outcome, "st-" + e.outcome), td(e.code, "code"), td(e.message), td(e.attempts, "num"));
    return tr;
  }, "no such events: the catalog sync is healthy");
}

// --- MUR sync ------------------------------------------------------------

async function loadSync() {
  const d = await gql(`{ syncBatches(status: "failed", first: 100) { id client records murs failure errorCode errorMessage attempts }
    syncRecords(status: "failed", first: 200) { id client accountId usageType currency amount murs errorCode errorMessage batchId } }`);
  const retry = (client, batchId) => el("button", { on: { click: () => act("Retry", async () => {
    const r = await gql("mutation($c: String!, $b: ID) { retrySync(client: $c, batchId: $b) { synced failed error } }", { c: client, b: batchId });
    await loadSync();
    return `retried: ${r.retrySync.synced} synced, ${r.retrySync.failed} failed${r.retrySync.error ? " (" + r.retrySync.error + ")" : ""}`;
  }) } }, "Retry");
  rows($("#batches tbody"), d.syncBatches, (b) => el("tr", {}, td(short(b.id)), td(b.client), td(b.records, "num"), td(b.murs, "num"), td(b.failure), td(b.errorMessage), td(b.attempts, "num"),
    ...(canEdit() ? [el("td", {}, retry(b.client, b.id))] : [])), "no failed batches");
  rows($("#records tbody"), d.syncRecords, (r) => el("tr", {}, td(short(r.id)), td(r.client), td(r.accountId), td(r.usageType), td(`${r.amount} ${r.currency}`, "num"), td(r.murs, "num"), td(r.errorCode, "num"), td(r.errorMessage),
    ...(canEdit() ? [el("td", {}, retry(r.client, r.batchId))] : [])), "no failed records");
}

// --- wiring --------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("#token").value.trim()); });
  $("#logout").addEventListener("click", logout);
  $$("#nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
  $("#exc-filter").addEventListener("submit", (e) => { e.preventDefault(); loadExceptions(true).catch((err) => flash(err.message, true)); });
  $("#exc-more").addEventListener("click", () => loadExceptions(false).catch((err) => flash(err.message, true)));
  $("#feed-filter").addEventListener("submit", (e) => { e.preventDefault(); loadFeed().catch((err) => flash(err.message, true)); });
  const on = (sel, fn) => { const b = $(sel); if (b) b.addEventListener("click", fn); };
  on("#exc-all", () => { const all = $("#exc-all").checked; state.exc.rows.forEach((r) => (all ? state.exc.selected.add(r.id) : state.exc.selected.delete(r.id))); rows($("#exc-table tbody"), state.exc.rows, excRow); });
  on("#exc-reprocess-sel", () => reprocess(ids(state.exc.selected), null));
  on("#exc-discard-sel", () => discard(ids(state.exc.selected), null));
  on("#exc-reprocess-all", () => confirm("Reprocess every exception the filter selects?") && reprocess(null, state.exc.filter));
  on("#exc-discard-all", () => discard(null, state.exc.filter));
  on("#ed-save", saveEdit);
  on("#ed-reprocess", () => reprocess([state.exc.current], null));
  on("#ed-discard", () => discard([state.exc.current], null));
  on("#feed-all", () => $$("#feed tbody input[type=checkbox]").forEach((cb) => { cb.checked = $("#feed-all").checked; cb.dispatchEvent(new Event("change")); }));
  on("#feed-reprocess-sel", () => act("Reprocess", async () => {
    const d = await gql("mutation($ids: [ID!]) { reprocessFeedEvents(ids: $ids) { id outcome } }", { ids: ids(feedSel) });
    await loadFeed();
    return `${d.reprocessFeedEvents.filter((o) => o.outcome === "applied").length} of ${d.reprocessFeedEvents.length} applied`;
  }));
  document.addEventListener("keydown", (e) => {
    if (!state.me || e.target.matches("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
    const v = { 1: "monitor", 2: "exceptions", 3: "catalog", 4: "sync" }[e.key];
    if (v) show(v);
    if (e.key === "/" && state.view === "exceptions") { e.preventDefault(); $("#exc-filter").elements.code.focus(); }
  });
  const saved = sessionStorage.getItem("vivace-token");
  if (saved) login(saved);
  else $("#token").focus();
});
