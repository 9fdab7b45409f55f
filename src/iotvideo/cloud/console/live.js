// Live view: a WebRTC session with the camera, signaled over the link (media.offer), as
// the app SDK's MonitorPlayer does it (docs/protocol.md, "Live media"): video recvonly,
// audio sendrecv (talk), data channels ctl and data. Media flows peer to peer.

import { LinkError } from "./link.js";

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class LiveSession extends EventTarget {
  constructor(pc, ctl, audio, answer) {
    super();
    this.pc = pc;
    this.ctl = ctl;
    this.audio = audio;
    this.answer = answer;
    this.mic = null;
    this.ended = false;
    ctl.onmessage = (message) => {
      let body;
      try {
        body = JSON.parse(message.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent(body.op, { detail: body }));
    };
    pc.addEventListener("connectionstatechange", () => {
      if (["failed", "closed"].includes(pc.connectionState)) this._end(20008);
    });
    this.addEventListener("bye", (e) => this._end(e.detail.code || 20002));
  }

  _end(code) {
    if (this.ended) return;
    this.ended = true;
    this.dispatchEvent(new CustomEvent("ended", { detail: { code } }));
  }

  /** Send a control message on ctl; resolves with the device's ``<op>.done`` answer,
   * rejects with its ``error``. */
  control(op, fields = {}) {
    return new Promise((resolve, reject) => {
      const done = (e) => {
        cleanup();
        resolve(e.detail);
      };
      const failed = (e) => {
        cleanup();
        reject(new LinkError(e.detail.code, e.detail.msg || "refused"));
      };
      const cleanup = () => {
        this.removeEventListener(`${op}.done`, done);
        this.removeEventListener("error", failed);
      };
      this.addEventListener(`${op}.done`, done);
      this.addEventListener("error", failed);
      this.ctl.send(JSON.stringify({ op, ...fields }));
    });
  }

  /** Switch resolution; resolves with {value, width, height}. */
  setDefinition(value) {
    return this.control("definition", { value });
  }

  /** Talk: the microphone goes to the camera on the negotiated audio (no renegotiation). */
  async startTalking() {
    if (this.mic) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (error) {
      throw new LinkError(21036, `the microphone is not available: ${error.message}`);
    }
    this.mic = stream.getAudioTracks()[0];
    await this.audio.sender.replaceTrack(this.mic);
  }

  async stopTalking() {
    if (!this.mic) return;
    await this.audio.sender.replaceTrack(null);
    this.mic.stop();
    this.mic = null;
  }

  close() {
    if (this.mic) this.mic.stop();
    this.mic = null;
    this.pc.close();
    this._end(0);
  }
}

/**
 * Start watching ``tid`` into ``video`` (``kind`` monitor, or playback of the memory card
 * from ``at`` ms at ``speed``; ``source`` an NVR's channel, "" the first); resolves with
 * a LiveSession. With ``trickle``
 * (the default) the offer goes out at once and the browser's ICE candidates follow with
 * media.candidate as it finds them; without it, the offer waits for all of them.
 */
export async function watch(
  link,
  tid,
  video,
  definition = "low",
  { trickle = true, kind = "monitor", at = undefined, speed = undefined, source = "" } = {},
) {
  const ice = await link.request("media.ice", { tid });
  const pc = new RTCPeerConnection({ iceServers: ice.ice_servers || [] });
  let session = null;
  const early = [];
  const send = (candidate) =>
    link.request("media.candidate", { tid, session, ...candidate }).catch((error) => {
      console.warn("candidate not taken", error);
    });
  if (trickle) {
    pc.onicecandidate = (event) => {
      const c = event.candidate;
      const candidate = c && c.candidate
        ? { candidate: c.candidate, mid: c.sdpMid, index: c.sdpMLineIndex }
        : { candidate: "", mid: pc.getTransceivers()[0]?.mid ?? "0", index: 0 };
      if (session === null) early.push(candidate);
      else send(candidate);
    };
  }
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    // Talk goes back on the live audio; a recording is only listened to.
    const audio = pc.addTransceiver("audio", {
      direction: kind === "playback" ? "recvonly" : "sendrecv",
    });
    const ctl = pc.createDataChannel("ctl");
    pc.createDataChannel("data");
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      video.srcObject = stream;
    };
    await pc.setLocalDescription(await pc.createOffer());
    if (!trickle) await gathered(pc);
    const answer = await link.request(
      "media.offer",
      { tid, sdp: pc.localDescription.sdp, kind, definition, source, ...(kind === "playback" ? { at, speed } : {}) },
      20000,
    );
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    session = answer.session;
    early.splice(0).forEach(send);
    return new LiveSession(pc, ctl, audio, answer);
  } catch (error) {
    pc.close();
    throw error;
  }
}

/** The picture on screen as a JPEG Blob, at the stream's own size. */
export function snapshot(video) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}
