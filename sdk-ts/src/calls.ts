// A call's media in the browser: one RTCPeerConnection to the server's SFU, wired to the
// call's signaling (WatchCall for the SFU's offers and the call's changes, SendSignal for
// this side's SDP), with the others' media as one MediaStream per participant.
//
// Negotiation runs one step at a time. Both sides may offer: this side to publish more or
// less (a screen share), the SFU to send others' tracks. When they cross, this side's
// offer wins: the SFU's answer says which of its offers are void (`voidUpTo`), and the SFU
// offers again after.

import type { Client } from "@connectrpc/connect";
import { SecureConnectError } from "./errors.js";
import {
  type Call,
  CallClosingReason,
  CallMedia,
  type CallParticipant,
  type CallService,
  type IceServer,
  ParticipantState,
} from "./gen/secureconnect/call/v1/call_pb.js";

/** What the others send, by participant. */
export interface RemoteParticipant {
  userId: string;
  /** Their microphone and camera. */
  stream: MediaStream;
  /** Their other streams: a screen share, while they share one. */
  screens: MediaStream[];
  /** As the call last showed them (mute state included). */
  participant: CallParticipant | undefined;
}

export interface CallOptions {
  /** What to send (from `getUserMedia`): its audio and video tracks are published. */
  localStream: MediaStream;
  /** Called after every change: the call, the others' media, who speaks. */
  onChange?: (call: CallHandle) => void;
}

/** A call this device is in, with its media connection. */
export interface CallHandle {
  readonly callId: string;
  /** The call as last seen (participants, states, mute states). */
  readonly call: Call;
  /** The others' media, by user id (only those whose tracks arrived). */
  readonly remote: ReadonlyMap<string, RemoteParticipant>;
  /** The user whose voice is loudest now, if anyone's. */
  readonly activeSpeaker: string | undefined;
  /** The connection itself (for `getStats()`). */
  readonly peer: RTCPeerConnection;
  /** Resolves when the call is over for this device, with why (see `CallClosingReason`). */
  readonly closed: Promise<CallClosingReason>;
  /** Mutes or unmutes this side's microphone or camera (the SFU stops forwarding it). */
  setMuted(kind: "audio" | "video", muted: boolean): Promise<void>;
  /** Shares a screen (a `getDisplayMedia` stream), or stops with `undefined`. */
  shareScreen(screen: MediaStream | undefined): Promise<void>;
  /** Leaves the call (the last one out ends it). */
  leave(): Promise<void>;
}

/** Starts a call in a conversation and joins its media. */
export async function startCall(
  calls: Client<typeof CallService>,
  conversationId: string,
  video: boolean,
  options: CallOptions,
): Promise<CallHandle> {
  const started = await calls.startCall({
    conversationId,
    media: video ? CallMedia.VIDEO : CallMedia.AUDIO,
    requestId: crypto.randomUUID(),
  });
  if (started.call === undefined) {
    throw new Error("StartCall answered no call");
  }
  return connect(calls, started.call, started.iceServers, options);
}

/** Joins a call (answering it, or coming back) and connects its media. */
export async function joinCall(
  calls: Client<typeof CallService>,
  callId: string,
  options: CallOptions,
): Promise<CallHandle> {
  const joined = await calls.joinCall({ callId });
  if (joined.call === undefined) {
    throw new Error("JoinCall answered no call");
  }
  return connect(calls, joined.call, joined.iceServers, options);
}

