// Node: native gRPC over HTTP/2 (`@connectrpc/connect-node`) instead of gRPC-web.

import { createGrpcTransport } from "@connectrpc/connect-node";
import { createSecureConnect, type Options, type SecureConnect } from "./index.js";

export * from "./index.js";

/** `createSecureConnect` over native gRPC (HTTP/2 cleartext or TLS by `baseUrl`). */
export function createSecureConnectNode(options: Omit<Options, "transport">): Promise<SecureConnect> {
  return createSecureConnect({
    ...options,
    transport: (interceptors) => createGrpcTransport({ baseUrl: options.baseUrl, interceptors }),
  });
}
