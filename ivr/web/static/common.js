// Shared by the pages: calls to /ui/api with the session's CSRF token.
"use strict";
window.yht = {
  csrf: () => document.body.dataset.csrf,
  async call(method, path, body, type) {
    const headers = { "X-CSRF-Token": window.yht.csrf() };
    if (type) headers["Content-Type"] = type;
    const response = await fetch("/ui/api" + path, {
      method, headers, body, credentials: "same-origin",
    });
    let data = null;
    const kind = response.headers.get("Content-Type") || "";
    if (kind.includes("json")) data = await response.json();
    return { status: response.status, ok: response.ok, data };
  },
  // A store time (ISO, UTC) as the hotline reads it: Beijing time.
  beijing(iso) {
    if (!iso) return "";
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return String(iso);
    return when.toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
  },
  // Text only: never innerHTML for anything a server or a caller sent.
  el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  },
};
