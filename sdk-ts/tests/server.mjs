// A real SecureConnect server for the tests: the binary at $SC_SERVER_BIN (the test
// command passes the debug build), on the embedded default in a temporary directory.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const BIN = process.env.SC_SERVER_BIN;
if (!BIN) {
  throw new Error("set SC_SERVER_BIN to the secureconnect binary (deploy/local/test.sh does)");
}

export class TestServer {
  static async start(env = {}) {
    const server = new TestServer(mkdtempSync(join(tmpdir(), "sc-ts-")), env);
    await server.#spawn("127.0.0.1:0");
    return server;
  }

  constructor(dir, env) {
    this.dir = dir;
    this.env = env;
  }

  get baseUrl() {
    return `http://${this.addr}`;
  }

  async #spawn(listen) {
    this.child = spawn(BIN, ["serve", "--listen", listen], {
      cwd: this.dir,
      env: { ...process.env, RUST_LOG: "info", NO_COLOR: "1", ...this.env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: this.child.stdout });
    this.addr = await new Promise((resolve, reject) => {
      lines.on("line", (line) => {
        const found = /addr=(\S+)/.exec(line);
        if (found) resolve(found[1]);
      });
      this.child.once("exit", (code) => reject(new Error(`server exited (${code})`)));
    });
  }

  /** SIGTERM, then start again on the same address and data (a deploy restarting it). */
  async restart() {
    await this.stop();
    await this.#spawn(this.addr);
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await exited;
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Server settings that keep files in the suite's S3 server (SeaweedFS), when the test
 * command started one (it exports `SC_TEST_S3_*`); else `null`.
 */
export function s3Env() {
  const env = process.env;
  if (!env.SC_TEST_S3_ENDPOINT) return null;
  return {
    SECURECONNECT_BLOBS__S3_ENDPOINT: env.SC_TEST_S3_ENDPOINT,
    SECURECONNECT_BLOBS__S3_BUCKET: env.SC_TEST_S3_BUCKET,
    SECURECONNECT_BLOBS__S3_ACCESS_KEY_ID: env.SC_TEST_S3_ACCESS_KEY_ID,
    SECURECONNECT_BLOBS__S3_SECRET_ACCESS_KEY: env.SC_TEST_S3_SECRET_ACCESS_KEY,
  };
}

let users = 0;
/** A unique new user's registration. */
export function someone(name = "user") {
  users += 1;
  const username = `${name}${users}_${process.pid}`;
  return { email: `${username}@example.com`, password: "correct horse", username };
}
