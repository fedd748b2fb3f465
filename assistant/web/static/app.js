// trialmatch chat widget: plain JS, talks to /api/v1. No patient text is kept in the browser beyond this
// page's lifetime; a referral sends the conversation to a study team only with the patient's ticked consent.
(function () {
  "use strict";
  const { el, labelBadge, criterionItem, registryUrl } = window.trialmatch;
  const api = "/api/v1";
  const TOP_K = 25; // enough that a relevant trial the patient fails is not pushed out by unrelated ones
  const HEALTH_POLL_MS = 1500;
  const form = document.getElementById("chat-form");
  const input = document.getElementById("message");
  const transcript = document.getElementById("transcript");
  const matchesEl = document.getElementById("matches");
  const ineligibleEl = document.getElementById("ineligible");
  const ineligibleSection = document.getElementById("ineligible-section");
  const ineligibleSummary = document.getElementById("ineligible-summary");
  const noticeEl = document.getElementById("notice");
  const questionEl = document.getElementById("question");
  const statusEl = document.getElementById("status");
  const sendBtn = document.getElementById("send");
  const latEl = document.getElementById("lat");
  const lonEl = document.getElementById("lon");
  const radiusEl = document.getElementById("radius");
  const placeEl = document.getElementById("place");
  const placesEl = document.getElementById("places");
  let sessionId = null;
  let loading = false;
  let placeOptions = new Map(); // option text -> {lat, lon}

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

  // While the server loads its trials, /health answers 503 {"status": "loading", "progress": {done, total}}.
  async function waitUntilReady() {
    let body = null;
    let status = 0;
    try {
      const res = await fetch(api + "/health", { cache: "no-store" });
      status = res.status;
      body = await res.json();
    } catch (err) {
      body = null; // not up yet, or not JSON: try again
    }
    if (body === null || (status === 503 && body.status === "loading")) {
      loading = true;
      sendBtn.disabled = true;
      const p = body && body.progress;
      statusEl.textContent = p && Number.isFinite(p.done) && Number.isFinite(p.total)
        ? "Loading trials, " + p.done + " of " + p.total + "…" : "Loading trials…";
      setTimeout(waitUntilReady, HEALTH_POLL_MS);
      return;
    }
    if (loading) statusEl.textContent = "Ready.";
    loading = false;
    sendBtn.disabled = false;
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

  // filters.near from the location fields; null when no location is given.
  function nearFilter() {
    if (latEl.value.trim() === "" && lonEl.value.trim() === "") return null;
    const lat = Number(latEl.value);
    const lon = Number(lonEl.value);
    const radius = Number(radiusEl.value || 500);
    if (latEl.value.trim() === "" || lonEl.value.trim() === "" || !Number.isFinite(lat) || !Number.isFinite(lon)
        || lat < -90 || lat > 90 || lon < -180 || lon > 180) {
      throw new Error("give both a latitude (-90 to 90) and a longitude (-180 to 180), or neither");
    }
    if (!Number.isFinite(radius) || radius < 1 || radius > 20000) throw new Error("the distance must be 1 to 20000 km");
    return { lat, lon, radius_km: radius };
  }

  let lastNear = null;

  function siteLine(m) {
    if (!lastNear) return null;
    if (m.nearest_site_km === null || m.nearest_site_km === undefined) {
      return el("p", { class: "site" }, "No recruiting site with a known location.");
    }
    return el("p", { class: "site" }, "Nearest recruiting site: " + (m.nearest_site ? m.nearest_site + ", " : "") +
      m.nearest_site_km.toLocaleString("en") + " km away");
  }

  // "Contact the study team": consent checkbox + contact field, then POST /referrals with this session.
  function contactAction(m) {
    const wrap = el("div", { class: "contact" });
    const open = el("button", { type: "button", class: "contact-open", "aria-expanded": "false" },
      "Contact the study team about this trial");
    const f = el("form", { class: "contact-form", novalidate: "" });
    f.hidden = true;
    const id = "c-" + m.nct_id;
    const consent = el("input", { type: "checkbox", id: id + "-consent", name: "consent" });
    const consentLabel = el("label", { for: id + "-consent", class: "inline" },
      " I agree that this conversation and my contact details are sent to the study team of " + m.nct_id + ".");
    consentLabel.prepend(consent);
    const contactLabel = el("label", { for: id + "-contact" }, "How should the study team contact you?");
    const contact = el("input", { type: "text", id: id + "-contact", name: "contact", maxlength: "200",
      autocomplete: "off", placeholder: "phone number or e-mail" });
    const submit = el("button", { type: "submit" }, "Send to the study team");
    const result = el("p", { class: "contact-result", "aria-live": "polite" });
    f.append(consentLabel, contactLabel, contact, submit, result);
    open.addEventListener("click", () => {
      f.hidden = !f.hidden;
      open.setAttribute("aria-expanded", String(!f.hidden));
      if (!f.hidden) consent.focus();
    });
    f.addEventListener("submit", async (event) => {
      event.preventDefault();
      result.className = "contact-result";
      const fail = (text) => { result.textContent = text; result.classList.add("error"); };
      if (!consent.checked) return fail("Please tick the consent box first: nothing is sent without it.");
      if (!contact.value.trim()) return fail("Please say how the study team can reach you.");
      if (!sessionId) return fail("Describe the patient first.");
      submit.disabled = true;
      result.textContent = "Sending…";
      try {
        const ref = await call("POST", "/referrals",
          { nct_id: m.nct_id, session_id: sessionId, contact_ref: contact.value.trim(), consent: true });
        result.textContent = "Sent. The study team of " + m.nct_id + " will contact you (reference " + ref.id + ").";
        result.classList.add("ok");
        f.querySelectorAll("input").forEach((node) => { node.disabled = true; });
      } catch (err) {
        fail("Could not send your request: " + err.message);
        submit.disabled = false;
      }
    });
    wrap.append(open, f);
    return wrap;
  }

  function matchItem(m) {
    const li = el("li", { class: "match", "data-nct": m.nct_id, "data-label": m.label });
    const h = el("h3", {});
    h.appendChild(el("span", {}, m.nct_id + " — " + m.title + " "));
    h.appendChild(labelBadge(m.label));
    li.appendChild(h);
    const links = el("p", { class: "links" });
    links.appendChild(el("a", { href: registryUrl(m.nct_id), target: "_blank", rel: "noopener noreferrer",
      class: "registry" }, "View " + m.nct_id + " on ClinicalTrials.gov"));
    li.appendChild(links);
    const site = siteLine(m);
    if (site) li.appendChild(site);
    if (m.cohort) li.appendChild(el("p", {}, "Assessed for cohort: " + m.cohort));
    const details = el("details", {});
    details.appendChild(el("summary", {}, "Reasons per criterion (" + m.criteria.length + ")"));
    const ul = el("ul", { class: "criteria" });
    m.criteria.forEach((c) => ul.appendChild(criterionItem(c)));
    details.appendChild(ul);
    li.appendChild(details);
    li.appendChild(contactAction(m));
    return li;
  }

  function renderMatches(matches) {
    const likely = matches.filter((m) => m.label !== "ineligible");
    const unlikely = matches.filter((m) => m.label === "ineligible");
    matchesEl.replaceChildren(...likely.map(matchItem));
    ineligibleEl.replaceChildren(...unlikely.map(matchItem));
    ineligibleSection.hidden = unlikely.length === 0;
    ineligibleSummary.textContent = "Show trials the patient may not qualify for (" + unlikely.length + ")";
    return { likely: likely.length, unlikely: unlikely.length };
  }

  // The profile the API extracted from the whole conversation, one fact per line (so a misreading is visible).
  function profileFacts(p) {
    const facts = [];
    const ctx = (f) => ["negated", "historical", "family", "hypothetical", "uncertain"].filter((k) => f[k]);
    const notes = (f) => { const c = ctx(f); return c.length ? " (" + c.join(", ").replace("negated", "no") + ")" : ""; };
    if (p.age !== null && p.age !== undefined) facts.push(["age", "Age: " + p.age]);
    else if (p.age_range) facts.push(["age", "Age: " + p.age_range[0] + "–" + p.age_range[1]]);
    if (p.sex) facts.push(["sex", "Sex: " + p.sex]);
    (p.conditions || []).forEach((c) => facts.push(["condition",
      "Condition: " + c.concept + (c.qualifier ? " " + c.qualifier : "") + notes(c)]));
    (p.labs || []).forEach((l) => facts.push(["lab", "Test: " + l.name + " " + (l.comparator && l.comparator !== "="
      ? l.comparator + " " : "") + (l.value !== null && l.value !== undefined ? l.value : "") +
      (l.unit ? " " + l.unit : "") + (l.polarity ? " " + l.polarity : "") + (l.negated ? " (no)" : "")]));
    (p.therapies || []).forEach((t) => facts.push(["therapy", "Treatment: " + t.name +
      (t.response ? " (" + t.response + ")" : "") + notes(t)]));
    (p.therapy_counts || []).forEach((c) => facts.push(["therapy_count", "Number of " + c["class"] + " treatments: " +
      c.count]));
    return facts;
  }

  function renderProfile(p) {
    const facts = p ? profileFacts(p) : [];
    document.getElementById("profile").replaceChildren(...facts.map(([kind, text]) =>
      el("li", { "data-fact": kind }, text)));
    document.getElementById("profile-panel").hidden = facts.length === 0;
  }

  function showNotice(text) {
    noticeEl.hidden = !text;
    noticeEl.textContent = text || "";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || loading) return;
    let near;
    try {
      near = nearFilter();
    } catch (err) {
      statusEl.textContent = "Sorry: " + err.message;
      return;
    }
    sendBtn.disabled = true;
    statusEl.textContent = "Searching trials…";
    addMessage("user", text);
    input.value = "";
    try {
      const id = await ensureSession();
      const body = { text, top_k: TOP_K };
      if (near) body.filters = { near };
      const data = await call("POST", "/sessions/" + id + "/messages", body);
      lastNear = near;
      addMessage("assistant", data.reply);
      const shown = renderMatches(data.matches);
      renderProfile(data.profile);
      showNotice(data.notice || (data.matches.length ? null : "No relevant recruiting trial found" +
        (near ? " within " + near.radius_km + " km of this location." : " for what was described.")));
      if (data.next_question) {
        questionEl.hidden = false;
        questionEl.textContent = "Follow-up question: " + data.next_question.text;
      } else {
        questionEl.hidden = true;
      }
      statusEl.textContent = shown.likely + " trials shown" + (shown.unlikely
        ? "; " + shown.unlikely + " more the patient may not qualify for." : ".");
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
    renderMatches([]);
    renderProfile(null);
    showNotice(null);
    questionEl.hidden = true;
    statusEl.textContent = "Session ended; its data was deleted.";
  });

  // Town lookup (offline: towns with trial sites, from /places); choosing a town fills in its coordinates.
  function placeText(p) {
    return [p.city, p.state, p.country].filter(Boolean).join(", ");
  }

  let placeTimer = null;
  placeEl.addEventListener("input", () => {
    const chosen = placeOptions.get(placeEl.value);
    if (chosen) {
      latEl.value = String(chosen.lat);
      lonEl.value = String(chosen.lon);
      return;
    }
    clearTimeout(placeTimer);
    const q = placeEl.value.trim();
    if (q.length < 2) return;
    placeTimer = setTimeout(async () => {
      try {
        const data = await call("GET", "/places?q=" + encodeURIComponent(q));
        placeOptions = new Map(data.places.map((p) => [placeText(p), p]));
        placesEl.replaceChildren(...data.places.map((p) => el("option", { value: placeText(p) })));
        document.getElementById("place-hint").textContent = data.places.length
          ? "Choose a town to fill in its coordinates." : "No trial site in a town of that name; give coordinates.";
      } catch (err) {
        document.getElementById("place-hint").textContent = "Town lookup failed: " + err.message;
      }
    }, 250);
  });

  waitUntilReady();
})();
