// The SDK as an app gets it: `npm pack`, installed into a fresh browser app, bundled, served
// by the server and run in headless Chromium, chatting in real time with a Rust client
// (the Rust SDK's echo bot, at $SC_BOT_BIN).

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { createSecureConnectNode } from "../dist/node.js";
import { someone, TestServer } from "./server.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const sdk = resolve(here, "..");
const CHROMIUM = process.env.SC_CHROMIUM ?? "/usr/bin/chromium";
const BOT = process.env.SC_BOT_BIN;
if (!BOT) {
  throw new Error("set SC_BOT_BIN to the Rust SDK's bot example (deploy/local/test.sh does)");
}

test("a browser app installs the packed SDK and chats with a Rust client", async () => {
  const app = mkdtempSync(join(tmpdir(), "sc-packed-"));
  let server;
  let bot;
  let browser;
  try {
    // The tarball, installed like any dependency, then bundled.
    const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", app], { cwd: sdk })
      .toString()
      .trim()
      .split("\n")
      .at(-1);
    writeFileSync(join(app, "package.json"), JSON.stringify({
      name: "packed-app",
      private: true,
      type: "module",
      dependencies: { "@secureconnect/sdk": `file:./${tarball}` },
    }));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: app });
    cpSync(join(here, "packed-app"), join(app, "web"), { recursive: true });
    execFileSync(join(sdk, "node_modules/.bin/esbuild"), [
      "web/app.js", "--bundle", "--format=esm", "--target=es2022", "--outfile=web/app.bundle.js", "--log-level=warning",
    ], { cwd: app });

    server = await TestServer.start({ SECURECONNECT_WEB__DIR: join(app, "web") });
    // The Rust client: an account, and the echo bot signed in to it.
    const botAccount = someone("bot");
    const botSession = await (await createSecureConnectNode({ baseUrl: server.baseUrl })).register(botAccount);
    bot = spawn(BOT, [server.baseUrl, botAccount.email, botAccount.password], { stdio: "inherit" });
    const observer = await createSecureConnectNode({ baseUrl: server.baseUrl });
    await observer.register(someone("observer"));
    // Presence is shown to related users only: share a conversation with the bot.
    await observer.conversations.createConversation({ type: 1, memberUserIds: [botSession.userId] });
    await waitForOnline(observer, botSession.userId);

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    const page = await browser.newPage();
    page.on("pageerror", (error) => console.error("page error:", error));
    await page.goto(`${server.baseUrl}/?bot=${botSession.userId}`);
    await page.waitForFunction(() => document.body.dataset.answer !== undefined, null, { timeout: 20_000 });
    const answer = await page.evaluate(() => document.body.dataset.answer);
    assert.equal(answer, "ping from the browser ✓", "the Rust bot echoed the browser's line");
  } finally {
    await browser?.close();
    bot?.kill();
    await server?.close();
    rmSync(app, { recursive: true, force: true });
  }
});

/** Waits until `user` is online (the bot's event stream is open, so it hears messages). */
async function waitForOnline(observer, user) {
  for (let i = 0; i < 200; i += 1) {
    const { presences } = await observer.presence.getPresence({ userIds: [user] });
    if (presences[0]?.state === 1) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the bot never came online");
}
