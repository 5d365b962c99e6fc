// Reviewer page for the triage service: the queue, a case panel and decisions. Plain JS, no dependencies.
// It calls the service's /queue, /case and /feedback on the same origin (see docs/reviewer-page.md).
"use strict";

(() => {
  // The service root: the page lives at <root>/ui/, so this also works behind a path prefix.
  const API_ROOT = location.pathname.replace(/\/ui(\/.*)?$/, "");
  const STORAGE_REVIEWER = "triage.reviewer_id";
  const KNOWN_RISK_TYPES = [
    "counterfeit", "prohibited_item", "unsafe_product", "misleading_listing", "scam_seller", "fake_engagement",
  ];
  const QUEUE_LIMIT = 100;
  const TICK_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const state = {
    cases: [],          // as returned by /queue, in priority order
    loadedAt: 0,        // Date.now() when the queue arrived: SLA countdowns count from hours_to_due
    selected: -1,       // index into cases
    openCase: null,     // the /case body of the case in the panel
    busy: false,        // a decision is being sent
    lastAttempt: null,  // {key, decision_id, decided_at}: a retry of the same decision reuses its id
    riskTypes: new Set(KNOWN_RISK_TYPES),
  };

  // ---- HTTP: the one place that adds credentials --------------------------------------------------------

  function authHeaders() {
    // Later: API keys with roles. Add e.g. {Authorization: `Bearer ${key}`} here and nowhere else.
    return {};
  }

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function describeError(status, body) {
    if (body && typeof body === "object") {
      const parts = [];
      const error = body.error ?? body.message;
      if (typeof error === "string") parts.push(error);
      else if (error && typeof error === "object") parts.push(error.message ?? JSON.stringify(error));
      const fields = body.fields ?? body.conflicting_fields ?? (error && error.fields);
      if (Array.isArray(fields) && fields.length) parts.push(`fields: ${fields.join(", ")}`);
      if (Array.isArray(body.detail)) {
        for (const d of body.detail) {
          const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
          parts.push(loc ? `${loc}: ${d.msg ?? JSON.stringify(d)}` : (d.msg ?? JSON.stringify(d)));
        }
      } else if (typeof body.detail === "string") {
        parts.push(body.detail);
      }
      if (parts.length) return `HTTP ${status}: ${parts.join("; ")}`;
      return `HTTP ${status}: ${JSON.stringify(body)}`;
    }
    return `HTTP ${status}${body ? `: ${String(body).slice(0, 300)}` : ""}`;
  }

  async function api(path, payload) {
    let response;
    try {
      response = await fetch(`${API_ROOT}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json", ...authHeaders() },
        body: JSON.stringify(payload),
        credentials: "same-origin",
      });
    } catch (err) {
      throw new ApiError(0, `Cannot reach the service (${err.message})`, null);
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = text; }
    if (!response.ok) throw new ApiError(response.status, describeError(response.status, body), body);
    return { status: response.status, body };
  }

  // ---- messages ---------------------------------------------------------------------------------------

  let statusTimer = 0;
  function showError(message) {
    $("error-text").textContent = message;
    $("error").hidden = false;
  }
  function clearError() { $("error").hidden = true; }
  function showStatus(message) {
    const el = $("status");
    el.textContent = message;
    el.hidden = false;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { el.hidden = true; }, 8000);
  }

  // ---- formatting -------------------------------------------------------------------------------------

  const money = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const fmtMoney = (x) => (Number.isFinite(x) ? money.format(x) : "—");
  const fmtScore = (x) => (Number.isFinite(x) ? x.toFixed(1) : "—");
  const fmtSigned = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(2)}`;
  function fmtValue(v) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
    return String(v);
  }
  const humanize = (code) => (code ? String(code).replaceAll("_", " ") : "");

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "title" || k === "scope"
               || k === "tabindex" || k === "id") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  // SLA: milliseconds left, from hours_to_due at load time (immune to client clock skew), else sla_due_at.
  function msToDue(c) {
    if (Number.isFinite(c.hours_to_due)) return c.hours_to_due * 3600e3 - (Date.now() - state.loadedAt);
    const due = Date.parse(c.sla_due_at);
    return Number.isFinite(due) ? due - Date.now() : NaN;
  }
  function slaText(ms) {
    if (!Number.isFinite(ms)) return { text: "—", cls: "" };
    const minutes = Math.floor(Math.abs(ms) / 60000);
    const d = Math.floor(minutes / 1440), h = Math.floor((minutes % 1440) / 60), m = minutes % 60;
    const span = d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
    if (ms < 0) return { text: `overdue ${span}`, cls: "sla-overdue" };
    const cls = ms < 3600e3 ? "sla-urgent" : ms < 4 * 3600e3 ? "sla-soon" : "sla-ok";
    return { text: `${span} left`, cls };
  }
  function renderSla(node, c) {
    const { text, cls } = slaText(msToDue(c));
    node.textContent = text;
    node.className = `sla ${cls}`;
    if (c.sla_due_at) node.title = `due ${new Date(c.sla_due_at).toLocaleString()}`;
  }

  // ---- queue ------------------------------------------------------------------------------------------

  function reviewerId() { return $("reviewer-id").value.trim(); }

  function queueRequest() {
    return {
      reviewer_id: reviewerId(),
      risk_type: $("filter-risk").value || null,
      tier: $("filter-tier").value || null,
      limit: QUEUE_LIMIT,
    };
  }

  async function loadQueue({ quiet = false } = {}) {
    if (!reviewerId()) {
      showError("Enter your reviewer ID (top right) to load the queue.");
      $("reviewer-id").focus();
      return;
    }
    const keep = state.cases[state.selected]?.case_id;
    $("queue-table").setAttribute("aria-busy", "true");
    try {
      const { body } = await api("/queue", queueRequest());
      state.cases = [...(body.cases ?? [])].sort((a, b) => a.position - b.position);
      state.loadedAt = Date.now();
      for (const c of state.cases) if (c.risk_type) state.riskTypes.add(c.risk_type);
      fillRiskTypeSelects();
      const again = state.cases.findIndex((c) => c.case_id === keep);
      state.selected = again >= 0 ? again : (state.cases.length ? 0 : -1);
      renderQueue();
      const when = body.generated_at ? new Date(body.generated_at).toLocaleTimeString() : "now";
      $("queue-meta").textContent =
        `${state.cases.length} case${state.cases.length === 1 ? "" : "s"} · queue as of ${when}` +
        (state.cases.length >= QUEUE_LIMIT ? ` · showing the first ${QUEUE_LIMIT}` : "");
      if (!quiet) clearError();
    } catch (err) {
      showError(`Could not load the queue. ${err.message}`);
    } finally {
      $("queue-table").removeAttribute("aria-busy");
    }
  }

  function fillRiskTypeSelects() {
    const types = [...state.riskTypes].sort();
    for (const id of ["filter-risk", "decision-risk"]) {
      const select = $(id);
      const current = select.value;
      const first = select.options[0];
      select.replaceChildren(first, ...types.map((t) => el("option", { value: t, text: humanize(t) })));
      select.value = types.includes(current) ? current : "";
    }
  }

  function reasonsList(reasons, n = 3) {
    const list = el("ul", { class: "top-reasons" });
    for (const r of (reasons ?? []).slice(0, n)) {
      list.append(el("li", { class: r.contribution >= 0 ? "up" : "down", text: r.text }));
    }
    return list;
  }

  function renderQueue() {
    const body = $("queue-body");
    body.replaceChildren(...state.cases.map((c, i) => {
      const sla = el("span");
      renderSla(sla, c);
      const members = c.members?.length ? ` · ${c.members.length} members` : "";
      const row = el("tr", {
        "data-case-id": c.case_id, "data-index": String(i), tabindex: "-1",
        "aria-selected": i === state.selected ? "true" : "false",
        class: i === state.selected ? "selected" : "",
      },
      el("td", { class: "num", text: String(c.position) }),
      el("td", {},
        el("button", {
          type: "button", class: "link open-case",
          "aria-label": `Open case ${c.position}: ${c.entity_type} ${c.entity_id}`,
        }, el("span", { class: `etype etype-${c.entity_type}`, text: c.entity_type }), " ",
        el("span", { class: "eid", text: c.entity_id })),
        el("div", { class: "sub", text: `${humanize(c.risk_type) || "risk type unknown"}${members}` })),
      el("td", {}, el("span", { class: `tier tier-${c.tier}`, text: c.tier })),
      el("td", { class: "num", text: fmtScore(c.score) }),
      el("td", { class: "num", text: fmtMoney(c.expected_loss) }),
      el("td", {}, sla),
      el("td", { title: c.position_reason ?? "" }, reasonsList(c.top_reasons)));
      return row;
    }));
    $("queue-empty").hidden = state.cases.length > 0;
  }

  function select(index, { focus = true } = {}) {
    if (!state.cases.length) return;
    state.selected = Math.max(0, Math.min(state.cases.length - 1, index));
    for (const row of $("queue-body").rows) {
      const on = Number(row.dataset.index) === state.selected;
      row.classList.toggle("selected", on);
      row.setAttribute("aria-selected", on ? "true" : "false");
      if (on && focus) { row.focus({ preventScroll: true }); row.scrollIntoView({ block: "nearest" }); }
    }
  }

  function tick() {
    for (const row of $("queue-body").rows) {
      const c = state.cases[Number(row.dataset.index)];
      if (c) renderSla(row.cells[5].firstChild, c);
    }
    const panelSla = document.querySelector("#case-summary .sla");
    if (panelSla && state.openCase) renderSla(panelSla, state.openCase);
  }

  // ---- case panel -------------------------------------------------------------------------------------

  async function openCase(index) {
    const c = state.cases[index];
    if (!c) return;
    select(index, { focus: false });
    try {
      const { body } = await api("/case", { case_id: c.case_id });
      // keep the queue's hours_to_due baseline so the panel's countdown matches the row's
      state.openCase = { ...c, ...body, hours_to_due: c.hours_to_due };
      renderCase(state.openCase);
      clearError();
    } catch (err) {
      showError(`Could not open case ${c.case_id}. ${err.message}`);
      if (err.status === 404) await loadQueue({ quiet: true });
    }
  }

  function renderCase(c) {
    $("case-title").textContent = `${c.entity_type} ${c.entity_id}`;
    const sla = el("span");
    renderSla(sla, c);
    $("case-summary").replaceChildren(
      el("dl", { class: "facts" },
        el("dt", { text: "Tier" }), el("dd", {}, el("span", { class: `tier tier-${c.tier}`, text: c.tier })),
        el("dt", { text: "Score" }), el("dd", { text: `${fmtScore(c.score)} (p = ${fmtValue(c.probability)})` }),
        el("dt", { text: "Expected loss" }), el("dd", { text: fmtMoney(c.expected_loss) }),
        el("dt", { text: "SLA" }), el("dd", {}, sla),
        el("dt", { text: "Position" }), el("dd", { text: `${c.position} — ${c.position_reason ?? ""}` }),
        el("dt", { text: "Risk type" }), el("dd", { text: humanize(c.risk_type) || "—" }),
        el("dt", { text: "Model" }), el("dd", { text: `${c.model_name ?? "—"} v${c.model_version ?? "?"}` }),
        el("dt", { text: "Case" }), el("dd", { class: "mono", text: c.case_id })));

    const reasons = c.reasons ?? c.top_reasons ?? [];
    const scale = Math.max(1e-9, ...reasons.map((r) => Math.abs(r.contribution)));
    $("case-reasons").replaceChildren(...reasons.map((r) => {
      const pct = `${(50 * Math.abs(r.contribution)) / scale}%`;
      const bar = el("span", { class: `bar ${r.contribution >= 0 ? "pos" : "neg"}` });
      bar.style.width = pct;
      const direction = r.contribution >= 0 ? "raises" : "lowers";
      return el("li", { class: "reason" },
        el("span", { class: "reason-text" }, r.text || humanize(r.feature),
          el("span", { class: "reason-feature", text: ` ${r.feature} = ${fmtValue(r.value)}` })),
        el("span", {
          class: "bar-track", role: "img",
          "aria-label": `${direction} risk by ${Math.abs(r.contribution).toFixed(2)}`,
        }, bar),
        el("span", { class: `contrib ${r.contribution >= 0 ? "pos" : "neg"}`, text: fmtSigned(r.contribution) }));
    }));

    const members = c.members ?? [];
    $("members-section").hidden = members.length === 0;
    $("case-members").replaceChildren(...members.map((m) => el("tr", {},
      el("th", { scope: "row", class: "mono", text: m.entity_id }),
      el("td", {}, el("span", { class: `tier tier-${m.tier}`, text: m.tier })),
      el("td", { class: "num", text: fmtScore(m.score) }),
      el("td", { class: "num", text: fmtValue(m.probability) }))));

    $("case-features").replaceChildren(...(c.features ?? []).map((f) => el("tr", {},
      el("th", { scope: "row", class: "mono", text: f.name }),
      el("td", { text: fmtValue(f.value) }),
      el("td", { class: "desc", text: f.description ?? "" }))));

    $("decision-risk").value = c.risk_type && state.riskTypes.has(c.risk_type) ? c.risk_type : "";
    $("decision-enforcement").value = "";
    $("decision-loss").value = "0";
    $("decision-note").value = "";
    state.lastAttempt = null;

    $("case-panel").hidden = false;
    $("layout").classList.add("with-panel");
    $("case-title").focus({ preventScroll: true });
    $("case-panel").scrollTop = 0;
  }

  function closeCase({ focusRow = true } = {}) {
    state.openCase = null;
    $("case-panel").hidden = true;
    $("layout").classList.remove("with-panel");
    if (focusRow) select(state.selected);
  }

  // ---- decisions --------------------------------------------------------------------------------------

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // The service's `feedback(decision: Decision)` takes the decision under the key `decision`.
  const feedbackBody = (decision) => ({ decision });

  async function decide(outcome) {
    const c = state.openCase;
    if (!c) { showStatus("Open a case first (Enter), then decide."); return; }
    if (state.busy) return;
    if (!reviewerId()) { showError("Enter your reviewer ID before deciding."); $("reviewer-id").focus(); return; }
    const loss = Number($("decision-loss").value || "0");
    if (!Number.isFinite(loss) || loss < 0) {
      showError("Loss amount must be a number ≥ 0.");
      $("decision-loss").focus();
      return;
    }
    const content = {
      case_id: c.case_id,
      entity_type: c.entity_type,
      entity_id: c.entity_id,
      outcome,
      risk_type: $("decision-risk").value || null,
      enforcement_action: $("decision-enforcement").value || null,
      loss_amount: loss,
      reviewer_id: reviewerId(),
      model_name: c.model_name ?? null,
      model_version: c.model_version ?? null,
      note: $("decision-note").value.trim() || null,
    };
    // Retrying the same decision (e.g. after a network error) reuses its id and time, so the service
    // recognises it (200, created false) instead of recording it twice.
    const key = JSON.stringify(content);
    if (!state.lastAttempt || state.lastAttempt.key !== key) {
      state.lastAttempt = { key, decision_id: newId(), decided_at: new Date().toISOString() };
    }
    const payload = { decision_id: state.lastAttempt.decision_id, ...content, decided_at: state.lastAttempt.decided_at };

    state.busy = true;
    $("decision").setAttribute("aria-busy", "true");
    for (const b of document.querySelectorAll("button.outcome")) b.disabled = true;
    try {
      const { body } = await api("/feedback", feedbackBody(payload));
      const created = body?.created !== false;
      state.lastAttempt = null;
      clearError();
      showStatus(`${created ? "Recorded" : "Already recorded"}: ${humanize(outcome)} on ${c.entity_type} ` +
        `${c.entity_id} (decision ${payload.decision_id.slice(0, 8)}).`);
      removeCase(c.case_id);
      closeCase({ focusRow: false });
      select(state.selected);
      loadQueue({ quiet: true });
    } catch (err) {
      showError(`Decision not recorded. ${err.message}`);
    } finally {
      state.busy = false;
      $("decision").removeAttribute("aria-busy");
      for (const b of document.querySelectorAll("button.outcome")) b.disabled = false;
    }
  }

  function removeCase(caseId) {
    const i = state.cases.findIndex((c) => c.case_id === caseId);
    if (i < 0) return;
    state.cases.splice(i, 1);
    if (state.selected >= state.cases.length) state.selected = state.cases.length - 1;
    renderQueue();
  }

  // ---- keyboard ---------------------------------------------------------------------------------------

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
  }

  function toggleHelp() {
    const help = $("help");
    if (help.open) help.close(); else help.showModal();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if ($("help").open) {
      if (event.key === "?") { event.preventDefault(); toggleHelp(); }
      return; // the dialog handles Escape itself
    }
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const onButton = event.target instanceof HTMLButtonElement;
    switch (event.key) {
      case "j": case "ArrowDown":
        event.preventDefault(); select(state.selected + 1); break;
      case "k": case "ArrowUp":
        event.preventDefault(); select(state.selected - 1); break;
      case "Enter":
        if (onButton) return; // let the focused button do its own thing
        event.preventDefault(); openCase(state.selected); break;
      case "Escape":
        if (state.openCase) { event.preventDefault(); closeCase(); }
        else clearError();
        break;
      case "v": event.preventDefault(); decide("violation"); break;
      case "n": event.preventDefault(); decide("no_violation"); break;
      case "e": event.preventDefault(); decide("escalate"); break;
      case "r": event.preventDefault(); loadQueue(); break;
      case "?": event.preventDefault(); toggleHelp(); break;
      default: break;
    }
  }

  // ---- wiring -----------------------------------------------------------------------------------------

  function init() {
    fillRiskTypeSelects();
    $("reviewer-id").value = localStorage.getItem(STORAGE_REVIEWER) ?? "";
    $("identity").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = reviewerId();
      if (!id) { showError("Reviewer ID cannot be empty."); return; }
      localStorage.setItem(STORAGE_REVIEWER, id);
      showStatus(`Reviewing as ${id}.`);
      loadQueue().then(() => select(state.selected));
    });
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("filter-risk").addEventListener("change", () => loadQueue());
    $("filter-tier").addEventListener("change", () => loadQueue());
    $("refresh").addEventListener("click", () => loadQueue());
    $("error-close").addEventListener("click", clearError);
    $("help-button").addEventListener("click", toggleHelp);
    $("case-close").addEventListener("click", () => closeCase());
    $("decision").addEventListener("submit", (event) => event.preventDefault());
    for (const b of document.querySelectorAll("button.outcome")) {
      b.addEventListener("click", () => decide(b.dataset.outcome));
    }
    $("queue-body").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-index]");
      if (!row) return;
      const index = Number(row.dataset.index);
      if (event.target.closest("button.open-case")) openCase(index);
      else select(index);
    });
    $("queue-body").addEventListener("dblclick", (event) => {
      const row = event.target.closest("tr[data-index]");
      if (row) openCase(Number(row.dataset.index));
    });
    document.addEventListener("keydown", onKey);
    setInterval(tick, TICK_MS);
    if (reviewerId()) loadQueue();
    else { $("reviewer-id").focus(); showStatus("Enter your reviewer ID and press Save to load the queue."); }
  }

  init();
})();
