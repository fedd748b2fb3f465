// trialmatch chat widget: plain JS, talks to /api/v1/sessions. No patient text is kept in the browser
// beyond this page's lifetime.
(function () {
  "use strict";
  const api = "/api/v1";
  const form = document.getElementById("chat-form");
  const input = document.getElementById("message");
  const transcript = document.getElementById("transcript");
  const matchesEl = document.getElementById("matches");
  const questionEl = document.getElementById("question");
  const statusEl = document.getElementById("status");
  const sendBtn = document.getElementById("send");
  let sessionId = null;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function call(method, path, body) {
    const res = await fetch(api + path, {
      method, headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (res.status === 204) return null;
    const data = await res.json();
    if (!res.ok) throw new Error((data.error && data.error.message) || "request failed");
    return data;
  }

  async function ensureSession() {
    if (!sessionId) sessionId = (await call("POST", "/sessions")).id;
    return sessionId;
  }

  function addMessage(role, text) {
    const li = el("li", { class: role }, text);
    li.prepend(el("span", { class: "visually-hidden" }, role === "user" ? "You: " : "Assistant: "));
    transcript.appendChild(li);
    transcript.scrollTop = transcript.scrollHeight;
  }

  const VERDICT = { met: "Met", not_met: "Not met", unknown: "Unknown", not_applicable: "Not applicable" };
  const LABEL = { eligible: "Eligible", possibly_eligible: "Possibly eligible", ineligible: "Not eligible" };

  function renderMatches(matches) {
    matchesEl.replaceChildren();
    matches.forEach((m) => {
      const li = el("li", { class: "match", "data-nct": m.nct_id, "data-label": m.label });
      const h = el("h3", {});
      h.appendChild(el("span", {}, m.nct_id + " — " + m.title + " "));
      h.appendChild(el("span", { class: "label label-" + m.label }, LABEL[m.label] || m.label));
      li.appendChild(h);
      if (m.cohort) li.appendChild(el("p", {}, "Assessed for cohort: " + m.cohort));
      const details = el("details", {});
      details.appendChild(el("summary", {}, "Reasons per criterion (" + m.criteria.length + ")"));
      const ul = el("ul", { class: "criteria" });
      m.criteria.forEach((c) => {
        const item = el("li", { "data-verdict": c.verdict, "data-kind": c.kind });
        item.appendChild(el("span", { class: "verdict v-" + c.verdict },
          (c.kind === "exclusion" ? "Exclusion · " : "Inclusion · ") + (VERDICT[c.verdict] || c.verdict)));
        item.appendChild(el("span", { class: "reason" }, c.reason));
        ul.appendChild(item);
      });
      details.appendChild(ul);
      li.appendChild(details);
      matchesEl.appendChild(li);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    sendBtn.disabled = true;
    statusEl.textContent = "Searching trials…";
    addMessage("user", text);
    input.value = "";
    try {
      const id = await ensureSession();
      const data = await call("POST", "/sessions/" + id + "/messages", { text });
      addMessage("assistant", data.reply);
      renderMatches(data.matches);
      if (data.next_question) {
        questionEl.hidden = false;
        questionEl.textContent = "Follow-up question: " + data.next_question.text;
      } else {
        questionEl.hidden = true;
      }
      statusEl.textContent = data.matches.length + " trials shown.";
    } catch (err) {
      statusEl.textContent = "Sorry: " + err.message;
    } finally {
      sendBtn.disabled = false;
      input.focus();
    }
  });

  document.getElementById("reset").addEventListener("click", async () => {
    if (sessionId) {
      try { await call("DELETE", "/sessions/" + sessionId); } catch (err) { /* already gone */ }
    }
    sessionId = null;
    transcript.replaceChildren();
    matchesEl.replaceChildren();
    questionEl.hidden = true;
    statusEl.textContent = "Session ended; its data was deleted.";
  });
})();