async function connect(
  calls: Client<typeof CallService>,
  first: Call,
  iceServers: IceServer[],
  options: CallOptions,
): Promise<CallHandle> {
  const callId = first.callId;
  const peer = new RTCPeerConnection({
    iceServers: iceServers.map((s) => ({
      urls: s.urls,
      ...(s.username === "" ? {} : { username: s.username, credential: s.credential }),
    })),
  });
  const stop = new AbortController();
  const remote = new Map<string, RemoteParticipant>();
  const byStream = new Map<string, MediaStream>();
  let call = first;
  let activeSpeaker: string | undefined;
  let voidUpTo = 0n;
  let screen: { stream: MediaStream; senders: RTCRtpSender[] } | undefined;
  let media = { audioMuted: false, videoMuted: false, screenSharing: false };
  let settle: (reason: CallClosingReason) => void = () => {};
  const closed = new Promise<CallClosingReason>((resolve) => (settle = resolve));

  // Every negotiation step runs after the one before it.
  let steps: Promise<void> = Promise.resolve();
  const step = (work: () => Promise<void>) => {
    steps = steps.then(work).catch((error: unknown) => {
      console.warn("call negotiation failed", error);
    });
    return steps;
  };
  // (Not before the handle exists: nothing has changed for the app until then.)
  let ready = false;
  const changed = () => {
    if (ready) options.onChange?.(handle);
  };

  // A participant's main stream has their `streamId`; a further one (a screen share)
  // `<streamId>.<n>`.
  const refreshRemote = () => {
    remote.clear();
    const ordered = [...byStream].sort(([a], [b]) => a.length - b.length);
    for (const [streamId, stream] of ordered) {
      const [main] = streamId.split(".");
      const participant = call.participants.find((p) => p.streamId === main);
      if (participant?.state !== ParticipantState.JOINED) continue;
      const entry = remote.get(participant.userId);
      if (streamId === main) {
        remote.set(participant.userId, { userId: participant.userId, stream, screens: entry?.screens ?? [], participant });
      } else if (entry) {
        entry.screens.push(stream);
      } else {
        remote.set(participant.userId, { userId: participant.userId, stream: new MediaStream(), screens: [stream], participant });
      }
    }
  };

  peer.ontrack = (event) => {
    const stream = event.streams[0];
    if (stream === undefined) return;
    byStream.set(stream.id, stream);
    stream.onremovetrack = () => {
      if (stream.getTracks().length === 0) byStream.delete(stream.id);
      refreshRemote();
      changed();
    };
    refreshRemote();
    changed();
  };

  for (const track of options.localStream.getTracks()) {
    peer.addTransceiver(track, { direction: "sendonly", streams: [options.localStream] });
  }

  /** Sends this side's offer and applies the SFU's answer. */
  const offer = async () => {
    const description = await peer.createOffer();
    await peer.setLocalDescription(description);
    const reply = await calls.sendSignal({
      callId,
      signal: { case: "offer", value: description.sdp ?? "" },
    });
    voidUpTo = reply.voidUpTo > voidUpTo ? reply.voidUpTo : voidUpTo;
    await peer.setRemoteDescription({ type: "answer", sdp: reply.answer });
  };

  /** Answers one of the SFU's offers, unless this side's offer voided it. */
  const answer = async (offerId: bigint, sdp: string) => {
    if (offerId <= voidUpTo) return;
    await peer.setRemoteDescription({ type: "offer", sdp });
    const description = await peer.createAnswer();
    await peer.setLocalDescription(description);
    await calls.sendSignal({
      callId,
      signal: { case: "answer", value: { offerId, sdp: description.sdp ?? "" } },
    });
  };

  const finish = (reason: CallClosingReason) => {
    stop.abort();
    peer.close();
    settle(reason);
    changed();
  };

  // The watch stream first, so no offer of the SFU's goes unseen.
  const watch = calls.watchCall({ callId }, { signal: stop.signal });
  const iterator = watch[Symbol.asyncIterator]();
  const head = await iterator.next();
  if (!head.done && head.value.event.case === "call") {
    call = head.value.event.value;
  }
  void (async () => {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        const event = next.value.event;
        switch (event.case) {
          case "call":
            call = event.value;
            refreshRemote();
            changed();
            break;
          case "offer": {
            const { offerId, sdp } = event.value;
            void step(() => answer(offerId, sdp));
            break;
          }
          case "activeSpeaker":
            activeSpeaker = event.value.userId === "" ? undefined : event.value.userId;
            changed();
            break;
          case "closing":
            finish(event.value.reason);
            return;
          default:
            break;
        }
      }
      finish(CallClosingReason.UNSPECIFIED);
    } catch (error) {
      if (!stop.signal.aborted) {
        console.warn("call stream ended", SecureConnectError.from(error));
        finish(CallClosingReason.UNSPECIFIED);
      }
    }
  })();
  // The first offer connects: if it fails, so does joining (and the call is left, so the
  // others do not wait for media that never comes).
  const connecting = offer();
  steps = connecting.catch(() => {});
  try {
    await connecting;
  } catch (error) {
    await calls.leaveCall({ callId }).catch(() => undefined);
    finish(CallClosingReason.LEFT);
    throw SecureConnectError.from(error);
  }

  const sendState = async () => {
    const answer = await calls.updateMediaState({ callId, mediaState: media });
    if (answer.call !== undefined) {
      call = answer.call;
      changed();
    }
  };

  const handle: CallHandle = {
    callId,
    get call() {
      return call;
    },
    remote,
    get activeSpeaker() {
      return activeSpeaker;
    },
    peer,
    closed,
    async setMuted(kind, muted) {
      for (const track of options.localStream.getTracks()) {
        if (track.kind === kind) track.enabled = !muted;
      }
      media = kind === "audio" ? { ...media, audioMuted: muted } : { ...media, videoMuted: muted };
      await sendState();
    },
    async shareScreen(next) {
      await step(async () => {
        if (screen !== undefined) {
          for (const sender of screen.senders) peer.removeTrack(sender);
          for (const track of screen.stream.getTracks()) track.stop();
          screen = undefined;
        }
        if (next !== undefined) {
          // A stream of its own: the others get it as this participant's second stream.
          const senders = next.getVideoTracks().map((track) => peer.addTrack(track, next));
          screen = { stream: next, senders };
        }
        await offer();
      });
      media = { ...media, screenSharing: next !== undefined };
      await sendState();
    },
    async leave() {
      try {
        await calls.leaveCall({ callId });
      } finally {
        finish(CallClosingReason.LEFT);
      }
    },
  };
  ready = true;
  return handle;
}
