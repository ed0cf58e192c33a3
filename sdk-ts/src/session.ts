// The signed-in session and where an app keeps it between runs.

import type { TokenPair } from "./gen/secureconnect/auth/v1/auth_pb.js";

/** A signed-in device: the tokens the server issued and when they expire. */
export interface Session {
  userId: string;
  sessionId: string;
  accessToken: string;
  /** Milliseconds since the epoch. */
  accessTokenExpireTime: number;
  refreshToken: string;
  refreshTokenExpireTime: number;
}

/**
 * Where the session lives between runs (localStorage, IndexedDB, a file…). Called on
 * sign-in, on every refresh (the refresh token rotates: an app that loses the new one is
 * signed out at its next start) and on sign-out. Failures reach the call that caused them.
 */
export interface TokenStore {
  load(): Promise<Session | undefined>;
  save(session: Session): Promise<void>;
  clear(): Promise<void>;
}

/** The default store: memory only, so the session ends with the page or process. */
export class MemoryTokenStore implements TokenStore {
  #session: Session | undefined;

  async load(): Promise<Session | undefined> {
    return this.#session;
  }

  async save(session: Session): Promise<void> {
    this.#session = session;
  }

  async clear(): Promise<void> {
    this.#session = undefined;
  }
}

/** A store in the browser's `localStorage` under `key`. */
export class LocalStorageTokenStore implements TokenStore {
  constructor(private readonly key = "secureconnect.session") {}

  async load(): Promise<Session | undefined> {
    const raw = globalThis.localStorage?.getItem(this.key);
    return raw ? (JSON.parse(raw) as Session) : undefined;
  }

  async save(session: Session): Promise<void> {
    globalThis.localStorage.setItem(this.key, JSON.stringify(session));
  }

  async clear(): Promise<void> {
    globalThis.localStorage.removeItem(this.key);
  }
}

export function sessionFrom(userId: string, tokens: TokenPair | undefined): Session {
  const millis = (t: { seconds: bigint; nanos: number } | undefined) =>
    t === undefined ? 0 : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
  return {
    userId,
    sessionId: tokens?.sessionId ?? "",
    accessToken: tokens?.accessToken ?? "",
    accessTokenExpireTime: millis(tokens?.accessTokenExpireTime),
    refreshToken: tokens?.refreshToken ?? "",
    refreshTokenExpireTime: millis(tokens?.refreshTokenExpireTime),
  };
}
