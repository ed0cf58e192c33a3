// The SecureConnect web demo: sign up or in, conversations with unread counts and presence,
// a live chat with typing indicators, new direct chats and groups, polls with live bars, file attachments with
// thumbnails, a drive, and voice and video calls. It uses nothing but the
// SDK, over gRPC-web to the server that serves this page (or `?server=URL`).

import {
  createSecureConnect,
  LocalStorageTokenStore,
  PollView,
  pollOf,
  SecureConnectError,
  SessionEndedError,
  type SecureConnect,
  type StreamEvent,
} from "@secureconnect/sdk";
import { type Call, type Conversation, type Message, type Poll, PollState } from "@secureconnect/sdk/proto";
import { type CallHandle, type CallOptions } from "@secureconnect/sdk";
import { callOf, callView, describeCall, joinable, localMedia } from "./call.js";
import { h } from "./dom.js";
import { attachButton, attachmentList } from "./attachments.js";
import { driveView } from "./drive.js";

/** A conversation's last message, in a line. */
function preview(m: Message | undefined): string {
  const body = m?.content?.body;
  if (body?.case === "poll") return `Poll: ${body.value.question}`;
  if (body?.case === "call") return describeCall(body.value);
  const text = body?.case === "text" ? body.value : "";
  const files = m?.attachments.map((a) => `📎 ${a.name}`).join(" ") ?? "";
  return [files, text].filter(Boolean).join(" ");
}

const server = new URLSearchParams(location.search).get("server") ?? location.origin;
const app = document.getElementById("app") as HTMLElement;

function explain(error: unknown): string {
  const e = SecureConnectError.from(error);
  return e.fieldViolations.length
    ? e.fieldViolations.map((v) => `${v.field}: ${v.description}`).join("; ")
    : e.message;
}

const sc: SecureConnect = await createSecureConnect({
  baseUrl: server,
  tokenStore: new LocalStorageTokenStore(),
});

if (sc.session()) {
  await showChat();
} else {
  showSignIn();
}

function showSignIn(): void {
  const email = h("input", { placeholder: "Email", type: "email", "data-testid": "email" });
  const username = h("input", { placeholder: "Username (to sign up)", "data-testid": "username" });
  const password = h("input", { placeholder: "Password", type: "password", "data-testid": "password" });
  const error = h("div.error", { "data-testid": "auth-error" });
  const run = (action: () => Promise<unknown>) => async () => {
    error.textContent = "";
    try {
      await action();
      await showChat();
    } catch (e) {
      error.textContent = explain(e);
    }
  };
  const signUp = h("button", { "data-testid": "sign-up" }, "Sign up");
  signUp.onclick = run(() =>
    sc.register({ email: email.value, username: username.value, password: password.value }),
  );
  const signIn = h("button.ghost", { "data-testid": "sign-in" }, "Sign in");
  signIn.onclick = run(() => sc.login(email.value, password.value));
  app.replaceChildren(
    h("section.auth", {}, h("h1", {}, "SecureConnect"), email, username, password, error,
      h("div.row", {}, signUp, signIn)),
  );
}

