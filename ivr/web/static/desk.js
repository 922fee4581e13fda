// The agent desktop: state and moves, the call with the caller's history,
// the ticket form and the warm transfer. Polls /ui/api/desk every second.
"use strict";
(() => {
  const { call, el } = window.yht;
  const panel = document.getElementById("call-panel");
  if (!panel) return;
  let shown = null; // the call on screen; it stays after hang-up for the form
  let categoriesLoaded = false;

  function say(id, text, good) {
    const node = document.getElementById(id);
    node.textContent = text;
    node.className = "result " + (good ? "ok" : "error");
  }

  async function loadCategories() {
    if (categoriesLoaded) return;
    const r = await call("GET", "/tickets/catalog");
    if (!r.ok) return;
    const select = document.getElementById("category");
    select.replaceChildren(...r.data.categories.map((c) => el("option", c.name, { value: c.id })));
    categoriesLoaded = true;
  }

  async function showHistory(ticket) {
    const body = document.getElementById("history");
    body.replaceChildren();
    const r = await call("GET", `/tickets/${encodeURIComponent(ticket)}/history`);
    if (!r.ok) {
      document.getElementById("history-summary").textContent = (r.data && r.data.message) || "no history";
      return;
    }
    const rows = r.data.tickets;
    document.getElementById("history-summary").textContent = rows.length
      ? `${rows.length} earlier ticket(s): a repeat caller`
      : "no earlier tickets";
    for (const t of rows) {
      const tr = el("tr", null, { "data-ticket": t.number });
      if (t.repeat_of) tr.className = "repeat";
      for (const text of [t.number, window.yht.beijing(t.arrived_at), t.desk, t.category, t.content, t.state || t.outcome]) {
        tr.append(el("td", text ?? ""));
      }
      tr.append(el("td", t.repeat_of ? `repeat of ${t.repeat_of}` : ""));
      body.append(tr);
    }
  }

  function showCall(c) {
    panel.hidden = false;
    const live = document.getElementById("call-live");
    if (!c) {
      live.textContent = "ended";
      live.className = "badge ended";
      return;
    }
    live.textContent = "on the line";
    live.className = "badge";
    // The repeat link may come a moment after the call: follow it each poll.
    document.getElementById("call-repeat").hidden = !c.repeat_of;
    if (shown && shown.id === c.id) return;
    shown = c;
    document.getElementById("call-caller").textContent = c.caller;
    document.getElementById("call-name").textContent = c.name;
    document.getElementById("call-desk").textContent = c.desk;
    document.getElementById("call-ticket").textContent = c.ticket;
    document.getElementById("ticket-form").reset();
    document.getElementById("ticket-result").textContent = "";
    document.getElementById("transfer-result").textContent = "";
    loadCategories();
    showHistory(c.ticket);
  }

  async function poll() {
    const r = await call("GET", "/desk");
    if (r.ok) {
      const a = r.data.agent;
      document.getElementById("agent-status").textContent = a.status;
      document.getElementById("agent-detail").textContent = [
        a.pause_reason ? `reason: ${a.pause_reason}` : "",
        a.wrapup_left ? `wrap-up ${a.wrapup_left} s` : "",
        a.desks && a.desks.length ? `desks: ${a.desks.join(", ")}` : "",
      ].filter(Boolean).join(" · ");
      document.getElementById("phone-queue").textContent = a.phone === "web"
        ? `this browser (web-${a.agent})` : `the SIP phone (${a.agent})`;
      if (r.data.call || shown) showCall(r.data.call);
    }
    setTimeout(poll, 1000);
  }

  for (const button of document.querySelectorAll("button[data-move]")) {
    button.addEventListener("click", async () => {
      const move = button.dataset.move;
      const body = move === "pause" ? { reason: document.getElementById("pause-reason").value } : {};
      const r = await call("POST", `/desk/${move}`, JSON.stringify(body), "application/json");
      say("desk-result", r.ok ? `${move}: now ${r.data.status}` : (r.data ? r.data.message : `refused (${r.status})`), r.ok);
    });
  }

  // Queue calls on the browser phone or back on the SIP phone.
  for (const button of document.querySelectorAll("button[data-phone]")) {
    button.addEventListener("click", async () => {
      const body = JSON.stringify({ phone: button.dataset.phone });
      const r = await call("POST", "/desk/phone", body, "application/json");
      say("phone-result", r.ok
        ? `queue calls now ring ${r.data.phone === "web" ? "this browser" : "the SIP phone"}`
        : (r.data ? r.data.message : `refused (${r.status})`), r.ok);
    });
  }

  async function transfer(body) {
    if (!shown) return;
    const r = await call("POST", `/calls/${encodeURIComponent(shown.id)}/transfer`, JSON.stringify(body), "application/json");
    say("transfer-result", r.ok ? `transfer: ${r.data.state || body.action}` : (r.data ? r.data.message : `refused (${r.status})`), r.ok);
  }
  for (const button of document.querySelectorAll("button.transfer-start")) {
    button.addEventListener("click", () => transfer({ target: button.dataset.target, action: "start" }));
  }
  for (const button of document.querySelectorAll("button.transfer-step")) {
    button.addEventListener("click", () => transfer({ action: button.dataset.action }));
  }

  document.getElementById("ticket-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!shown) return;
    const body = {
      category: document.getElementById("category").value,
      content: document.getElementById("content").value,
      address: document.getElementById("address").value,
    };
    const r = await call("POST", `/tickets/${encodeURIComponent(shown.ticket)}/actions/accept`, JSON.stringify(body), "application/json");
    say("ticket-result", r.ok ? `ticket ${shown.ticket} saved: ${r.data.state}` : (r.data ? r.data.message : `refused (${r.status})`), r.ok);
  });
  poll();
})();
