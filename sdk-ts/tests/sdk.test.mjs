// The TypeScript SDK against a real server, over gRPC-web (what browsers use) and native
// gRPC (Node): sessions, chat in real time, typing and presence, typed errors, and the
// event stream resuming across a server restart.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, createSecureConnect, MemoryTokenStore, PollView, SecureConnectError, TokenStoreError } from "../dist/index.js";
import { createSecureConnectNode } from "../dist/node.js";
import { ErrorReason } from "../dist/gen/secureconnect/type/v1/type_pb.js";
import { ShareRole } from "../dist/gen/secureconnect/drive/v1/drive_pb.js";
import { s3Env, someone, TestServer } from "./server.mjs";

const transports = {
  "gRPC-web": (baseUrl, tokenStore) => createSecureConnect({ baseUrl, tokenStore }),
  "native gRPC": (baseUrl, tokenStore) => createSecureConnectNode({ baseUrl, tokenStore }),
};

/** The next stream item satisfying `wanted`, within 15 s. */
async function next(stream, wanted = () => true) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const { value, done } = await Promise.race([
      stream.next(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("no event within 15 s")), 15_000)),
    ]);
    assert.ok(!done, "the stream goes on");
    if (wanted(value)) return value;
  }
  throw new Error("no matching event within 15 s");
}

const isText = (item) => item.kind === "conversation" && item.event.change.case === "messageSent";
const textOf = (item) => item.event.change.value.content?.body.value;

