// SecureConnect for browsers (gRPC-web, straight to the server) and Node: typed clients for
// every service, a session that stays signed in, errors that say what went wrong, and a
// resuming event stream.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { SessionKeeper } from "./auth.js";
import { SecureConnectError, TokenStoreError } from "./errors.js";
import { resumingStream, type StreamEvent } from "./events.js";
import { AuthService, type RegisterRequestSchema } from "./gen/secureconnect/auth/v1/auth_pb.js";
import { type CallHandle, type CallOptions, joinCall, startCall } from "./calls.js";
import { CallService } from "./gen/secureconnect/call/v1/call_pb.js";
import { ConversationService, type Conversation } from "./gen/secureconnect/conversation/v1/conversation_pb.js";
import { downloadFile, type DownloadOptions, uploadFile, type UploadOptions } from "./drive.js";
import { DriveService, type File as DriveFile } from "./gen/secureconnect/drive/v1/drive_pb.js";
import { EventService } from "./gen/secureconnect/event/v1/event_pb.js";
import { MessageService, type Message } from "./gen/secureconnect/message/v1/message_pb.js";
import { PollService, type Poll, type PollSettingsSchema } from "./gen/secureconnect/poll/v1/poll_pb.js";
import { PresenceService } from "./gen/secureconnect/presence/v1/presence_pb.js";
import { UserService } from "./gen/secureconnect/user/v1/user_pb.js";
import { MemoryTokenStore, type Session, type TokenStore, sessionFrom } from "./session.js";

export * from "./errors.js";
export type { StreamEvent } from "./events.js";
export { PollView, pollOf } from "./polls.js";
export type { CallHandle, CallOptions, RemoteParticipant } from "./calls.js";
export { UPLOAD_CHUNK_BYTES, type DownloadOptions, type UploadOptions } from "./drive.js";
export { LocalStorageTokenStore, MemoryTokenStore, type Session, type TokenStore } from "./session.js";
export { Code } from "@connectrpc/connect";
export * as proto from "./proto.js";

export interface Options {
  /** The server, e.g. `http://127.0.0.1:50051` (gRPC-web is served on the same port). */
  baseUrl: string;
  /**
   * How to reach it: the default is gRPC-web over `fetch` (browsers, and Node 18+); in
   * Node, `createGrpcTransport` from `@connectrpc/connect-node` speaks native gRPC. Called
   * with the interceptors the SDK needs (token handling first).
   */
  transport?: (interceptors: Parameters<typeof createGrpcWebTransport>[0]["interceptors"]) => Transport;
  /** Where the session is kept between runs (default: memory only). */
  tokenStore?: TokenStore;
}

/** A connection to SecureConnect and the session on it. */
export interface SecureConnect {
  readonly auth: Client<typeof AuthService>;
  readonly users: Client<typeof UserService>;
  readonly conversations: Client<typeof ConversationService>;
  readonly messages: Client<typeof MessageService>;
  /** The user's drive: uploads (in chunks), downloads, folders, trash and quota. */
  readonly drive: Client<typeof DriveService>;
  /** Polls in conversations (see `PollView` for one kept live from the event stream). */
  readonly polls: Client<typeof PollService>;
  readonly events: Client<typeof EventService>;
  readonly presence: Client<typeof PresenceService>;
  /** Calls in conversations (see `startCall` and `joinCall` for their media). */
  readonly calls: Client<typeof CallService>;
  /** Creates an account and signs in as it (the session goes to the token store). */
  register(request: MessageInitShape<typeof RegisterRequestSchema>): Promise<Session>;
  /** Signs in (the session goes to the token store). */
  login(email: string, password: string): Promise<Session>;
  /** Ends the session on the server and forgets it here. */
  logout(): Promise<void>;
  /** The current session, if signed in. */
  session(): Session | undefined;
  /**
   * The user's events from `cursor` ("" = from when iteration starts): every event once,
   * in order, across reconnects. A connection silent for `idleTimeoutMs` (default 45 s;
   * servers send heartbeats every 15 s) is replaced, as is one that a browser coming back
   * online may have left hanging. Cursors are opaque: store them as the strings they are
   * (their form changes, e.g. once the user is in a group large enough to be fanned out
   * on read).
   */
  eventStream(cursor?: string, signal?: AbortSignal, idleTimeoutMs?: number): AsyncGenerator<StreamEvent>;
  /** Sends text under a fresh request id (a retried call never posts twice). */
  sendText(conversationId: string, text: string): Promise<Message>;
  /**
   * Sends drive files of the user's (see `uploadFile`) with a caption (may be empty), as
   * `sendText` does; the conversation's members may then download them by file id.
   */
  sendFiles(conversationId: string, caption: string, fileIds: string[]): Promise<Message>;
  /** An image file's thumbnail (JPEG, at most 320 pixels on its longer side). */
  thumbnail(fileId: string): Promise<Blob>;
  /** Every conversation, most recent activity first (what to re-read after a gap). */
  allConversations(): Promise<Conversation[]>;
  /**
   * Uploads a Blob or File in 4 MiB chunks with progress; a chunk that fails on the way is
   * retried from where the server says the upload stands. The server checks the SHA-256
   * (files up to 512 MiB) before the file appears.
   */
  uploadFile(blob: Blob, options?: UploadOptions): Promise<DriveFile>;
  /** Downloads a file into a Blob (typed as the server recognised it), with progress. */
  downloadFile(fileId: string, options?: DownloadOptions): Promise<{ file: DriveFile; blob: Blob }>;
  /**
   * Starts a call (voice, or video with `video`) and connects this device's media to it:
   * the others ring. Browsers only (it needs `RTCPeerConnection`).
   */
  startCall(conversationId: string, video: boolean, options: CallOptions): Promise<CallHandle>;
  /** Joins a call (answering it, or coming back) and connects this device's media. */
  joinCall(callId: string, options: CallOptions): Promise<CallHandle>;
  /** Creates a poll under a fresh request id (a retried call never posts twice). */
  createPoll(
    conversationId: string,
    question: string,
    options: string[],
    settings?: MessageInitShape<typeof PollSettingsSchema>,
  ): Promise<Poll>;
}

