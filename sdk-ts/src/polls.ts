// A poll kept current from the event stream: live tallies (coalesced by the server, possibly
// out of order across servers: the highest version wins), options added, the close and the
// deletion.

import type { StreamEvent } from "./events.js";
import type { Message } from "./gen/secureconnect/message/v1/message_pb.js";
import { type Poll, type PollResults, PollState } from "./gen/secureconnect/poll/v1/poll_pb.js";

/**
 * One poll as this user sees it. Feed it every stream event with `apply`; feed it the
 * poll your own `castVote` returned with `replace`, so your vote shows at once.
 *
 * ```ts
 * const view = new PollView(await sc.createPoll(id, "Lunch?", ["Pizza", "Sushi"]));
 * for await (const event of sc.eventStream()) {
 *   if (view.apply(event)) render(view.poll);
 * }
 * ```
 */
export class PollView {
  #poll: Poll;

  constructor(poll: Poll) {
    this.#poll = poll;
  }

  /** The poll as it stands. */
  get poll(): Poll {
    return this.#poll;
  }

  /** Takes a newer copy (an RPC's answer), keeping a newer tally already held. */
  replace(poll: Poll): boolean {
    if (poll.pollId !== this.#poll.pollId) return false;
    const held = this.#poll.results;
    const keep = held !== undefined && poll.results !== undefined && held.version > poll.results.version;
    this.#poll = keep ? { ...poll, results: held } : poll;
    return true;
  }

  /** Applies one event of `eventStream`; true when the poll changed. */
  apply(item: StreamEvent): boolean {
    const poll = this.#poll;
    if (item.kind === "pollTally") {
      return item.tally.pollId === poll.pollId && this.#take(item.tally.results);
    }
    if (item.kind !== "conversation" || item.event.conversationId !== poll.conversationId) {
      return false;
    }
    const change = item.event.change;
    switch (change.case) {
      case "messageSent":
      case "messageEdited": {
        const carried = pollOf(change.value);
        return carried !== undefined && carried.pollId === poll.pollId && this.replace(carried);
      }
      case "pollClosed":
        if (change.value.pollId !== poll.pollId) return false;
        this.#poll = {
          ...poll,
          state: PollState.CLOSED,
          closedTime: change.value.closedTime,
          results: change.value.results ?? poll.results,
        };
        return true;
      case "messageDeleted":
        if (change.value.messageId !== poll.messageId) return false;
        this.#poll = { ...poll, state: PollState.DELETED, options: [], results: undefined, myOptionIds: [] };
        return true;
      default:
        return false;
    }
  }

  #take(results: PollResults | undefined): boolean {
    const held = this.#poll.results;
    if (results === undefined || (held !== undefined && held.version >= results.version)) {
      return false;
    }
    this.#poll = { ...this.#poll, results };
    return true;
  }
}

/** The poll a message carries, if it is a poll message. */
export function pollOf(message: Message): Poll | undefined {
  const body = message.content?.body;
  return body?.case === "poll" ? body.value : undefined;
}
