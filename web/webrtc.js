// WebRTC through WHEP (POST /whep): the page's player. Resolves with the session once a frame
// has been painted; rejects when there is none within `timeoutMs` (no UDP, no /whep, no H.264).
"use strict";
async function playWebRTC(video, timeoutMs = 6000) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  let peer = null;
  const stop = () => {
    pc.close();
    if (peer) fetch(peer, {method: "DELETE", keepalive: true}).catch(() => {});
  };
  try {
    pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {  // no trickle ICE: every candidate goes in the offer
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
      setTimeout(resolve, 2000);
    });
    const r = await fetch("/whep", {method: "POST", headers: {"Content-Type": "application/sdp"},
                                    body: pc.localDescription.sdp});
    if (r.status !== 201) throw new Error(`/whep answered ${r.status}`);
    peer = r.headers.get("Location");
    await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
    await new Promise((resolve, reject) => {
      const late = setTimeout(() => reject(new Error("no picture")), timeoutMs);
      const painted = () => { clearTimeout(late); resolve(); };
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(painted);
      else video.addEventListener("playing", painted, {once: true});
      video.play().catch(() => {});
    });
  } catch (e) {
    stop();
    throw e;
  }
  return {pc, stop};
}
