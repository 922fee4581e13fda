// The wallboard: figures per desk, the chart of the day and the latest calls,
// kept current by server-sent events (no reloads).
"use strict";
(() => {
  const { el } = window.yht;
  const status = document.getElementById("live-state");
  const initial = JSON.parse(document.getElementById("initial-state").textContent);
  let chart = null;

  const percent = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
  const format = {
    longest_wait: (v) => `${v} s`,
    answered_15s_rate: percent,
    connected_24h_rate: percent,
    abandon_rate: percent,
    satisfaction_today: (v) => (v ? `${v.average} (${v.count})` : "–"),
  };

  function pick(figures, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), figures);
  }

  function updateDesks(desks) {
    for (const card of document.querySelectorAll(".desk[data-desk]")) {
      const figures = desks[card.dataset.desk];
      if (!figures) continue;
      for (const dd of card.querySelectorAll("dd[data-figure]")) {
        const key = dd.dataset.figure;
        let value = pick(figures, key);
        if (value === undefined && key.startsWith("agents.")) value = 0;
        const text = (format[key] || String)(value);
        if (dd.textContent !== text) {
          dd.textContent = text;
          dd.classList.add("changed");
          setTimeout(() => dd.classList.remove("changed"), 1500);
        }
      }
    }
  }

  function updateRecent(rows) {
    const body = document.getElementById("recent");
    body.replaceChildren();
    for (const r of rows) {
      const tr = el("tr");
      const cells = [r.ticket, r.arrived, r.caller, r.name, r.desk, r.wait ?? "", r.outcome];
      cells.forEach((text, i) => {
        const td = el("td", text);
        if (i === 3) td.className = "caller-name";
        tr.append(td);
      });
      body.append(tr);
    }
  }

  function drawChart(hours) {
    if (!window.Chart) return;
    const labels = [...Array(24).keys()].map((h) => `${h}:00`);
    const sets = [
      ["answered", "#1a7f37"], ["abandoned", "#b3261e"], ["other", "#8a93a3"],
    ];
    if (chart) {
      sets.forEach(([key], i) => { chart.data.datasets[i].data = hours[key]; });
      chart.update("none");
      return;
    }
    chart = new window.Chart(document.getElementById("day-chart"), {
      type: "bar",
      data: {
        labels,
        datasets: sets.map(([key, color]) => ({ label: key, data: hours[key], backgroundColor: color })),
      },
      options: {
        animation: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  function apply(state) {
    updateDesks(state.desks);
    updateRecent(state.recent);
    drawChart(state.hours);
    window.yhtWallboardUpdates = (window.yhtWallboardUpdates || 0) + 1;
  }

  apply(initial);
  const source = new EventSource("/ui/wallboard/events");
  source.addEventListener("state", (event) => {
    apply(JSON.parse(event.data));
    // The hotline's day is Beijing's, whatever the browser's zone.
    const now = new Date().toLocaleTimeString("zh-CN", {timeZone: "Asia/Shanghai", hour12: false});
    status.textContent = `live · ${now} Beijing time`;
  });
  source.addEventListener("error", () => { status.textContent = "reconnecting…"; });
})();
