// The dial plan editor: line numbers, problems at their lines, diff, dry run,
// publish and roll back, all through the admin API's handlers.
"use strict";
(() => {
  const { call, el } = window.yht;
  const plan = document.getElementById("plan");
  const gutter = document.getElementById("gutter");
  const result = document.getElementById("result");
  const problemsList = document.getElementById("problems");
  const diffOut = document.getElementById("diff-out");
  let badLines = new Map();

  function drawGutter() {
    const count = plan.value.split("\n").length;
    gutter.replaceChildren();
    for (let n = 1; n <= count; n++) {
      const span = el("span", n, { "data-line": n });
      if (badLines.has(n)) {
        span.className = "bad";
        span.title = badLines.get(n).join("\n");
      }
      gutter.append(span);
    }
    gutter.scrollTop = plan.scrollTop;
  }

  function say(text, good) {
    result.textContent = text;
    result.className = "result " + (good ? "ok" : "error");
  }

  // "dialplan.yaml:57:18: undefined desk ..." -> {line, column, message}
  function parseProblem(text) {
    const m = /^[^:]*:(\d+):(\d+): (.*)$/s.exec(text);
    return m ? { line: +m[1], column: +m[2], message: m[3] } : { line: null, message: text };
  }

  function goTo(line, column) {
    const lines = plan.value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    plan.focus();
    plan.setSelectionRange(offset + Math.max(0, (column || 1) - 1), offset + (lines[line - 1] || "").length);
    const height = plan.scrollHeight / Math.max(1, lines.length);
    plan.scrollTop = Math.max(0, (line - 5) * height);
  }

  function showProblems(problems) {
    badLines = new Map();
    problemsList.replaceChildren();
    for (const text of problems || []) {
      const p = parseProblem(text);
      const item = el("li", p.line ? `line ${p.line}, column ${p.column}: ${p.message}` : p.message);
      if (p.line) {
        item.dataset.line = p.line;
        if (!badLines.has(p.line)) badLines.set(p.line, []);
        badLines.get(p.line).push(p.message);
        item.addEventListener("click", () => goTo(p.line, p.column));
      }
      problemsList.append(item);
    }
    drawGutter();
  }

  function refused(response) {
    const d = response.data || {};
    const problems = (d.details && d.details.problems) || [];
    showProblems(problems);
    say(d.message || `refused (${response.status})`, false);
  }

  async function check() {
    const r = await call("POST", "/dialplans/validate", plan.value, "application/yaml");
    if (r.ok) {
      showProblems([]);
      const notes = (r.data.notes || []).length;
      say(`valid: ${r.data.summary}${notes ? `; ${notes} note(s)` : ""}`, true);
    } else refused(r);
  }

  async function diff() {
    const r = await call("POST", "/dialplans/diff", plan.value, "application/yaml");
    if (!r.ok) return refused(r);
    showProblems(r.data.problems);
    diffOut.hidden = false;
    diffOut.textContent = r.data.changed ? r.data.diff : "no change against the live plan";
    say(r.data.valid ? `diff against live version ${r.data.live}` : "the plan has problems (see below)", r.data.valid);
  }

  async function publish() {
    const r = await call("POST", "/dialplans", plan.value, "application/yaml");
    if (!r.ok) return refused(r);
    showProblems([]);
    const v = r.data.version;
    say(r.data.created ? `published: version ${v.number} is live` : `already live as version ${v.number}`, true);
    setTimeout(() => window.location.reload(), 1500);
  }

  async function rollback(to) {
    if (!window.confirm(`Roll back to version ${to}? New calls will follow it.`)) return;
    const r = await call("POST", "/dialplans/rollback", JSON.stringify({ to }), "application/json");
    if (!r.ok) return refused(r);
    say(`rolled back: version ${r.data.version.number} restores ${r.data.restores}`, true);
    setTimeout(() => window.location.reload(), 1500);
  }

  async function simulate(event) {
    event.preventDefault();
    const out = document.getElementById("sim-out");
    const body = {
      keys: document.getElementById("keys").value.trim(),
      caller: document.getElementById("caller").value.trim(),
      text: plan.value,
    };
    const r = await call("POST", "/dialplans/simulate", JSON.stringify(body), "application/json");
    out.replaceChildren();
    if (!r.ok) return refused(r);
    for (const line of r.data.lines) out.append(el("li", line));
  }

  plan.addEventListener("input", drawGutter);
  plan.addEventListener("scroll", () => { gutter.scrollTop = plan.scrollTop; });
  document.getElementById("check").addEventListener("click", check);
  document.getElementById("diff").addEventListener("click", diff);
  const publishButton = document.getElementById("publish");
  if (publishButton) publishButton.addEventListener("click", publish);
  document.getElementById("simulate").addEventListener("submit", simulate);
  for (const button of document.querySelectorAll("button.rollback")) {
    button.addEventListener("click", () => rollback(+button.dataset.to));
  }
  drawGutter();
})();
