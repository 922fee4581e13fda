// Prompts: list, upload, play and delete through the admin API's handlers.
"use strict";
(() => {
  const { call, el } = window.yht;
  const rows = document.getElementById("prompt-rows");
  const result = document.getElementById("prompt-result");

  function say(text, good) {
    result.textContent = text;
    result.className = "result " + (good ? "ok" : "error");
  }

  async function load() {
    const r = await call("GET", "/prompts");
    if (!r.ok) return say((r.data && r.data.message) || "cannot list prompts", false);
    rows.replaceChildren();
    for (const p of r.data.prompts) {
      const tr = el("tr");
      tr.append(el("td", p.language), el("td", p.name));
      tr.append(el("td", p.duration_ms != null ? `${(p.duration_ms / 1000).toFixed(1)} s` : ""));
      tr.append(el("td", p.used_by_live_plan ? "yes" : ""));
      const play = el("td");
      const audio = el("audio", null, { controls: "", preload: "none" });
      audio.src = `/ui/api/prompts/${encodeURIComponent(p.language)}/${encodeURIComponent(p.name)}.wav`;
      play.append(audio);
      const del = el("td");
      const button = el("button", "Delete", { type: "button" });
      button.addEventListener("click", () => remove(p));
      del.append(button);
      tr.append(play, del);
      rows.append(tr);
    }
    const holders = document.getElementById("placeholders");
    holders.replaceChildren(...r.data.placeholders.map((t) => el("li", t)));
  }

  async function remove(p) {
    if (!window.confirm(`Delete ${p.language}/${p.name}?`)) return;
    const r = await call("DELETE", `/prompts/${p.language}/${p.name}`);
    if (!r.ok) return say(r.data ? r.data.message : `refused (${r.status})`, false);
    await load();
    say(`deleted ${p.language}/${p.name}`, true);
  }

  document.getElementById("upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    if (!form.get("name")) form.delete("name");
    say("converting…", true);
    const r = await call("POST", "/prompts", form);
    if (!r.ok) return say(r.data ? r.data.message : `refused (${r.status})`, false);
    say(`uploaded ${r.data.prompt ? r.data.prompt.name : ""}`, true);
    event.target.reset();
    load();
  });
  load();
})();
