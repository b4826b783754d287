// /view: the picture alone; with ?overlay=1 what plays and how to ask, from the websocket's state.
"use strict";
const params = new URLSearchParams(location.search);
const picture = document.getElementById("picture"), caption = document.getElementById("caption");
const playing = document.getElementById("playing"), ask = document.getElementById("ask");
if (params.get("fit") === "cover") document.body.classList.add("cover");

// The MJPEG stream ends when the server restarts: ask for it again after a pause.
picture.addEventListener("error", () => setTimeout(() => { if (!rtc) picture.src = "/stream.mjpg?t=" + Date.now(); }, 1500));

let state = null, stateAt = 0, howToAsk = "", retry = 500, rtc = null;
const video = document.getElementById("live");

// WebRTC once it paints a frame (MJPEG stopped then); MJPEG again when it fails, and WebRTC
// asked for again a few seconds later (the server restarting, say).
async function watch() {
  try {
    const cfg = await (await fetch("/config.json")).json();
    if (!cfg.webrtc || !window.RTCPeerConnection || params.get("mjpeg") === "1") return;
    const session = await playWebRTC(video);
    rtc = session;
    video.hidden = false; picture.hidden = true; picture.removeAttribute("src");
    session.pc.addEventListener("connectionstatechange", () => {
      if (rtc === session && ["failed", "closed", "disconnected"].includes(session.pc.connectionState)) {
        session.stop(); rtc = null;
        video.hidden = true; video.srcObject = null;
        picture.hidden = false; picture.src = "/stream.mjpg?t=" + Date.now();
        setTimeout(watch, 3000);
      }
    });
  } catch (_) {
    if (!rtc) setTimeout(watch, 10000);  // MJPEG meanwhile; WebRTC may come (the server back)
  }
}
watch();

function render() {
  if (!state || !state.target) { caption.hidden = true; return; }
  const t = state.target, left = Math.max(0, Math.round(t.remaining_s - (Date.now() - stateAt) / 1000));
  playing.textContent = `${t.label}${t.user ? "  · asked by " + t.user : ""}  · ${left} s`;
  const next = (state.queue || [])[0];
  ask.textContent = [howToAsk, next ? "next: " + next.label : ""].filter(Boolean).join("  · ");
  caption.hidden = false;
}

function connect(url) {
  const ws = new WebSocket(url);
  ws.onopen = () => { retry = 500; };
  ws.onmessage = (e) => {
    try {
      const m = JSON.parse(e.data);
      if (m.type === "state") { state = m; stateAt = Date.now(); render(); }
    } catch (_) { /* not JSON: ignored */ }
  };
  ws.onclose = () => {
    state = null; render();  // nothing stale on the stream while the server is away
    setTimeout(() => connect(url), retry);
    retry = Math.min(retry * 2, 8000);
  };
}

async function start() {
  try {
    const cfg = await (await fetch("/config.json")).json();
    const local = ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
    howToAsk = cfg.ask || (local ? "" : `ask at ${location.host}`);  // [rtmp] overlay_ask, else the chat command
    connect(`${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:${cfg.ws_port}${cfg.ws_path || "/"}`);
  } catch (_) {
    setTimeout(start, 2000);  // the server is restarting
  }
}

if (params.get("overlay") === "1") {
  start();
  setInterval(render, 250);  // the countdown runs between state pushes
}
