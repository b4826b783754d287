// The viewer page: MJPEG in an <img>, state and requests over the websocket (POST as fallback).
"use strict";
const $ = (id) => document.getElementById(id);
const img = $("stream"), form = $("ask"), text = $("text"), user = $("user"), msg = $("message");
let ws = null, wsUrl = null, retry = 500;

user.value = localStorage.getItem("dreamstream-user") || "";

function say(html, kind) { msg.className = kind || ""; msg.innerHTML = html; }
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c])); }

function showState(s) {
  const t = s.target || {};
  $("now").textContent = "dreaming: " + (t.label || "…") + (t.user ? "  (asked by " + t.user + ")" : "");
  const q = (s.queue || []).map((e) => e.label + (e.votes > 1 ? " ×" + e.votes : ""));
  $("next").textContent = q.length ? "next: " + q.slice(0, 5).join(", ") + (q.length > 5 ? " …" : "") : "next: the playlist";
  $("stats").textContent = `${(s.fps && s.fps.dream) || 0} fps · ${s.viewers} watching · ${s.model} on ${s.device}`;
}

function showReply(r) {
  if (r.type === "ack") {
    say(r.position === 0 ? `dreaming <b>${esc(r.target.label)}</b> now` :
        `<b>${esc(r.target.label)}</b> is number ${r.position} in the queue`, "ok");
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

function connect() {
  ws = new WebSocket(wsUrl);
  ws.onopen = () => { retry = 500; };
  ws.onmessage = (e) => { try { showReply(JSON.parse(e.data)); } catch (_) { /* ignore non-JSON */ } };
  ws.onclose = () => {
    ws = null;
    $("now").textContent = "reconnecting…";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 8000);
  };
}

async function start() {
  try {
    const cfg = await (await fetch("/config.json")).json();
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
  }, 150);
});

// MJPEG: if the stream breaks (server restart), reload it after a pause.
img.addEventListener("error", () => setTimeout(() => { img.src = "/stream.mjpg?t=" + Date.now(); }, 1500));
$("fullscreen").addEventListener("click", () => {
  const el = $("stage");
  if (document.fullscreenElement) document.exitFullscreen();
  else if (el.requestFullscreen) el.requestFullscreen();
  else if (img.webkitEnterFullscreen) img.webkitEnterFullscreen();
});

start();
