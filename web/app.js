// The viewer page: the picture over WebRTC (WHEP) in a <video>, MJPEG in an <img> until it
// plays or when it cannot (?mjpeg=1 forces MJPEG); state and requests over the websocket
// (POST as fallback).
"use strict";
const $ = (id) => document.getElementById(id);
const img = $("stream"), video = $("live"), form = $("ask"), text = $("text"), user = $("user"), msg = $("message");
let ws = null, wsUrl = null, retry = 500, state = null, stateAt = 0, clearMsg = 0, recentKey = "", aspect = 0;
let cfg = null, rtc = null, how = "MJPEG";  // the WebRTC session while it plays; how the picture comes
const mine = new Set();  // ids of the requests this page made

user.value = localStorage.getItem("dreamstream-user") || "";

function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c])); }
function say(html, kind) {
  msg.className = kind || ""; msg.innerHTML = html;
  clearTimeout(clearMsg);
  clearMsg = setTimeout(() => { msg.innerHTML = ""; msg.className = ""; }, 8000);  // messages clear
}
function secondsLeft() { return state ? Math.max(0, Math.round(state.target.remaining_s - (Date.now() - stateAt) / 1000)) : 0; }

function fitPicture() {  // #frame takes the picture's own shape: letterboxed, never cropped
  const w = rtc ? video.videoWidth : img.naturalWidth, h = rtc ? video.videoHeight : img.naturalHeight;
  if (w && h && aspect !== w / h) { aspect = w / h; $("frame").style.setProperty("--aspect", String(aspect)); }
}

function render() {  // several times a second: the countdown runs between state pushes
  fitPicture();
  if (!state) return;
  const t = state.target || {};
  // three parts: the label and the name shrink (…) before the countdown does
  $("now").innerHTML = `<span class="label">${esc(t.label || "…")}</span>` +
    (t.user ? `<span class="who"> · asked by ${esc(t.user)}</span>` : "") +
    `<span class="left"> · ${secondsLeft()} s left</span>`;
  const q = state.queue || [];
  $("next").textContent = "next: " + (q.length ? q.slice(0, 3).map((e) => e.label + (e.votes > 1 ? " ×" + e.votes : "")).join(", ") +
    (q.length > 3 ? " …" : "") : state.next + " (from the playlist)");
  document.title = `${t.label || "dreaming"} · dreamstream`;
  // the next of this page's requests still to come first (what its asker waits for), then
  // whether one of its requests plays now
  const i = q.findIndex((e) => mine.has(e.id));
  $("yours").textContent = [i >= 0 ? `yours (${q[i].label}) plays in ~${secondsLeft() + i * state.hold_s} s` : "",
    mine.has(t.id) ? "now playing yours" : ""].filter(Boolean).join(" · ");
}

function showState(s) {
  state = s; stateAt = Date.now();
  render();
  const live = s.stream || {}, enc = live.encoder, chat = live.chat, src = s.source;
  $("stats").textContent = [`${(s.fps && s.fps.dream) || 0} dreams/s`, `${(s.fps && s.fps.output) || 0} fps`,
    `${s.viewers} watching`, `${s.model} on ${s.device}`,
    src ? `on ${src.input} (${src.state === "ended" ? "ended" : src.state === "waiting" ? "waiting for a publisher"
      : src.ok ? src.fps + " fps" : "no picture: reconnecting"})` : "",
    enc ? `stream ${enc.state}${enc.state === "live" ? " " + enc.bitrate_kbps + " kb/s" : ""}${enc.reconnects ? ", " + enc.reconnects + " reconnects" : ""}` : "",
    chat ? (chat.connected ? "chat connected" : "chat reconnecting") : "", how].filter(Boolean).join(" · ");
  const key = (s.recent || []).map((r) => r.id + (r.clip ? "+" : "")).join();
  if (key !== recentKey) {
    recentKey = key;
    const thumb = (r) => {  // a link to the dream's clip once there is one
      const img = `<img src="${esc(r.thumb)}" alt="${esc(r.label)}" loading="lazy">`;
      return r.clip ? `<a href="${esc(r.clip)}" target="_blank" rel="noopener" title="play the clip">${img}</a>` : img;
    };
    $("recent").innerHTML = (s.recent || []).map((r) => `<figure>${thumb(r)}` +
      `<figcaption>${esc(r.label)}${r.user ? " · " + esc(r.user) : ""}</figcaption></figure>`).join("");
  }
}

function showReply(r) {
  if (r.type === "ack") {
    mine.add(r.id);
    const also = (r.also || []).map((s) => `<button type="button" data-s="${esc(s)}">${esc(s)}</button>`).join("");
    // a group ("dog": 118 breeds) is said as one, never as a list no one reads
    const n = (r.target.classes || []).length, one = !r.target.label.includes(" + ");
    const kinds = one && n > 1 ? ` (${n} kinds)` : "";
    const what = `<b>${esc(r.target.label)}</b>${kinds}`;
    say((r.position === 0 ? `dreaming ${what} now` : `${what} is number ${r.position} in the queue`) +
        (also ? " — or " + also : ""), "ok");
    render();
  } else if (r.type === "error") {
    const sugg = (r.suggestions || []).map((s) => `<button type="button" data-s="${esc(s)}">${esc(s)}</button>`).join("");
    say(esc(r.message) + (sugg ? " — try " + sugg : ""), "error");
  } else if (r.type === "state") {
    showState(r);
  }
}