/** Connects (lazily) and loads any stored session. */
export async function createSecureConnect(options: Options): Promise<SecureConnect> {
  const store = options.tokenStore ?? new MemoryTokenStore();
  const make =
    options.transport ??
    ((interceptors) => createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors }));
  let stored: Session | undefined;
  try {
    stored = await store.load();
  } catch (cause) {
    throw new TokenStoreError(cause);
  }
  const keeper = new SessionKeeper(store, make([]), stored);
  const transport = make([keeper.interceptor()]);
  const wrap = <T extends object>(client: T): T => withTypedErrors(client);
  const auth = wrap(createClient(AuthService, transport));
  const conversations = wrap(createClient(ConversationService, transport));
  const messages = wrap(createClient(MessageService, transport));
  const polls = wrap(createClient(PollService, transport));
  const drive = wrap(createClient(DriveService, transport));
  const calls = wrap(createClient(CallService, transport));
  const events = createClient(EventService, transport);
  const sendFiles = async (conversationId: string, text: string, attachmentFileIds: string[]) => {
    const answer = await messages.sendMessage({
      conversationId,
      content: { body: { case: "text", value: text } },
      requestId: crypto.randomUUID(),
      attachmentFileIds,
    });
    if (answer.message === undefined) {
      throw new SecureConnectError("SendMessage answered no message", Code.Internal, undefined, [], undefined);
    }
    return answer.message;
  };
  const start = async (userId: string, tokens: Parameters<typeof sessionFrom>[1]) => {
    const session = sessionFrom(userId, tokens);
    await keeper.replace(session);
    return session;
  };
  return {
    auth,
    users: wrap(createClient(UserService, transport)),
    conversations,
    messages,
    drive,
    polls,
    events,
    presence: wrap(createClient(PresenceService, transport)),
    calls,
    startCall: (conversationId, video, options) => startCall(calls, conversationId, video, options),
    joinCall: (callId, options) => joinCall(calls, callId, options),
    async register(request) {
      const answer = await auth.register(request);
      return start(answer.userId, answer.tokens);
    },
    async login(email, password) {
      const answer = await auth.login({ email, password });
      return start(answer.userId, answer.tokens);
    },
    async logout() {
      await auth.logout({});
      await keeper.replace(undefined);
    },
    session: () => keeper.current,
    eventStream: (cursor = "", signal, idleTimeoutMs) =>
      resumingStream(events, cursor, signal, idleTimeoutMs),
    sendText: (conversationId, text) => sendFiles(conversationId, text, []),
    sendFiles,
    async thumbnail(fileId) {
      const answer = await drive.getThumbnail({ fileId });
      return new Blob([answer.data as BlobPart], { type: answer.contentType });
    },
    uploadFile: (blob, options) => uploadFile(drive, blob, options),

    downloadFile: (fileId, options) => downloadFile(drive, fileId, options),
    async createPoll(conversationId, question, options, settings) {
      const answer = await polls.createPoll({
        conversationId,
        question,
        options,
        settings,
        requestId: crypto.randomUUID(),
      });
      if (answer.poll === undefined) {
        throw new SecureConnectError("CreatePoll answered no poll", Code.Internal, undefined, [], undefined);
      }
      return answer.poll;
    },
    async allConversations() {
      const all: Conversation[] = [];
      let pageToken = "";
      do {
        const page = await conversations.listConversations({ pageSize: 100, pageToken });
        all.push(...page.conversations);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return all;
    },
  };
}

/**
 * Makes every method of a generated client throw `SecureConnectError`: unary calls through
 * their promise, server-streaming ones (such as `DriveService.downloadFile`) through their
 * async iterable.
 */
function withTypedErrors<T extends object>(client: T): T {
  return new Proxy(client, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") {
        return value;
      }
      return (...args: unknown[]) => {
        let result: unknown;
        try {
          result = value.apply(target, args);
        } catch (thrown) {
          throw SecureConnectError.from(thrown);
        }
        if (isStream(result)) {
          return typedStream(result);
        }
        return Promise.resolve(result).catch((thrown: unknown) => {
          throw SecureConnectError.from(thrown);
        });
      };
    },
  });
}

function isStream(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    Symbol.asyncIterator in value &&
    !("then" in value)
  );
}

async function* typedStream<T>(stream: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* stream;
  } catch (thrown) {
    throw SecureConnectError.from(thrown);
  }
}
