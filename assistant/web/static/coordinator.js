// Coordinator workspace: the referral queue and one referral at a time. Plain JS against /api/v1/referrals.
// The API key is entered once and kept in sessionStorage (this tab only), sent as "Authorization: Bearer".
(function () {
  "use strict";
  const { el, labelBadge, criterionItem, registryUrl } = window.trialmatch;
  const api = "/api/v1";
  const KEY = "trialmatch.coordinatorKey";
  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  let statuses = [];
  let current = null; // the referral shown in the detail view

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function call(method, path, body) {
    const headers = { Authorization: "Bearer " + (sessionStorage.getItem(KEY) || "") };
    if (body) headers["Content-Type"] = "application/json";
    const res = await fetch(api + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const data = res.status === 204 ? null : await res.json();
    if (!res.ok) {
      if (res.status === 401) signOut("The key was not accepted; enter a valid coordinator key.");
      throw new HttpError(res.status, (data && data.error && data.error.message) || "request failed");
    }
    return data;
  }

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "";
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    $("key-form").hidden = false;
    $("signed-in").hidden = true;
    $("queue-section").hidden = true;
    $("detail").hidden = true;
    statusEl.textContent = message || "Signed out; the key was removed from this tab.";
  }

  function showSignedIn() {
    const key = sessionStorage.getItem(KEY) || "";
    $("key-form").hidden = true;
    $("signed-in").hidden = false;
    $("key-info").textContent = "Using key " + key.split("_").slice(0, 2).join("_") + "_… for this tab.";
  }

  // ------------------------------------------------------------------ queue

  function queueRow(r) {
    const tr = el("tr", { "data-id": String(r.id), "data-status": r.status });
    tr.appendChild(el("td", {}, String(r.id)));
    tr.appendChild(el("td", {}, when(r.created_at)));
    const trial = el("td", { class: "trial" });
    trial.appendChild(el("span", { class: "nct" }, r.nct_id));
    trial.appendChild(document.createTextNode(" " + (r.trial_title || "")));
    tr.appendChild(trial);
    const at = el("td", { class: "label-then" });
    at.appendChild(r.label_at_creation ? labelBadge(r.label_at_creation) : el("span", {}, "—"));
    tr.appendChild(at);
    const now = el("td", { class: "label-now" });
    now.appendChild(r.label_now ? labelBadge(r.label_now)
      : el("span", {}, r.trial_changed ? "open to re-evaluate" : "—"));
    tr.appendChild(now);
    tr.appendChild(el("td", { class: "summary" }, r.patient_summary || "(no summary)"));
    tr.appendChild(el("td", { class: "status" }, r.status.replace("_", " ")));
    const flags = el("td", { class: "flags" });
    if (r.trial_changed || r.needs_review) flags.appendChild(el("span", { class: "flag" }, "trial changed"));
    tr.appendChild(flags);
    const open = el("td", {});
    const button = el("button", { type: "button", class: "open", "aria-label": "Open referral " + r.id }, "Open");
    button.addEventListener("click", () => { location.hash = "referral-" + r.id; });
    open.appendChild(button);
    tr.appendChild(open);
    return tr;
  }

  async function loadQueue() {
    const status = $("status-filter").value;
    const data = await call("GET", "/referrals?per_page=200" + (status ? "&status=" + encodeURIComponent(status) : ""));
    $("queue-rows").replaceChildren(...data.referrals.map(queueRow));
    statusEl.textContent = data.total + " referral" + (data.total === 1 ? "" : "s") + ".";
  }

  // ------------------------------------------------------------------ one referral

  function metaRow(dl, term, value) {
    dl.appendChild(el("dt", {}, term));
    const dd = el("dd", {});
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
    dl.appendChild(dd);
  }

  function renderAudit(audit) {
    $("detail-audit").replaceChildren(...audit.map((a) => {
      let what = a.action === "status" ? "status " + (a.from_status || "") + " → " + a.to_status
        : a.action === "note" ? "note" : a.action === "created" ? "created (" + a.to_status + ")" : a.action;
      if (a.note) what += ": " + a.note;
      return el("li", { "data-action": a.action }, when(a.at) + " · " + a.actor + " · " + what);
    }));
  }

  function renderDetail(r) {
    current = r;
    $("detail-title").textContent = "Referral #" + r.id + " — " + r.nct_id;
    const dl = $("detail-meta");
    dl.replaceChildren();
    const link = el("a", { href: registryUrl(r.nct_id), target: "_blank", rel: "noopener noreferrer" },
      r.nct_id + " " + (r.trial_title || ""));
    metaRow(dl, "Trial", link);
    metaRow(dl, "Label when referred", r.label_at_creation ? labelBadge(r.label_at_creation) : "—");
    metaRow(dl, "Label now", r.label_now ? labelBadge(r.label_now) : "—");
    if (r.trial_changed || r.needs_review) {
      metaRow(dl, "Flag", el("span", { class: "flag" }, "the trial record changed since the referral"));
    }
    metaRow(dl, "Patient", r.patient_summary || "—");
    metaRow(dl, "Status", r.status.replace("_", " "));
    metaRow(dl, "Contact", r.contact_ref);
    metaRow(dl, "Team", r.team);
    metaRow(dl, "Received", when(r.created_at));
    const criteria = r.evaluation ? r.evaluation.criteria : [];
    $("detail-criteria").replaceChildren(...(criteria.length ? criteria.map(criterionItem)
      : [el("li", {}, "The trial is no longer in the corpus; no verdicts.")]));
    const qa = $("detail-transcript");
    qa.replaceChildren();
    const turns = r.transcript && r.transcript.length ? r.transcript : [{ question: null, answer: r.patient_text }];
    turns.forEach((t) => {
      qa.appendChild(el("dt", {}, t.question ? "Asked: " + t.question : "Description"));
      qa.appendChild(el("dd", {}, t.answer));
    });
    renderAudit(r.audit || []);
    $("update-result").textContent = "";
    $("note").value = "";
    $("new-status").value = "";
    $("queue-section").hidden = true;
    $("detail").hidden = false;
  }

  async function openReferral(id) {
    statusEl.textContent = "Opening referral " + id + "…";
    try {
      renderDetail(await call("GET", "/referrals/" + id));
      statusEl.textContent = "Referral " + id + " opened.";
      $("detail-title").focus();
    } catch (err) {
      if (err.status !== 401) statusEl.textContent = "Could not open referral " + id + ": " + err.message;
    }
  }

  async function route() {
    if (!sessionStorage.getItem(KEY)) return;
    const m = /^#referral-(\d+)$/.exec(location.hash);
    if (m) return openReferral(m[1]);
    $("detail").hidden = true;
    $("queue-section").hidden = false;
    try {
      await loadQueue();
    } catch (err) {
      if (err.status !== 401) statusEl.textContent = "Could not load the queue: " + err.message;
    }
  }

  // ------------------------------------------------------------------ wiring

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("api-key").value = "";
    showSignedIn();
    route();
  });
  $("forget-key").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", () => route());
  $("status-filter").addEventListener("change", () => route());
  $("back").addEventListener("click", () => { location.hash = ""; });
  window.addEventListener("hashchange", route);

  $("update-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current) return;
    const body = {};
    if ($("new-status").value) body.status = $("new-status").value;
    if ($("note").value.trim()) body.note = $("note").value.trim();
    const result = $("update-result");
    if (!body.status && !body.note) {
      result.textContent = "Choose a new status or write a note.";
      return;
    }
    try {
      const updated = await call("PATCH", "/referrals/" + current.id, body);
      renderDetail({ ...current, ...updated, label_now: current.label_now, evaluation: current.evaluation,
                     transcript: current.transcript, patient_text: current.patient_text });
      result.textContent = body.status ? "Saved: status is now " + updated.status.replace("_", " ") + "."
        : "Saved: note added.";
    } catch (err) {
      result.textContent = "Could not save: " + err.message;
    }
  });

  async function init() {
    $("detail-title").setAttribute("tabindex", "-1");
    try {
      statuses = (await (await fetch(api + "/referral-statuses")).json()).statuses;
    } catch (err) {
      statuses = [];
    }
    statuses.forEach((s) => {
      $("status-filter").appendChild(el("option", { value: s }, s.replace("_", " ")));
      $("new-status").appendChild(el("option", { value: s }, s.replace("_", " ")));
    });
    if (sessionStorage.getItem(KEY)) {
      showSignedIn();
      route();
    }
  }

  init();
})();