msg.addEventListener("click", (e) => {
  const s = e.target.dataset && e.target.dataset.s;
  if (s) { text.value = s; form.requestSubmit(); }
});

let lost = false;  // the server went away: its MJPEG ended too
function connect() {
  ws = new WebSocket(wsUrl);
  ws.onopen = () => {
    retry = 500;
    // an MJPEG that ends cleanly fires no "error" (the <img> just keeps its last picture):
    // the server being back is the moment to ask for the stream again
    if (lost) { lost = false; img.src = "/stream.mjpg?t=" + Date.now(); tryWebRTC(); }
  };
  ws.onmessage = (e) => { try { showReply(JSON.parse(e.data)); } catch (_) { /* ignore non-JSON */ } };
  ws.onclose = () => {
    ws = null;
    lost = true;
    if (rtc) toMjpeg("MJPEG");  // the server went away: MJPEG waits for it, WebRTC is asked for again
    state = null;  // nothing to count down until the server is back
    $("now").textContent = "reconnecting…";
    // what was live a moment ago is not: no rates, no viewers, no "next" until the server is back
    $("next").textContent = ""; $("stats").textContent = "server unreachable: reconnecting"; $("yours").textContent = "";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 8000);
  };
}

// WebRTC once it paints a frame (MJPEG stops then: one stream a viewer); back to MJPEG when
// its connection fails or the server goes away, and WebRTC again when the server is back.
async function tryWebRTC() {
  if (rtc || !cfg || !cfg.webrtc || !window.RTCPeerConnection || new URLSearchParams(location.search).get("mjpeg") === "1") return;
  try {
    const session = await playWebRTC(video);
    if (lost) { session.stop(); return; }  // the server went away meanwhile
    rtc = session;
    video.hidden = false; img.hidden = true; img.removeAttribute("src");
    how = "WebRTC";
    rtc.pc.addEventListener("connectionstatechange", () => {
      if (rtc && rtc.pc === session.pc && ["failed", "closed"].includes(session.pc.connectionState)) toMjpeg("MJPEG (WebRTC lost)");
    });
  } catch (_) {
    how = "MJPEG (WebRTC unavailable)";
  }
}
function toMjpeg(why) {
  if (rtc) { rtc.stop(); rtc = null; }
  video.hidden = true; video.srcObject = null;
  img.hidden = false; img.src = "/stream.mjpg?t=" + Date.now();
  how = why;
}

async function start() {
  try {
    cfg = await (await fetch("/config.json")).json();
    tryWebRTC();
    if (!aspect && cfg.size) $("frame").style.setProperty("--aspect", String(cfg.size[0] / cfg.size[1]));  // until the first frame
    wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:${cfg.ws_port}${cfg.ws_path || "/"}`;
    connect();
  } catch (_) {
    setTimeout(start, 2000);  // the server is restarting
  }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {type: "request", text: text.value, user: user.value || undefined};
  localStorage.setItem("dreamstream-user", user.value);
  if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(body)); return; }
  try {
    const r = await fetch("/api/request", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    showReply(await r.json());
  } catch (_) { say("the server is not answering; retrying in the background", "error"); }
});

let lookup = 0;
text.addEventListener("input", () => {
  clearTimeout(lookup);
  lookup = setTimeout(async () => {
    const q = text.value.split("+").pop().trim();
    if (q.length < 2) return;
    try {
      const r = await (await fetch("/api/classes?q=" + encodeURIComponent(q))).json();
      const prefix = text.value.includes("+") ? text.value.slice(0, text.value.lastIndexOf("+") + 1) + " " : "";
      $("suggestions").innerHTML = (r.suggestions || []).map((s) => `<option value="${esc(prefix + s)}">`).join("");
    } catch (_) { /* autocomplete is a nicety */ }
  }, 200);
});

// The class list: loaded once when opened, filtered as you type, a click asks for it.
let classes = null;
$("catalogue").addEventListener("toggle", async () => {
  if (!$("catalogue").open || classes) return;
  classes = (await (await fetch("/api/classes?all=1")).json()).classes || [];
  showClasses();
});
function showClasses() {
  const f = $("filter").value.trim().toLowerCase();
  $("classlist").innerHTML = classes.filter((c) => !f || c.toLowerCase().includes(f)).slice(0, 400)
    .map((c) => `<li data-c="${esc(c)}">${esc(c)}</li>`).join("");
}
$("filter").addEventListener("input", () => classes && showClasses());
$("classlist").addEventListener("click", (e) => {
  const c = e.target.dataset && e.target.dataset.c;
  if (c) { text.value = c; form.requestSubmit(); }  // a click asks for it
});

// MJPEG: if the stream breaks (a reset, not a clean end), reload it after a pause.
img.addEventListener("error", () => setTimeout(() => { if (!rtc) img.src = "/stream.mjpg?t=" + Date.now(); }, 1500));
function toggleFullscreen() {
  const el = $("stage");
  if (document.fullscreenElement) document.exitFullscreen();
  else if (el.requestFullscreen) el.requestFullscreen();
  else if (img.webkitEnterFullscreen) img.webkitEnterFullscreen();
}
$("fullscreen").addEventListener("click", toggleFullscreen);
document.addEventListener("keydown", (e) => {
  if (e.key === "f" && !["INPUT", "TEXTAREA"].includes(document.activeElement.tagName)) toggleFullscreen();
});
setInterval(render, 250);

start();
