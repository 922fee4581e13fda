// Agents: live states every two seconds; supervisors log agents in and out,
// pause and unpause them through the admin API's agent route.
"use strict";
(() => {
  const { call } = window.yht;
  const result = document.getElementById("agents-result");

  async function refresh() {
    const r = await call("GET", "/status/agents");
    if (r.ok) {
      for (const a of r.data.agents) {
        const row = document.querySelector(`tr[data-agent="${CSS.escape(a.agent)}"]`);
        if (!row) continue;
        row.querySelector(".status").textContent = a.status + (a.pause_reason ? ` (${a.pause_reason})` : "");
        row.querySelector(".agent-desks").textContent = (a.desks || []).join(", ");
      }
    }
    setTimeout(refresh, 2000);
  }

  for (const button of document.querySelectorAll("tr[data-agent] button[data-action]")) {
    button.addEventListener("click", async () => {
      const row = button.closest("tr");
      const action = button.dataset.action;
      const body = action === "pause" ? { reason: row.querySelector(".reason").value } : {};
      const r = await call("POST", `/agents/${row.dataset.agent}/${action}`, JSON.stringify(body), "application/json");
      result.textContent = r.ok ? `${row.dataset.agent}: ${action} → ${r.data.status}` : (r.data ? r.data.message : `refused (${r.status})`);
      result.className = "result " + (r.ok ? "ok" : "error");
      if (r.ok) row.querySelector(".status").textContent = r.data.status + (r.data.pause_reason ? ` (${r.data.pause_reason})` : "");
    });
  }
  refresh();
})();
