// Errors an app can act on: the gRPC code, the server's ErrorReason, the fields a request
// got wrong and how long to wait before retrying — no app decodes status details by hand.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "./gen/secureconnect/type/v1/type_pb.js";

/** `google.rpc.ErrorInfo.domain` of the errors SecureConnect servers send. */
export const ERROR_DOMAIN = "secureconnect.io";

/** One field a request got wrong. */
export interface FieldViolation {
  /** The field's path, e.g. `content.text` or `member_user_ids[2]`. */
  field: string;
  /** What is wrong with it, for people. */
  description: string;
}

/** Any failure of an SDK call. */
export class SecureConnectError extends Error {
  override name = "SecureConnectError";

  constructor(
    message: string,
    /** The gRPC code (`Code.Unavailable` when the server could not be reached). */
    readonly code: Code,
    /** The server's reason, when it sent one (`UNSPECIFIED`: newer than this SDK). */
    readonly reason: ErrorReason | undefined,
    /** The fields the request got wrong (`google.rpc.BadRequest`). */
    readonly fieldViolations: FieldViolation[],
    /** How long the server asks to wait before retrying, in milliseconds. */
    readonly retryDelayMs: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Wraps what a call threw, decoding the server's error details. */
  static from(thrown: unknown): SecureConnectError {
    if (thrown instanceof SecureConnectError) {
      return thrown;
    }
    const error = ConnectError.from(thrown);
    const info = error.findDetails(ErrorInfoSchema).find((i) => i.domain === ERROR_DOMAIN);
    const reason =
      info === undefined
        ? undefined
        : (ErrorReason[info.reason as keyof typeof ErrorReason] ?? ErrorReason.UNSPECIFIED);
    const fieldViolations = error
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations)
      .map(({ field, description }) => ({ field, description }));
    const retry = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
    const retryDelayMs =
      retry === undefined ? undefined : Number(retry.seconds) * 1000 + retry.nanos / 1e6;
    return new SecureConnectError(
      error.rawMessage,
      error.code,
      reason,
      fieldViolations,
      retryDelayMs,
      { cause: thrown },
    );
  }
}

/** The server ended the session (signed out or revoked elsewhere): sign in again. */
export class SessionEndedError extends SecureConnectError {
  override name = "SessionEndedError";

  constructor() {
    super("the session ended: sign in again", Code.Unauthenticated, undefined, [], undefined);
  }
}

/** The app's token store failed to load, save or clear the session. */
export class TokenStoreError extends SecureConnectError {
  override name = "TokenStoreError";

  constructor(cause: unknown) {
    super(`token store: ${String(cause)}`, Code.Internal, undefined, [], undefined, { cause });
  }
}
