// The browser softphone: JsSIP over Asterisk's WebSocket (SIP over ws), as
// endpoint web-<extension>. The server hands the session's own account over
// (POST /ui/api/desk/softphone) and the phone connects by itself; without
// one, the agent types the address and password. Either stays in this page's
// memory only.
"use strict";
(() => {
  const box = document.getElementById("phone");
  if (!box || !window.JsSIP) return;
  const extension = box.dataset.extension;
  const status = document.getElementById("phone-status");
  const answerButton = document.getElementById("phone-answer");
  const hangupButton = document.getElementById("phone-hangup");
  const audio = document.getElementById("phone-audio");
  const server = document.getElementById("phone-server");
  // Asterisk's HTTP server: the SIP port + 28 (ivr/lab.py), 5088 by default.
  server.value = `ws://${window.location.hostname}:5088/ws`;
  const passwordInput = document.getElementById("phone-password");
  const account = document.getElementById("phone-account");
  const phone = { ua: null, session: null };
  let given = null; // the password the server handed over
  window.yhtPhone = phone; // for the browser tests: the call's RTCPeerConnection

  function state(text) { status.textContent = text; }

  function attach(session) {
    phone.session = session;
    session.on("peerconnection", ({ peerconnection }) => {
      peerconnection.addEventListener("track", (event) => { audio.srcObject = event.streams[0]; });
    });
    session.on("accepted", () => state("in a call"));
    session.on("confirmed", () => state("in a call"));
    for (const name of ["ended", "failed"]) {
      session.on(name, (event) => {
        state(`registered · last call ${name}${event && event.cause ? `: ${event.cause}` : ""}`);
        answerButton.hidden = hangupButton.hidden = true;
        phone.session = null;
      });
    }
  }

  const form = document.getElementById("phone-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const password = given || passwordInput.value;
    if (!password) { state("type the SIP password"); return; }
    if (phone.ua) phone.ua.stop();
    const url = new URL(server.value);
    const ua = new window.JsSIP.UA({
      sockets: [new window.JsSIP.WebSocketInterface(server.value)],
      uri: `sip:web-${extension}@${url.hostname}`,
      password,
      register: true,
      session_timers: false,
    });
    ua.on("connecting", () => state("connecting…"));
    ua.on("registered", () => state("registered"));
    ua.on("unregistered", () => state("off"));
    ua.on("registrationFailed", (e) => state(`refused: ${e.cause}`));
    ua.on("disconnected", () => state("disconnected"));
    ua.on("newRTCSession", ({ session, originator }) => {
      if (originator !== "remote") return;
      if (phone.session) { session.terminate({ status_code: 486 }); return; }
      attach(session);
      state("ringing");
      answerButton.hidden = false;
      hangupButton.hidden = false;
    });
    phone.ua = ua;
    ua.start();
  });

  async function fetchAccount() {
    const r = await window.yht.call("POST", "/desk/softphone");
    if (!r.ok) {
      account.textContent = (r.data && r.data.message) || `no account from the server (${r.status})`;
      return;
    }
    server.value = r.data.server;
    given = r.data.password;
    document.getElementById("phone-password-label").hidden = true;
    account.textContent = `account ${r.data.user}, from the server`;
    form.requestSubmit();
  }

  answerButton.addEventListener("click", () => {
    if (!phone.session) return;
    // No STUN or TURN: Asterisk and the browser reach each other directly.
    phone.session.answer({
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [] },
    });
    answerButton.hidden = true;
  });
  hangupButton.addEventListener("click", () => {
    if (phone.session) phone.session.terminate();
  });
  // Leaving the page unregisters (best effort): app_queue then sees the
  // browser phone unavailable and passes its calls to others.
  window.addEventListener("pagehide", () => { if (phone.ua) phone.ua.stop(); });
  fetchAccount();
})();