async function showChat(): Promise<void> {
  const me = (await sc.users.getCurrentUser({})).user;
  const names = new Map<string, string>();
  const nameOf = async (id: string) => {
    if (!names.has(id)) {
      const user = await sc.users.getUser({ userId: id }).catch(() => undefined);
      names.set(id, user?.user?.username ?? "someone");
    }
    return names.get(id) ?? "someone";
  };
  let conversations: Conversation[] = [];
  let current: Conversation | undefined;
  const online = new Set<string>();
  const typingUntil = new Map<string, number>();

  const list = h("div.list", { "data-testid": "conversations" });
  const messages = h("div.messages", { "data-testid": "messages" });
  const title = h("div", { "data-testid": "chat-title" });
  const sub = h("div.sub", { "data-testid": "chat-status" });
  const input = h("input", { placeholder: "Write a message", "data-testid": "composer" });
  const send = h("button", { "data-testid": "send" }, "Send");
  const pollToggle = h("button.ghost", { type: "button", "data-testid": "poll-toggle", title: "New poll" }, "Poll");
  const attachStatus = h("div.sub", { "data-testid": "attach-status" });
  const attach = attachButton(sc, () => current?.conversationId, () => {
    const caption = input.value;
    input.value = "";
    return caption;
  }, attachStatus);
  const composer = h("form.composer", {}, pollToggle, attach, input, send);
  const pollQuestion = h("input", { placeholder: "Question", "data-testid": "poll-question" });
  const pollOptions = h("input", { placeholder: "Options, comma-separated", "data-testid": "poll-options" });
  const pollCreate = h("button", { type: "button", "data-testid": "poll-create" }, "Create poll");
  const pollError = h("div.error", { "data-testid": "poll-error" });
  const pollForm = h("div.poll-form", {}, pollQuestion, pollOptions, pollCreate, pollError);
  pollForm.hidden = true;
  const voiceCall = h("button.ghost", { "data-testid": "call-start-audio", title: "Voice call" }, "Call");
  const videoCall = h("button.ghost", { "data-testid": "call-start-video", title: "Video call" }, "Video");
  const callError = h("div.error", { "data-testid": "call-error" });
  const incoming = h("div.incoming", { "data-testid": "incoming-call" });
  incoming.hidden = true;
  const chat = h("section.chat", {},
    h("header", {}, h("div.grow", {}, title, sub), voiceCall, videoCall), callError, incoming,
    messages, pollForm, attachStatus, composer);
  // The right-hand side: a conversation, or the drive.
  const main = h("div.main", {}, chat);
  const openDrive = h("button.ghost", { "data-testid": "open-drive" }, "Drive");
  openDrive.onclick = () => {
    current = undefined;
    main.replaceChildren(driveView(sc, server));
    void refresh();
  };
  const who = h("input", { placeholder: "Username to chat with", "data-testid": "new-chat" });
  const groupTitle = h("input", { placeholder: "New group: title", "data-testid": "group-title" });
  const groupMembers = h("input", { placeholder: "Members: usernames, comma-separated", "data-testid": "group-members" });
  const newError = h("div.error");
  const start = h("button", { "data-testid": "start-chat" }, "Chat");
  const makeGroup = h("button.ghost", { "data-testid": "create-group" }, "Create group");
  const signOut = h("button.ghost", {}, "Sign out");
  // Open on wide screens; on a phone it folds away so the conversations have the room.
  const newPanel = h("details.new-panel", matchMedia("(min-width: 701px)").matches ? { open: "" } : {},
    h("summary", {}, "New chat or group"),
    h("div.new", {}, who, start, groupTitle, groupMembers, makeGroup, newError));
  app.replaceChildren(
    h("div.shell", {},
      h("aside.sidebar", {},
        h("div.me", { "data-testid": "me" }, me?.username ?? "", h("span", {}, openDrive, signOut)),
        newPanel,
        list),
      main),
  );
  messages.append(h("div.empty", {}, "Pick a conversation, or start one."));
  composer.style.visibility = "hidden";
  voiceCall.hidden = videoCall.hidden = true;

  const idsOf = async (usernames: string[]) =>
    Promise.all(usernames.map(async (name) => {
      const found = await sc.users.searchUsers({ query: name, pageSize: 5 });
      const user = found.users.find((u) => u.username === name);
      if (!user) throw new Error(`no user named ${name}`);
      return user.userId;
    }));
  const create = (make: () => Promise<Conversation | undefined>) => async () => {
    newError.textContent = "";
    try {
      const made = await make();
      await refresh();
      if (made) await open(made.conversationId);
    } catch (e) {
      newError.textContent = e instanceof Error && !(e instanceof SecureConnectError) ? e.message : explain(e);
    }
  };
  start.onclick = create(async () => (await sc.conversations.createConversation({
    type: 1, memberUserIds: await idsOf([who.value.trim()]),
  })).conversation);
  makeGroup.onclick = create(async () => (await sc.conversations.createConversation({
    type: 2,
    title: groupTitle.value,
    memberUserIds: await idsOf(groupMembers.value.split(",").map((s) => s.trim()).filter(Boolean)),
  })).conversation);
  signOut.onclick = async () => {
    await sc.logout().catch(() => undefined);
    localStorage.removeItem("secureconnect.cursor");
    location.reload();
  };

  async function label(c: Conversation): Promise<string> {
    return c.title || (c.peerUserId ? await nameOf(c.peerUserId) : "direct chat");
  }

  async function refresh(): Promise<void> {
    conversations = await sc.allConversations();
    const peers = conversations.map((c) => c.peerUserId).filter(Boolean);
    if (peers.length) {
      const presence = await sc.presence.getPresence({ userIds: peers });
      for (const p of presence.presences) {
        if (p.state === 1) online.add(p.userId); else online.delete(p.userId);
      }
    }
    const rows = await Promise.all(conversations.map(async (c) => {
      const last = c.lastMessage?.content?.body;
      const row = h("div.conv", { "data-testid": "conversation", "data-id": c.conversationId },
        h(c.peerUserId && online.has(c.peerUserId) ? "span.dot.online" : "span.dot"),
        h("div", { style: "flex:1;min-width:0" },
          h("div.name", {}, await label(c)),
          h("div.preview", {}, preview(c.lastMessage))),
        ...(c.unreadCount > 0 && c.conversationId !== current?.conversationId
          ? [h("span.badge", { "data-testid": "unread" }, String(c.unreadCount))] : []));
      if (c.conversationId === current?.conversationId) row.classList.add("active");
      row.onclick = () => void open(c.conversationId);
      return row;
    }));
    list.replaceChildren(...rows);
  }

  // Polls on screen, each kept live from the stream, with the card that shows it.
  const polls = new Map<string, { view: PollView; card: HTMLElement }>();

  function renderPoll(entry: { view: PollView; card: HTMLElement }): void {
    const poll = entry.view.poll;
    const open = poll.state === PollState.OPEN;
    const results = poll.results;
    const counts = new Map(results?.counts.map((c) => [c.optionId, c.votes]) ?? []);
    const total = results?.totalVoters ?? 0;
    const rows = poll.options.map((option) => {
      const votes = counts.get(option.optionId) ?? 0;
      const share = results && total > 0 ? Math.round((100 * votes) / total) : 0;
      const picked = poll.myOptionIds.includes(option.optionId);
      const row = h(picked ? "button.poll-option.picked" : "button.poll-option",
        { type: "button", "data-testid": "poll-option", "data-option": option.optionId },
        h("span.bar", { style: `width:${share}%` }),
        h("span.label", {}, option.text),
        h("span.count", { "data-testid": "poll-count" }, results ? String(votes) : ""));
      row.disabled = !open;
      row.onclick = async () => {
        try {
          const answer = await sc.polls.castVote({ pollId: poll.pollId, optionIds: [option.optionId] });
          if (answer.poll) entry.view.replace(answer.poll);
          renderPoll(entry);
        } catch (e) {
          entry.card.querySelector(".error")?.replaceChildren(explain(e));
        }
      };
      return row;
    });
    const state = poll.state === PollState.DELETED ? "deleted"
      : open ? (results ? `${total} voted` : "results after voting") : `closed · ${total} voted`;
    const footer = h("div.poll-footer", {}, h("span.poll-total", { "data-testid": "poll-total" }, state));
    if (open && poll.creatorUserId === me?.userId) {
      // Its creator closes it (so may a group admin, through the API).
      const close = h("button.ghost.small", { type: "button", "data-testid": "poll-close" }, "Close poll");
      close.onclick = async () => {
        try {
          const answer = await sc.polls.closePoll({ pollId: poll.pollId });
          if (answer.poll) entry.view.replace(answer.poll);
          renderPoll(entry);
        } catch (e) {
          entry.card.querySelector(".error")?.replaceChildren(explain(e));
        }
      };
      footer.append(close);
    }
    entry.card.replaceChildren(
      h("div.poll-question", {}, poll.question || "(deleted poll)"),
      ...rows,
      footer,
      h("div.error"));
  }

  function pollCard(poll: Poll): HTMLElement {
    const card = h("div.poll", { "data-testid": "poll", "data-poll": poll.pollId });
    const entry = { view: new PollView(poll), card };
    polls.set(poll.pollId, entry);
    renderPoll(entry);
    return card;
  }

  // Calls: the one this device is in, and the cards of calls in the chat, by call id.
  let inCall: { handle: CallHandle; view: ReturnType<typeof callView> } | undefined;
  const callCards = new Map<string, HTMLElement>();

  async function enterCall(video: boolean, make: (options: CallOptions) => Promise<CallHandle>): Promise<void> {
    if (inCall) return;
    callError.textContent = "";
    let local: MediaStream | undefined;
    try {
      local = await localMedia(video);
      const media = local;
      let view: ReturnType<typeof callView> | undefined;
      const handle = await make({ localStream: media, onChange: () => view?.render() });
      view = callView(handle, media, (id) => names.get(id) ?? "someone", () => {
        view?.remove();
        inCall = undefined;
      });
      inCall = { handle, view };
      incoming.hidden = true;
      main.prepend(view);
    } catch (e) {
      for (const track of local?.getTracks() ?? []) track.stop();
      callError.textContent = explain(e);
    }
  }

  function showCall(call: Call): void {
    const card = callCards.get(call.callId);
    if (card) renderCallCard(card, call);
    const ringing = call.participants.find((p) => p.userId === me?.userId)?.state === 1;
    if (ringing && call.callerUserId !== me?.userId && !inCall) {
      incoming.replaceChildren(
        h("span", {}, `${names.get(call.callerUserId) ?? "Someone"}: ${describeCall(call)}`),
        Object.assign(h("button", { "data-testid": "incoming-join" }, "Join"), {
          onclick: () => void enterCall(call.media === 2, (o) => sc.joinCall(call.callId, o)),
        }),
        Object.assign(h("button.ghost", { "data-testid": "incoming-decline" }, "Decline"), {
          onclick: () => {
            incoming.hidden = true;
            void sc.calls.declineCall({ callId: call.callId });
          },
        }),
      );
      incoming.hidden = false;
    } else if (incoming.hidden === false && !ringing) {
      incoming.hidden = true;
    }
  }

  function renderCallCard(card: HTMLElement, call: Call): void {
    const join = h("button.small", { "data-testid": "call-join" }, "Join");
    join.onclick = () => void enterCall(call.media === 2, (o) => sc.joinCall(call.callId, o));
    card.replaceChildren(h("span", { "data-testid": "call-summary" }, describeCall(call)));
    if (joinable(call, me?.userId) && !inCall) card.append(join);
  }

  voiceCall.onclick = () => {
    const id = current?.conversationId;
    if (id) void enterCall(false, (o) => sc.startCall(id, false, o));
  };
  videoCall.onclick = () => {
    const id = current?.conversationId;
    if (id) void enterCall(true, (o) => sc.startCall(id, true, o));
  };

  async function bubble(m: Message): Promise<HTMLElement> {
    const body = m.content?.body;
    const poll = pollOf(m);
    const call = callOf(body);
    if (call) {
      const card = h("div.call-card", { "data-testid": "call-card", "data-call": call.callId });
      callCards.set(call.callId, card);
      renderCallCard(card, call);
      return h("div.msg.event", { "data-testid": "message", "data-seq": String(m.seq) }, card);
    }
    const text = body?.case === "text" ? body.value : poll ? "" : body ? "(encrypted)" : "(deleted)";
    const mine = m.senderUserId === me?.userId;
    const bubble = h(mine ? "div.msg.mine" : "div.msg", { "data-testid": "message", "data-seq": String(m.seq) },
      h("div.who", {}, mine ? "you" : await nameOf(m.senderUserId)));
    if (m.attachments.length) bubble.append(attachmentList(sc, m.attachments));
    if (poll) bubble.append(pollCard(poll));
    else if (text || !m.attachments.length) bubble.append(h("span.text", {}, text));
    return bubble;
  }

  async function open(id: string): Promise<void> {
    current = conversations.find((c) => c.conversationId === id);
    if (!current) return;
    main.replaceChildren(chat);
    title.textContent = await label(current);
    composer.style.visibility = "visible";
    voiceCall.hidden = videoCall.hidden = false;
    const page = await sc.messages.listMessages({ conversationId: id, direction: 1, pageSize: 50 });
    const bubbles = await Promise.all([...page.messages].reverse().map(bubble));
    messages.replaceChildren(...bubbles);
    messages.scrollTop = messages.scrollHeight;
    if (current.lastSeq > 0n) await sc.conversations.markConversationRead({ conversationId: id, seq: current.lastSeq });
    await refresh();
    status();
  }

  function status(): void {
    const peer = current?.peerUserId;
    const typing = [...typingUntil].filter(([key, until]) => key.startsWith(`${current?.conversationId}/`) && until > Date.now());
    sub.textContent = typing.length
      ? `${typing.map(([key]) => names.get(key.split("/")[1] ?? "") ?? "someone").join(", ")} is typing…`
      : peer ? (online.has(peer) ? "online" : "offline") : "";
  }
  setInterval(status, 1000);

  let lastTyping = 0;
  input.oninput = () => {
    if (current && Date.now() - lastTyping > 3000) {
      lastTyping = Date.now();
      void sc.presence.setTyping({ conversationId: current.conversationId, typing: true });
    }
  };
  pollToggle.onclick = () => {
    pollForm.hidden = !pollForm.hidden;
  };
  pollCreate.onclick = async () => {
    if (!current) return;
    pollError.textContent = "";
    try {
      const options = pollOptions.value.split(",").map((s) => s.trim()).filter(Boolean);
      await sc.createPoll(current.conversationId, pollQuestion.value, options, { allowVoteChanges: true });
      pollQuestion.value = "";
      pollOptions.value = "";
      pollForm.hidden = true;
    } catch (e) {
      pollError.textContent = explain(e);
    }
  };
  composer.onsubmit = async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!current || !text.trim()) return;
    input.value = "";
    lastTyping = 0;
    await sc.sendText(current.conversationId, text);
  };

  await refresh();
  void listen();

  async function listen(): Promise<void> {
    const cursor = localStorage.getItem("secureconnect.cursor") ?? "";
    try {
      for await (const item of sc.eventStream(cursor)) {
        // What an event triggers (re-reading the list, marking read) may fail while the
        // network is away; the stream itself recovers, so neither may end it.
        await handle(item).catch((e) => console.warn("could not apply an event:", e));
        localStorage.setItem("secureconnect.cursor", item.cursor);
      }
    } catch (e) {
      if (e instanceof SessionEndedError) {
        showSignIn();
        return;
      }
      sub.textContent = `disconnected: ${explain(e)}`;
    }
  }

  async function handle(item: StreamEvent): Promise<void> {
    for (const entry of polls.values()) {
      if (entry.view.apply(item)) renderPoll(entry);
    }
    if (item.kind === "pollTally") return;
    if (item.kind === "callUpdated") {
      if (item.update.call) showCall(item.update.call);
      await refresh();
      return;
    }
    if (item.kind === "conversation") {
      const change = item.event.change;
      const carried = change.case === "messageSent" ? callOf(change.value.content?.body) : undefined;
      if (carried) showCall(carried);
      if (change.case === "callEnded" && change.value.call) showCall(change.value.call);
      if (change.case === "messageSent" && change.value.conversationId === current?.conversationId) {
        messages.querySelector(".empty")?.remove();
        messages.append(await bubble(change.value));
        messages.scrollTop = messages.scrollHeight;
        typingUntil.delete(`${current.conversationId}/${change.value.senderUserId}`);
        status();
        await sc.conversations.markConversationRead({ conversationId: current.conversationId, seq: item.event.seq });
      }
      await refresh();
    } else if (item.kind === "typing") {
      const key = `${item.typing.conversationId}/${item.typing.userId}`;
      await nameOf(item.typing.userId);
      typingUntil.set(key, item.typing.typing ? Date.now() + 6000 : 0);
      status();
    } else if (item.kind === "gap") {
      await refresh();
      if (current) await open(current.conversationId);
    }
  }
}
