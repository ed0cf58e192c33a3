// Keeps the session signed in: attaches the access token, refreshes it shortly before it
// expires and once when the server refuses a unary call anyway, rotating the refresh token
// through the app's TokenStore. One refresh at a time: a rotated refresh token is
// single-use, so two concurrent refreshes would look like token theft to the server.

import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { TokenStoreError } from "./errors.js";
import { AuthService } from "./gen/secureconnect/auth/v1/auth_pb.js";
import { type Session, type TokenStore, sessionFrom } from "./session.js";

/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 30_000;

export class SessionKeeper {
  #current: Session | undefined;
  #refreshing: Promise<string | undefined> | undefined;

  constructor(
    private readonly store: TokenStore,
    /** A transport without this keeper's interceptor, for the refresh call itself. */
    private readonly plain: Transport,
    initial: Session | undefined,
  ) {
    this.#current = initial;
  }

  get current(): Session | undefined {
    return this.#current;
  }

  /** Replaces the session here and in the store (a store failure is thrown after). */
  async replace(session: Session | undefined): Promise<void> {
    this.#current = session;
    try {
      await (session === undefined ? this.store.clear() : this.store.save(session));
    } catch (cause) {
      throw new TokenStoreError(cause);
    }
  }

  /** The token to send now, refreshed first when about to expire. */
  async accessToken(): Promise<string | undefined> {
    const session = this.#current;
    if (session === undefined) {
      return undefined;
    }
    if (session.accessTokenExpireTime > Date.now() + REFRESH_MARGIN_MS) {
      return session.accessToken;
    }
    try {
      return await this.refresh(session.accessToken);
    } catch (error) {
      // Could not reach the server while the token still lives: use it. A token store
      // failure is not that: the app must hear of it.
      if (!(error instanceof TokenStoreError) && session.accessTokenExpireTime > Date.now()) {
        return session.accessToken;
      }
      throw error;
    }
  }

  /** New tokens for `stale`, unless another call already replaced it. */
  refresh(stale: string): Promise<string | undefined> {
    this.#refreshing ??= this.#refresh(stale).finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(stale: string): Promise<string | undefined> {
    const session = this.#current;
    if (session === undefined) {
      return undefined;
    }
    if (session.accessToken !== stale || session.refreshToken === "") {
      return session.accessToken;
    }
    try {
      const answer = await createClient(AuthService, this.plain).refreshToken({
        refreshToken: session.refreshToken,
      });
      const fresh = sessionFrom(session.userId, answer.tokens);
      await this.replace(fresh);
      return fresh.accessToken;
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
        await this.replace(undefined); // Expired, revoked or reused: the session is over.
        return undefined;
      }
      throw error;
    }
  }

  /** The interceptor that attaches tokens and retries a refused unary call once. */
  interceptor(): Interceptor {
    return (next) => async (request) => {
      const token = await this.accessToken();
      if (token !== undefined) {
        request.header.set("authorization", `Bearer ${token}`);
      }
      try {
        return await next(request);
      } catch (error) {
        const refused = error instanceof ConnectError && error.code === Code.Unauthenticated;
        if (!refused || token === undefined || request.stream) {
          throw error;
        }
        const renewed = await this.refresh(token);
        if (renewed === undefined || renewed === token) {
          throw error;
        }
        request.header.set("authorization", `Bearer ${renewed}`);
        return await next(request);
      }
    };
  }
}
