// The event stream as an app wants it: every event once, in order, across dropped
// connections and server restarts. It reconnects with jittered backoff from the last
// cursor, drops anything already delivered, reports `gap`, and ends with an error only
// when going on cannot help (the session ended, the cursor is not one of ours).

import { Code, type Client } from "@connectrpc/connect";
import { SecureConnectError, SessionEndedError } from "./errors.js";
import {
  type CallUpdated,
  ClosingReason,
  type ConversationEvent,
  type EventService,
  type PollTally,
  type Typing,
  type UserEvent,
} from "./gen/secureconnect/event/v1/event_pb.js";

/** What the stream yields, with the cursor to store once it is handled. */
export type StreamEvent =
  | { kind: "conversation"; event: ConversationEvent; cursor: string }
  | { kind: "user"; event: UserEvent; cursor: string }
  | { kind: "typing"; typing: Typing; cursor: string }
  /** A poll's tally changed (never replayed: a replayed poll message carries the current one). */
  | { kind: "pollTally"; tally: PollTally; cursor: string }
  /**
   * A call changed (never replayed): ring while it shows this user ringing, stop when it
   * no longer does. A call starts as a call message (`conversation` event).
   */
  | { kind: "callUpdated"; update: CallUpdated; cursor: string }
  /** Events were missed and cannot be replayed: re-read the conversations. */
  | { kind: "gap"; cursor: string }
  /** What follows is live (once per connection, so again after a reconnect). */
  | { kind: "caughtUp"; cursor: string };

/**
 * A stream silent this long is taken for dead and replaced: servers send heartbeats (every
 * 15 s by default), and a connection a network change left hanging sends nothing at all.
 */
export const IDLE_TIMEOUT_MS = 45_000;
const FIRST_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 15_000;

/** Errors after which reconnecting cannot help. */
const FINAL = new Set([
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.InvalidArgument,
  Code.NotFound,
  Code.Unimplemented,
  Code.FailedPrecondition,
]);

/** Exponential backoff with jitter (half to all of the step). */
export function backoffMs(failures: number): number {
  const ceiling = Math.min(FIRST_BACKOFF_MS * 2 ** Math.min(failures, 16), MAX_BACKOFF_MS);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export async function* resumingStream(
  events: Client<typeof EventService>,
  startCursor: string,
  signal?: AbortSignal,
  idleTimeoutMs = IDLE_TIMEOUT_MS,
): AsyncGenerator<StreamEvent> {
  let cursor = startCursor;
  let failures = 0;
  const delivered = new Map<string, bigint>();
  while (!signal?.aborted) {
    if (failures > 0) {
      await sleep(backoffMs(failures), signal);
    }
    // This connection ends when the caller stops, when it goes silent, or when the device
    // comes back online (a browser's `online` event: the old connection may be hanging).
    const connection = new AbortController();
    const stop = () => connection.abort();
    let cameOnline = false;
    const online = () => {
      cameOnline = true;
      connection.abort();
    };
    signal?.addEventListener("abort", stop);
    globalThis.addEventListener?.("online", online);
    let idle = setTimeout(stop, idleTimeoutMs);
    try {
      for await (const item of events.subscribe({ cursor }, { signal: connection.signal })) {
        clearTimeout(idle);
        idle = setTimeout(stop, idleTimeoutMs);
        failures = 0;
        const previous = cursor;
        if (item.cursor !== "") {
          cursor = item.cursor;
        }
        const event = item.event;
        switch (event.case) {
          case "conversationEvent": {
            const last = delivered.get(event.value.conversationId) ?? 0n;
            if (event.value.seq <= last) {
              continue; // Delivered already (a resume that overlapped).
            }
            delivered.set(event.value.conversationId, event.value.seq);
            yield { kind: "conversation", event: event.value, cursor };
            break;
          }
          case "userEvent":
            yield { kind: "user", event: event.value, cursor };
            break;
          case "typing":
            cursor = previous; // Ephemeral: never moves the cursor.
            yield { kind: "typing", typing: event.value, cursor };
            break;
          case "pollTally":
            cursor = previous;
            yield { kind: "pollTally", tally: event.value, cursor };
            break;
          case "callUpdated":
            cursor = previous;
            yield { kind: "callUpdated", update: event.value, cursor };
            break;
          case "gap":
            yield { kind: "gap", cursor };
            break;
          case "caughtUp":
            yield { kind: "caughtUp", cursor };
            break;
          case "closing":
            if (event.value.reason === ClosingReason.SESSION_ENDED) {
              throw new SessionEndedError();
            }
            break; // Slow consumer or shutdown: resume from the cursor.
          default:
            break; // Heartbeats, and kinds newer than this SDK.
        }
      }
      failures += 1; // Ended without `closing` (a proxy, a dead node): resume.
    } catch (thrown) {
      if (thrown instanceof SessionEndedError || signal?.aborted) {
        throw thrown;
      }
      if (connection.signal.aborted) {
        failures = cameOnline ? 0 : failures + 1; // Back online: reconnect at once.
        continue;
      }
      const error = SecureConnectError.from(thrown);
      if (FINAL.has(error.code)) {
        throw error;
      }
      failures += 1;
    } finally {
      clearTimeout(idle);
      signal?.removeEventListener("abort", stop);
      globalThis.removeEventListener?.("online", online);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
