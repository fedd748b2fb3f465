// Shared by the widget (app.js) and the coordinator workspace (coordinator.js): DOM helper, labels, and the
// meaning of a verdict for the patient (an exclusion criterion that is "not met" is good news).
(function () {
  "use strict";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  const VERDICT = { met: "Met", not_met: "Not met", unknown: "Unknown", not_applicable: "Not applicable" };
  const LABEL = { eligible: "Eligible", possibly_eligible: "Possibly eligible", ineligible: "Not eligible" };
  const MEANING_TEXT = { favour: "✓ in the patient's favour", against: "✗ against the patient",
                         unknown: "? not known yet", neutral: "– does not apply" };

  // favour | against | unknown | neutral
  function meaning(kind, verdict) {
    if (verdict === "unknown") return "unknown";
    if (verdict === "not_applicable") return "neutral";
    const met = verdict === "met";
    return (kind === "exclusion" ? !met : met) ? "favour" : "against";
  }

  function labelBadge(label) {
    return el("span", { class: "label label-" + label }, LABEL[label] || label || "—");
  }

  // One criterion as a list item: kind and verdict, its meaning (colour and words), the reason.
  function criterionItem(c) {
    const m = meaning(c.kind, c.verdict);
    const item = el("li", { "data-verdict": c.verdict, "data-kind": c.kind, "data-meaning": m, class: "m-" + m });
    item.appendChild(el("span", { class: "verdict v-" + c.verdict },
      (c.kind === "exclusion" ? "Exclusion · " : "Inclusion · ") + (VERDICT[c.verdict] || c.verdict)));
    item.appendChild(el("span", { class: "meaning" }, MEANING_TEXT[m]));
    item.appendChild(el("span", { class: "reason" }, c.reason));
    return item;
  }

  function registryUrl(nctId) {
    return "https://clinicaltrials.gov/study/" + encodeURIComponent(nctId);
  }

  window.trialmatch = { el, meaning, labelBadge, criterionItem, registryUrl, LABEL, VERDICT };
})();
