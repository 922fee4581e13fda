// Ticket search through the tickets API (filters in a POST body: a caller's
// number never goes in an address). Numbers come masked for agents.
"use strict";
(() => {
  const { call, el } = window.yht;
  const form = document.getElementById("search");
  const rows = document.getElementById("ticket-rows");
  const result = document.getElementById("search-result");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const [name, value] of new FormData(form).entries()) {
      if (value !== "") body[name] = value;
    }
    const r = await call("POST", "/tickets/search", JSON.stringify(body), "application/json");
    rows.replaceChildren();
    if (!r.ok) {
      result.textContent = r.data ? r.data.message : `refused (${r.status})`;
      result.className = "result error";
      return;
    }
    result.textContent = `${r.data.tickets.length} ticket(s)`;
    result.className = "result ok";
    for (const t of r.data.tickets) {
      const tr = el("tr", null, { "data-ticket": t.number });
      if (t.repeat_of) tr.className = "repeat";
      for (const key of ["number", "arrived_at", "caller_number", "desk", "agent", "outcome", "state", "category", "content", "repeat_of"]) {
        const value = key === "arrived_at" ? window.yht.beijing(t[key]) : t[key];
        tr.append(el("td", value ?? ""));
      }
      rows.append(tr);
    }
  });
})();