for (const [name, connect] of Object.entries(transports)) {
  // Both drive backends: the gRPC-web run keeps files in S3 when the test command started
  // SeaweedFS, the native run in local files.
  const s3 = name === "gRPC-web" ? s3Env() : null;
  describe(`over ${name}, files ${s3 ? "in S3" : "in local files"}`, () => {
    let server;
    before(async () => {
      // Access tokens that live 5 s are always within the SDK's refresh margin: every call
      // refreshes first, which exercises rotation on every call.
      server = await TestServer.start({ SECURECONNECT_AUTH__ACCESS_TOKEN_TTL_SECS: "5", ...s3 });
    });
    after(() => server.close());

    test("register, sign in again, refresh with rotation, sign out", async () => {
      const store = new MemoryTokenStore();
      const app = await connect(server.baseUrl, store);
      const who = someone("ann");
      const first = await app.register(who);
      assert.equal((await store.load())?.refreshToken, first.refreshToken);
      const me = await app.users.getCurrentUser({});
      assert.equal(me.user?.username, who.username);
      assert.notEqual((await store.load())?.refreshToken, first.refreshToken, "rotated and stored");
      // A restart of the app: the stored session signs it in.
      const again = await connect(server.baseUrl, store);
      assert.equal((await again.users.getCurrentUser({})).user?.username, who.username);
      await again.logout();
      assert.equal(await store.load(), undefined);
      await assert.rejects(app.users.getCurrentUser({}), (e) => e.code === Code.Unauthenticated);
    });

    test("bad input arrives as typed errors", async () => {
      const app = await connect(server.baseUrl);
      const who = someone("bo");
      await app.register(who);
      const taken = await app.register(who).catch((e) => e);
      assert.ok(taken instanceof SecureConnectError, String(taken));
      assert.equal(taken.code, Code.AlreadyExists);
      assert.equal(taken.reason, ErrorReason.EMAIL_TAKEN);
      const bad = await app.messages.sendMessage({ conversationId: "nope" }).catch((e) => e);
      assert.equal(bad.code, Code.InvalidArgument);
      assert.ok(bad.fieldViolations.some((v) => v.field === "conversation_id"), JSON.stringify(bad.fieldViolations));
    });

    test("token store failures and unreachable servers are reported, not swallowed", async () => {
      const failing = {
        load: async () => undefined,
        save: async () => { throw new Error("disk full"); },
        clear: async () => undefined,
      };
      const app = await connect(server.baseUrl, failing);
      const stored = await app.register(someone("cy")).catch((e) => e);
      assert.ok(stored instanceof TokenStoreError, String(stored));
      assert.match(stored.message, /disk full/);
      // A server that is not there: the call fails with a typed error, once.
      const nowhere = await connect("http://127.0.0.1:9");
      const down = await nowhere.sendText("x", "y").catch((e) => e);
      assert.ok(down instanceof SecureConnectError, String(down));
      assert.ok([Code.Unavailable, Code.Unknown, Code.Internal].includes(down.code), `code ${down.code}`);
    });

    test("a poll kept live from the stream: tallies, the close, typed poll errors", async () => {
      const ann = await connect(server.baseUrl);
      const bob = await connect(server.baseUrl);
      await ann.register(someone("ann"));
      const bobSession = await bob.register(someone("bob"));
      const { conversation } = await ann.conversations.createConversation({
        type: 2, // group
        title: "lunch",
        memberUserIds: [bobSession.userId],
      });
      const stream = ann.eventStream("");
      await next(stream, (item) => item.kind === "caughtUp");
      const poll = await ann.createPoll(conversation.conversationId, "Lunch?", ["Pizza", "Sushi"]);
      const view = new PollView(poll);
      const sushi = poll.options[1].optionId;
      await bob.polls.castVote({ pollId: poll.pollId, optionIds: [sushi] });
      await next(stream, (item) => view.apply(item) && view.poll.results?.totalVoters === 1);
      assert.equal(view.poll.results?.counts[1].votes, 1);
      await ann.polls.closePoll({ pollId: poll.pollId });
      await next(stream, (item) => view.apply(item) && view.poll.state === 2);
      assert.equal(view.poll.results?.counts[1].votes, 1, "the final tally");
      await assert.rejects(
        bob.polls.castVote({ pollId: poll.pollId, optionIds: [sushi] }),
        (e) => e instanceof SecureConnectError && e.code === Code.FailedPrecondition && e.reason === ErrorReason.POLL_CLOSED,
      );
      await stream.return(undefined);
    });

    test("the drive: a chunked upload completes and downloads back byte for byte", async () => {
      const app = await connect(server.baseUrl);
      await app.register(someone("dee"));
      const bytes = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 31 + 7) & 0xff);
      const digest = Buffer.from(await crypto.subtle.digest("SHA-256", bytes)).toString("hex");
      const { upload } = await app.drive.createUpload({ name: "photo.raw", size: BigInt(bytes.length), sha256: digest });
      let offset = 0;
      while (offset < bytes.length) {
        const data = bytes.subarray(offset, offset + 1024 * 1024);
        const answer = await app.drive.uploadChunk({ uploadId: upload.uploadId, offset: BigInt(offset), data });
        offset = Number(answer.receivedBytes);
      }
      const { file } = await app.drive.completeUpload({ uploadId: upload.uploadId });
      assert.equal(file.sha256, digest);
      const parts = [];
      for await (const chunk of app.drive.downloadFile({ fileId: file.fileId })) {
        parts.push(chunk.data);
      }
      assert.deepEqual(Buffer.concat(parts), Buffer.from(bytes));
      await assert.rejects(
        app.drive.uploadChunk({ uploadId: upload.uploadId, offset: 0n, data: bytes.subarray(0, 1) }),
        (e) => e instanceof SecureConnectError && e.code === Code.NotFound,
      );
    });

    test("attachments: a member downloads a file sent in a chat, an outsider cannot", async () => {
      const [ann, bob, eve] = [await connect(server.baseUrl), await connect(server.baseUrl), await connect(server.baseUrl)];
      await ann.register(someone("ann"));
      const bobSession = await bob.register(someone("bob"));
      await eve.register(someone("eve"));
      const { conversation } = await ann.conversations.createConversation({ type: 1, memberUserIds: [bobSession.userId] });
      const file = await ann.uploadFile(new Blob(["%PDF-1.7 minutes"]), { name: "minutes.pdf" });
      const sent = await ann.sendFiles(conversation.conversationId, "", [file.fileId]);
      assert.deepEqual(
        sent.attachments.map((a) => [a.name, a.size, a.contentType]),
        [["minutes.pdf", 16n, "application/pdf"]],
      );
      const { blob } = await bob.downloadFile(file.fileId);
      assert.equal(await blob.text(), "%PDF-1.7 minutes");
      await assert.rejects(
        eve.downloadFile(file.fileId),
        (e) => e instanceof SecureConnectError && e.code === Code.NotFound,
      );
      await assert.rejects(
        bob.thumbnail(file.fileId),
        (e) => e instanceof SecureConnectError && e.code === Code.NotFound,
        "no thumbnail for a PDF",
      );
    });

    test("editors replace a shared file's contents, viewers are refused", async () => {
      const [ann, bob, cat] = [await connect(server.baseUrl), await connect(server.baseUrl), await connect(server.baseUrl)];
      await ann.register(someone("ann"));
      const bobSession = await bob.register(someone("bob"));
      const catSession = await cat.register(someone("cat"));
      const file = await ann.uploadFile(new Blob(["draft 1"]), { name: "plan.txt" });
      const { share } = await ann.drive.shareFile({ fileId: file.fileId, grantee: { case: "userId", value: bobSession.userId }, role: ShareRole.EDITOR });
      assert.equal(share.role, ShareRole.EDITOR);
      await ann.drive.shareFile({ fileId: file.fileId, grantee: { case: "userId", value: catSession.userId } });
      const replaced = await bob.uploadFile(new Blob(["draft 2, longer"]), { replaceFileId: file.fileId });
      assert.deepEqual([replaced.fileId, replaced.name, replaced.size], [file.fileId, "plan.txt", 15n]);
      assert.equal(await (await ann.downloadFile(file.fileId)).blob.text(), "draft 2, longer");
      await assert.rejects(
        cat.uploadFile(new Blob(["vandalism"]), { replaceFileId: file.fileId }),
        (e) => e instanceof SecureConnectError && e.code === Code.PermissionDenied && e.reason === ErrorReason.INSUFFICIENT_ROLE,
      );
    });

    test("a call's lifecycle and signaling: ring, answer, watch, bad SDP, end", async () => {
      const ann = await connect(server.baseUrl);
      const bob = await connect(server.baseUrl);
      await ann.register(someone("ann"));
      const bobSession = await bob.register(someone("bob"));
      const { conversation } = await ann.conversations.createConversation({ type: 1, memberUserIds: [bobSession.userId] });
      const stream = bob.eventStream("");
      await next(stream, (item) => item.kind === "caughtUp");
      const { call } = await ann.calls.startCall({ conversationId: conversation.conversationId, media: 2, requestId: crypto.randomUUID() });
      // The call's message rings bob, with the call as it is.
      const rung = await next(stream, (item) => item.kind === "conversation" &&
        item.event.change.case === "messageSent" && item.event.change.value.content?.body.case === "call");
      const ringing = rung.event.change.value.content.body.value;
      assert.equal(ringing.callId, call.callId);
      assert.equal(ringing.participants.find((p) => p.userId === bobSession.userId)?.state, 1, "bob rings");
      const joined = await bob.calls.joinCall({ callId: call.callId });
      assert.equal(joined.call.state, 2, "answered");
      const update = await next(stream, (item) => item.kind === "callUpdated");
      assert.equal(update.update.call.state, 2);
      // The watch stream starts with the call; malformed SDP is refused with the field.
      const watch = bob.calls.watchCall({ callId: call.callId })[Symbol.asyncIterator]();
      const first = await watch.next();
      assert.equal(first.value.event.case, "call");
      await assert.rejects(
        bob.calls.sendSignal({ callId: call.callId, signal: { case: "offer", value: "v=0" } }),
        (e) => e instanceof SecureConnectError && e.code === Code.InvalidArgument && e.fieldViolations[0]?.field === "offer",
      );
      await ann.calls.endCall({ callId: call.callId });
      // The watch stream shows the call ended, then closes saying so.
      let item;
      let last;
      do {
        item = await watch.next();
        if (item.value?.event.case === "call") last = item.value.event.value;
      } while (!item.done && item.value.event.case !== "closing");
      assert.equal(last?.state, 3, "the last call seen is ended");
      assert.equal(item.value?.event.value.reason, 1, "closing: ENDED");
      const ended = await next(stream, (item) => item.kind === "conversation" && item.event.change.case === "callEnded");
      assert.equal(ended.event.change.value.call.endReason, 1, "completed");
      await stream.return(undefined);
    });

    test("two users chat in real time, typing shows, text round-trips byte for byte", async () => {
      const ann = await connect(server.baseUrl);
      const bob = await connect(server.baseUrl);
      await ann.register(someone("ann"));
      const bobSession = await bob.register(someone("bob"));
      const { conversation } = await ann.conversations.createConversation({
        type: 1, // direct
        memberUserIds: [bobSession.userId],
      });
      const id = conversation.conversationId;
      const stream = bob.eventStream("");
      await next(stream, (item) => item.kind === "caughtUp");
      const text = "héllo 👋🏽 e\u0301 שלום عربى";
      await ann.sendText(id, text);
      const got = await next(stream, isText);
      assert.equal(textOf(got), text);
      assert.deepEqual(new TextEncoder().encode(textOf(got)), new TextEncoder().encode(text));
      await ann.presence.setTyping({ conversationId: id, typing: true });
      const typing = await next(stream, (item) => item.kind === "typing");
      assert.equal(typing.typing.typing, true);
      const presence = await ann.presence.getPresence({ userIds: [bobSession.userId] });
      assert.equal(presence.presences[0]?.state, 1, "bob is online while his stream is open");
      await stream.return(undefined);
    });
  });
}

