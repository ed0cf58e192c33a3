// Calls in the demo: a call's card in the chat (ringing, on, ended with its length, missed),
// the incoming-call banner, and the call view: a grid of videos, mute, camera, screen
// share, leave. Media goes through the server's SFU with the SDK's `startCall`/`joinCall`.

import { type CallHandle, type SecureConnect } from "@secureconnect/sdk";
import {
  type Call,
  CallEndReason,
  CallMedia,
  CallState,
  ParticipantState,
} from "@secureconnect/sdk/proto";
import { h } from "./dom.js";

/** The call a message carries, if it is a call message. */
export function callOf(body: { case: string | undefined; value?: unknown } | undefined): Call | undefined {
  return body?.case === "call" ? (body.value as Call) : undefined;
}

function seconds(call: Call): number {
  return Number(call.duration?.seconds ?? 0n);
}

/** A call in a line: what it is and where it stands. */
export function describeCall(call: Call): string {
  const kind = call.media === CallMedia.VIDEO ? "Video call" : "Voice call";
  if (call.state === CallState.RINGING) return `${kind} — ringing`;
  if (call.state === CallState.ACTIVE) return `${kind} — on now`;
  switch (call.endReason) {
    case CallEndReason.MISSED:
      return `Missed ${kind.toLowerCase()}`;
    case CallEndReason.DECLINED:
      return `${kind} — declined`;
    default: {
      const s = seconds(call);
      return `${kind} — ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    }
  }
}

/** Whether `userId` could join `call` now. */
export function joinable(call: Call, userId: string | undefined): boolean {
  if (call.state === CallState.ENDED) return false;
  const me = call.participants.find((p) => p.userId === userId);
  return me?.state !== ParticipantState.JOINED;
}

/** The camera and microphone (or only the microphone for a voice call). */
export async function localMedia(video: boolean): Promise<MediaStream> {
  return navigator.mediaDevices.getUserMedia({ audio: true, video });
}

/**
 * The call view: one tile per participant (this device's camera muted, the others' live),
 * with the controls. `closed` runs when the call is over for this device.
 */
export function callView(
  handle: CallHandle,
  local: MediaStream,
  nameOf: (userId: string) => string,
  closed: () => void,
): HTMLElement & { render(): void } {
  const grid = h("div.call-grid", { "data-testid": "call-grid" });
  const status = h("div.sub", { "data-testid": "call-status" });
  const self = h("video", { "data-testid": "local-video", autoplay: "", playsinline: "" });
  self.muted = true;
  self.srcObject = local;
  const mute = h("button.ghost", { "data-testid": "call-mute" }, "Mute");
  const camera = h("button.ghost", { "data-testid": "call-camera" }, "Camera off");
  const screen = h("button.ghost", { "data-testid": "call-screen" }, "Share screen");
  const leave = h("button", { "data-testid": "call-leave" }, "Leave");
  const view = h("section.call", { "data-testid": "call-view", "data-call": handle.callId },
    h("header", {}, h("div", {}, "Call"), status), grid,
    h("div.call-controls", {}, mute, camera, screen, leave));
  // One tile per remote stream: a participant's camera, and their screen while shared.
  const tiles = new Map<string, HTMLVideoElement>();
  let muted = false;
  let cameraOff = false;
  let sharing = false;

  const render = () => {
    const joined = handle.call.participants.filter((p) => p.state === ParticipantState.JOINED);
    status.textContent = `${describeCall(handle.call)} · ${joined.length} in the call`;
    const shown = new Set<string>();
    for (const [userId, remote] of handle.remote) {
      const streams: [MediaStream, string][] = [[remote.stream, "remote-video"], ...remote.screens.map((s): [MediaStream, string] => [s, "remote-screen"])];
      for (const [stream, testId] of streams) {
        shown.add(stream.id);
        let tile = tiles.get(stream.id);
        if (!tile) {
          tile = h("video", { "data-testid": testId, "data-user": userId, autoplay: "", playsinline: "" });
          tiles.set(stream.id, tile);
        }
        if (tile.srcObject !== stream) tile.srcObject = stream;
        const state = remote.participant?.mediaState;
        tile.title = testId === "remote-screen"
          ? `${nameOf(userId)}'s screen`
          : `${nameOf(userId)}${state?.audioMuted ? " (muted)" : ""}`;
        tile.classList.toggle("speaking", testId === "remote-video" && handle.activeSpeaker === userId);
      }
    }
    for (const [id, tile] of tiles) {
      if (!shown.has(id)) {
        tile.remove();
        tiles.delete(id);
      }
    }
    grid.replaceChildren(self, ...tiles.values());
  };
  render();

  mute.onclick = async () => {
    muted = !muted;
    mute.textContent = muted ? "Unmute" : "Mute";
    await handle.setMuted("audio", muted);
  };
  camera.onclick = async () => {
    cameraOff = !cameraOff;
    camera.textContent = cameraOff ? "Camera on" : "Camera off";
    await handle.setMuted("video", cameraOff);
  };
  screen.onclick = async () => {
    sharing = !sharing;
    screen.textContent = sharing ? "Stop sharing" : "Share screen";
    await handle.shareScreen(sharing ? await navigator.mediaDevices.getDisplayMedia({ video: true }) : undefined);
  };
  leave.onclick = () => void handle.leave();
  // For the browser suite and the console: the call this page is in (`peer.getStats()`).
  (globalThis as { secureconnectCall?: CallHandle }).secureconnectCall = handle;
  void handle.closed.then(() => {
    for (const track of local.getTracks()) track.stop();
    closed();
  });
  return Object.assign(view, { render });
}