// Over a direct chat (filed in each member's feed) and a group past the server's
// fan-out-on-read threshold (stored once on the shared timeline; the cursor takes another
// form): the stream resumes the same.
const restartCases = {
  "a direct chat": { env: {}, withCarol: false },
  "a group fanned out on read": {
    env: { SECURECONNECT_DATABASE__FANOUT_ON_READ_MEMBERS: "2" },
    withCarol: true,
  },
};
for (const [name, { env, withCarol }] of Object.entries(restartCases)) {
  test(`the event stream resumes across a server restart in ${name}: every message once, in order`, async () => {
    const server = await TestServer.start(env);
    try {
      const ann = await createSecureConnect({ baseUrl: server.baseUrl });
      const bob = await createSecureConnect({ baseUrl: server.baseUrl });
      await ann.register(someone("ann"));
      const bobSession = await bob.register(someone("bob"));
      const memberUserIds = [bobSession.userId];
      if (withCarol) {
        const carol = await createSecureConnect({ baseUrl: server.baseUrl });
        memberUserIds.push((await carol.register(someone("carol"))).userId);
      }
      const { conversation } = await ann.conversations.createConversation({
        type: withCarol ? 2 : 1,
        memberUserIds,
        title: withCarol ? "big" : "",
      });
      const id = conversation.conversationId;
      const stream = bob.eventStream("");
      await next(stream, (item) => item.kind === "caughtUp");
      const send = async (text) => {
        for (let attempt = 0; attempt < 100; attempt += 1) {
          try {
            await ann.messages.sendMessage({ conversationId: id, content: { body: { case: "text", value: text } }, requestId: text });
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 100)); // The server is restarting.
          }
        }
        throw new Error(`could not send ${text}`);
      };
      const received = [];
      for (let i = 0; i < 5; i += 1) await send(`m${i}`);
      for (let i = 0; i < 5; i += 1) received.push(await next(stream, isText));
      await server.restart();
      for (let i = 5; i < 10; i += 1) await send(`m${i}`);
      for (let i = 5; i < 10; i += 1) received.push(await next(stream, isText));
      assert.deepEqual(received.map(textOf), Array.from({ length: 10 }, (_, i) => `m${i}`));
      const seqs = received.map((item) => item.event.seq);
      assert.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]), `seqs increase: ${seqs}`);
      if (withCarol) {
        // The server took the timeline path (its cursors are opaque to apps).
        assert.match(received.at(-1).cursor, /^2:/);
      }
      await stream.return(undefined);
    } finally {
      await server.close();
    }
  });
}
