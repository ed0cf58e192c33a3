// The web demo in a real headless Chromium (Debian's, never a downloaded one), served by the
// server itself, talking gRPC-web to it: two people sign up and chat in real time, text in
// any script round-trips byte for byte, typing shows on the other side, a reload resumes
// the stream, 20 messages sent while one page is offline all arrive once, in order, and a
// new group shows up live; three people hold a video call through the server's SFU, one
// sharing her screen. The drive's tests run on local files and, when the test command
// started SeaweedFS, on S3 too.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { s3Env, someone, TestServer } from "./server.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = resolve(here, "../test-results");
const CHROMIUM = process.env.SC_CHROMIUM ?? "/usr/bin/chromium";

/** Where the drive's files are kept, by the name its tests carry. */
const backends = { "local files": {}, ...(s3Env() ? { S3: s3Env() } : {}) };
const servers = {};
let server; // On local files.
let browser;
before(async () => {
  for (const [backend, env] of Object.entries(backends)) {
    servers[backend] = await TestServer.start({
      SECURECONNECT_WEB__DIR: resolve(here, "../examples/web/dist"),
      SECURECONNECT_LIMITS__MESSAGES_PER_SECOND: "1000",
      // Groups of three or more are fanned out on read, as in the server's own suites,
      // so the page's group flows (the three-person call) take that path too.
      SECURECONNECT_DATABASE__FANOUT_ON_READ_MEMBERS: "2",
      ...env,
    });
  }
  server = servers["local files"];
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Calls: a synthetic camera and microphone, and no permission prompt.
    args: ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"],
  });
  mkdirSync(artifacts, { recursive: true });
});
after(async () => {
  await browser?.close();
  for (const running of Object.values(servers)) await running.close();
});

/** A new browser profile with the demo open (from `on`) and a fresh account signed up in it. */
async function signedUp(name, on = server) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error:`, error));
  page.on("console", (message) => {
    if (message.type() === "warning" || message.type() === "error") {
      console.error(`[${name}] console ${message.type()}:`, message.text());
    }
  });
  await page.goto(on.baseUrl);
  const who = someone(name);
  await page.getByTestId("email").fill(who.email);
  await page.getByTestId("username").fill(who.username);
  await page.getByTestId("password").fill(who.password);
  await page.getByTestId("sign-up").click();
  await page.getByTestId("me").filter({ hasText: who.username }).waitFor();
  return { context, page, ...who };
}

const texts = (page) => page.locator("[data-testid=message] .text").allTextContents();

test("two people chat in the browser over gRPC-web", async () => {
  const ann = await signedUp("ann");
  const bob = await signedUp("bob");

  // Ann starts a chat with Bob; Bob's list shows it live, with an unread count.
  await ann.page.getByTestId("new-chat").fill(bob.username);
  await ann.page.getByTestId("start-chat").click();
  await ann.page.getByTestId("chat-title").filter({ hasText: bob.username }).waitFor();
  const hello = "héllo 👋🏽 e\u0301 — שלום, مرحبا";
  await ann.page.getByTestId("composer").fill(hello);
  await ann.page.getByTestId("composer").press("Enter");
  await bob.page.getByTestId("unread").filter({ hasText: "1" }).waitFor();
  await bob.page.getByTestId("conversation").first().click();
  await bob.page.locator("[data-testid=message] .text").filter({ hasText: "héllo" }).waitFor();
  const seen = (await texts(bob.page)).at(-1);
  assert.deepEqual(Buffer.from(seen ?? ""), Buffer.from(hello), "byte for byte");

  // Typing shows on the other side.
  await bob.page.getByTestId("composer").pressSequentially("typing…");
  await ann.page.getByTestId("chat-status").filter({ hasText: "is typing" }).waitFor();
  await bob.page.getByTestId("composer").press("Enter");
  await ann.page.locator("[data-testid=message] .text").filter({ hasText: "typing…" }).waitFor();

  // A reload resumes the stream from its cursor.
  await bob.page.reload();
  await bob.page.getByTestId("conversation").first().click();
  await ann.page.getByTestId("composer").fill("after the reload");
  await ann.page.getByTestId("composer").press("Enter");
  await bob.page.locator("[data-testid=message] .text").filter({ hasText: "after the reload" }).waitFor();
  await bob.page.screenshot({ path: join(artifacts, "chat.png") });

  // Bob's network drops while Ann sends 20 messages; back online, all 20 arrive once, in order.
  await bob.context.setOffline(true);
  for (let i = 1; i <= 20; i += 1) {
    await ann.page.getByTestId("composer").fill(`offline ${i}`);
    await ann.page.getByTestId("composer").press("Enter");
    await ann.page.locator("[data-testid=message] .text").filter({ hasText: new RegExp(`^offline ${i}$`) }).waitFor();
  }
  await bob.context.setOffline(false);
  try {
    await bob.page
      .locator("[data-testid=message] .text")
      .filter({ hasText: /^offline 20$/ })
      .waitFor({ timeout: 40_000 });
  } catch (error) {
    await bob.page.screenshot({ path: join(artifacts, "bob-failed.png") });
    console.error("bob's status:", await bob.page.getByTestId("chat-status").textContent());
    throw error;
  }
  const offline = (await texts(bob.page)).filter((t) => t.startsWith("offline "));
  assert.deepEqual(offline, Array.from({ length: 20 }, (_, i) => `offline ${i + 1}`));

  // A group: Ann creates it, it appears in Bob's list at once.
  await ann.page.getByTestId("group-title").fill("Launch team");
  await ann.page.getByTestId("group-members").fill(bob.username);
  await ann.page.getByTestId("create-group").click();
  await ann.page.getByTestId("chat-title").filter({ hasText: "Launch team" }).waitFor();
  await bob.page.getByTestId("conversation").filter({ hasText: "Launch team" }).waitFor();

  // Readable at phone width too (as a phone loads it: the new-chat panel folded).
  await bob.page.setViewportSize({ width: 390, height: 844 });
  await bob.page.reload();
  await bob.page.getByTestId("conversation").filter({ hasText: ann.username }).click();
  await bob.page.locator("[data-testid=message] .text").filter({ hasText: /^offline 20$/ }).waitFor();
  await bob.page.screenshot({ path: join(artifacts, "bob-phone.png") });
  await ann.page.screenshot({ path: join(artifacts, "ann.png") });
  await bob.page.screenshot({ path: join(artifacts, "bob.png") });
  await ann.context.close();
  await bob.context.close();
});

test("a poll's tally moves live on the creator's page as the other votes", async () => {
  const ann = await signedUp("pollster");
  const bob = await signedUp("voter");
  await ann.page.getByTestId("group-title").fill("Lunch club");
  await ann.page.getByTestId("group-members").fill(bob.username);
  await ann.page.getByTestId("create-group").click();
  await ann.page.getByTestId("chat-title").filter({ hasText: "Lunch club" }).waitFor();

  // Ann creates a poll from the composer.
  await ann.page.getByTestId("poll-toggle").click();
  await ann.page.getByTestId("poll-question").fill("Lunch?");
  await ann.page.getByTestId("poll-options").fill("Pizza, Sushi, Salad");
  await ann.page.getByTestId("poll-create").click();
  const annsPoll = ann.page.getByTestId("poll").filter({ hasText: "Lunch?" });
  await annsPoll.waitFor();
  await annsPoll.getByTestId("poll-total").filter({ hasText: "0 voted" }).waitFor();

  // Bob opens the group, sees the poll and votes for Sushi.
  await bob.page.getByTestId("conversation").filter({ hasText: "Lunch club" }).click();
  const bobsPoll = bob.page.getByTestId("poll").filter({ hasText: "Lunch?" });
  await bobsPoll.getByTestId("poll-option").filter({ hasText: "Sushi" }).click();
  await bobsPoll.getByTestId("poll-total").filter({ hasText: "1 voted" }).waitFor();

  // Ann's page moves without a reload: a live tally from the stream.
  const sushi = annsPoll.getByTestId("poll-option").filter({ hasText: "Sushi" });
  await sushi.getByTestId("poll-count").filter({ hasText: /^1$/ }).waitFor();
  await annsPoll.getByTestId("poll-total").filter({ hasText: "1 voted" }).waitFor();
  const pizza = annsPoll.getByTestId("poll-option").filter({ hasText: "Pizza" });
  assert.equal(await pizza.getByTestId("poll-count").textContent(), "0");

  // Bob changes his mind; Ann sees the bars move again.
  await bobsPoll.getByTestId("poll-option").filter({ hasText: "Pizza" }).click();
  await pizza.getByTestId("poll-count").filter({ hasText: /^1$/ }).waitFor();
  await sushi.getByTestId("poll-count").filter({ hasText: /^0$/ }).waitFor();
  await ann.page.screenshot({ path: join(artifacts, "poll-ann.png") });

  // Ann closes it; Bob's page shows it closed, and his options no longer take votes.
  await annsPoll.getByTestId("poll-close").click();
  await bobsPoll.getByTestId("poll-total").filter({ hasText: "closed · 1 voted" }).waitFor();
  assert.ok(await bobsPoll.getByTestId("poll-option").first().isDisabled());
  await bob.page.screenshot({ path: join(artifacts, "poll-bob.png") });
  await ann.context.close();
  await bob.context.close();
});

for (const backend of Object.keys(backends)) test(`a 20 MiB file uploaded from one page downloads byte-identical on another (${backend})`, async () => {
  const on = servers[backend];
  const ann = await signedUp("uploader", on);
  // The same account in a second browser profile (another device).
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, acceptDownloads: true });
  const other = await context.newPage();
  other.on("pageerror", (error) => console.error("[other device] page error:", error));
  await other.goto(on.baseUrl);
  await other.getByTestId("email").fill(ann.email);
  await other.getByTestId("password").fill(ann.password);
  await other.getByTestId("sign-in").click();
  await other.getByTestId("me").filter({ hasText: ann.username }).waitFor();

  const bytes = Buffer.alloc(20 * 1024 * 1024 + 321);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = (i * 7 + (i >> 12)) & 0xff;
  await ann.page.getByTestId("open-drive").click();
  await ann.page.getByTestId("drive-upload-input").setInputFiles({
    name: "dataset.bin",
    mimeType: "application/octet-stream",
    buffer: bytes,
  });
  await ann.page.getByTestId("drive-status").filter({ hasText: "uploaded dataset.bin" }).waitFor({ timeout: 60_000 });
  assert.equal(await ann.page.getByTestId("drive-progress").evaluate((bar) => bar.value), 1);
  await ann.page.screenshot({ path: join(artifacts, "drive-upload.png") });

  await other.getByTestId("open-drive").click();
  const row = other.getByTestId("drive-file").filter({ hasText: "dataset.bin" });
  const [download] = await Promise.all([
    other.waitForEvent("download", { timeout: 60_000 }),
    row.getByTestId("drive-download").click(),
  ]);
  assert.equal(download.suggestedFilename(), "dataset.bin");
  const saved = join(artifacts, "downloaded-dataset.bin");
  await download.saveAs(saved);
  const { readFileSync, rmSync } = await import("node:fs");
  const got = readFileSync(saved);
  rmSync(saved);
  assert.equal(got.length, bytes.length);
  assert.ok(got.equals(bytes), "byte-identical");
  await other.screenshot({ path: join(artifacts, "drive-download.png") });

  // A share link, opened with no account at all: a plain GET on the server's port.
  await row.getByTestId("drive-share-link").click();
  const url = await other.getByTestId("drive-link-url").getAttribute("href");
  assert.ok(url?.startsWith(`${on.baseUrl}/s/`), url ?? "no link");
  const stranger = await browser.newContext({ acceptDownloads: true });
  const response = await stranger.request.get(url);
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-disposition"] ?? "", /dataset\.bin/);
  assert.ok(Buffer.from(await response.body()).equals(bytes), "byte-identical through the link");
  await stranger.close();
  await ann.context.close();
  await context.close();
});

for (const backend of Object.keys(backends)) test(`a photo sent in a chat shows its server-made thumbnail on the other page and downloads intact (${backend})`, async () => {
  const on = servers[backend];
  const ann = await signedUp("photographer", on);
  const bob = await signedUp("viewer", on);
  await ann.page.getByTestId("new-chat").fill(bob.username);
  await ann.page.getByTestId("start-chat").click();
  await ann.page.getByTestId("chat-title").filter({ hasText: bob.username }).waitFor();

  // A real PNG, drawn by the browser itself.
  const dataUrl = await ann.page.evaluate(() => {
    const canvas = document.createElement("canvas");
    canvas.width = 640;
    canvas.height = 480;
    const g = canvas.getContext("2d");
    const gradient = g.createLinearGradient(0, 0, 640, 480);
    gradient.addColorStop(0, "#ff7e5f");
    gradient.addColorStop(1, "#2b5876");
    g.fillStyle = gradient;
    g.fillRect(0, 0, 640, 480);
    return canvas.toDataURL("image/png");
  });
  const png = Buffer.from(dataUrl.split(",")[1], "base64");
  await ann.page.getByTestId("composer").fill("sunset");
  await ann.page.getByTestId("attach-input").setInputFiles({ name: "sunset.png", mimeType: "image/png", buffer: png });

  await bob.page.getByTestId("conversation").first().click();
  const card = bob.page.getByTestId("attachment").filter({ hasText: "sunset.png" });
  await card.waitFor();
  const thumbnail = card.getByTestId("attachment-thumbnail");
  await bob.page.waitForFunction(
    (img) => img instanceof HTMLImageElement && img.complete && img.naturalWidth > 0,
    await thumbnail.elementHandle(),
  );
  const natural = await thumbnail.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  assert.deepEqual(natural, [320, 240], "the server's thumbnail, not the original");
  assert.match(await card.textContent(), /image\/png/);
  await bob.page.locator("[data-testid=message] .text").filter({ hasText: "sunset" }).waitFor();
  await bob.page.screenshot({ path: join(artifacts, "attachment.png") });

  const [download] = await Promise.all([bob.page.waitForEvent("download"), card.click()]);
  assert.equal(download.suggestedFilename(), "sunset.png");
  const saved = join(artifacts, "downloaded-sunset.png");
  await download.saveAs(saved);
  const { readFileSync, rmSync } = await import("node:fs");
  assert.ok(readFileSync(saved).equals(png), "byte-identical");
  rmSync(saved);
  await ann.context.close();
  await bob.context.close();
});

for (const backend of Object.keys(backends)) test(`an editor replaces a shared file from the demo, a viewer is refused, the owner gets the new bytes (${backend})`, async () => {
  const on = servers[backend];
  const ann = await signedUp("owner", on);
  const bob = await signedUp("editor", on);
  const cat = await signedUp("reader", on);
  await ann.page.getByTestId("open-drive").click();
  await ann.page.getByTestId("drive-upload-input").setInputFiles({
    name: "plan.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("draft 1"),
  });
  await ann.page.getByTestId("drive-status").filter({ hasText: "uploaded plan.txt" }).waitFor();
  const row = ann.page.getByTestId("drive-file").filter({ hasText: "plan.txt" });
  for (const [who, role, says] of [[bob, "2", "can edit"], [cat, "1", "can view"]]) {
    await row.getByTestId("drive-share").click();
    await ann.page.getByTestId("drive-share-user").fill(who.username);
    await ann.page.getByTestId("drive-share-role").selectOption(role);
    await ann.page.getByTestId("drive-share-confirm").click();
    await ann.page.getByTestId("drive-status").filter({ hasText: `${who.username} ${says}` }).waitFor();
  }

  const draft2 = Buffer.from("draft 2, from the editor");
  await bob.page.getByTestId("open-drive").click();
  await bob.page.getByTestId("drive-shared-with-me").click();
  const shared = bob.page.getByTestId("drive-file").filter({ hasText: "plan.txt" });
  await shared.getByTestId("drive-replace-input").setInputFiles({ name: "plan-v2.txt", mimeType: "text/plain", buffer: draft2 });
  await bob.page.getByTestId("drive-status").filter({ hasText: "replaced plan.txt" }).waitFor();
  await bob.page.screenshot({ path: join(artifacts, "drive-editor.png") });

  await cat.page.getByTestId("open-drive").click();
  await cat.page.getByTestId("drive-shared-with-me").click();
  await cat.page
    .getByTestId("drive-file")
    .filter({ hasText: "plan.txt" })
    .getByTestId("drive-replace-input")
    .setInputFiles({ name: "vandal.txt", mimeType: "text/plain", buffer: Buffer.from("gone") });
  await cat.page.getByTestId("drive-error").filter({ hasText: "only the owner and editors" }).waitFor();

  await ann.page.getByTestId("drive-mine").click();
  const [download] = await Promise.all([
    ann.page.waitForEvent("download"),
    ann.page.getByTestId("drive-file").filter({ hasText: "plan.txt" }).getByTestId("drive-download").click(),
  ]);
  assert.equal(download.suggestedFilename(), "plan.txt", "the name stays");
  const saved = join(artifacts, "downloaded-plan.txt");
  await download.saveAs(saved);
  const { readFileSync, rmSync } = await import("node:fs");
  assert.ok(readFileSync(saved).equals(draft2), "the editor's bytes");
  rmSync(saved);
  for (const who of [ann, bob, cat]) await who.context.close();
});

/** Inbound video on the page's call connection (`RTCPeerConnection.getStats()`): per track. */
async function inboundVideo(page) {
  return page.evaluate(async () => {
    const stats = await globalThis.secureconnectCall.peer.getStats();
    const tracks = [];
    stats.forEach((report) => {
      if (report.type === "inbound-rtp" && report.kind === "video") {
        tracks.push({ bytes: report.bytesReceived ?? 0, frames: report.framesDecoded ?? 0 });
      }
    });
    return tracks;
  });
}

/** Waits until `page` decodes video from `count` others, frames still rising. */
async function decodingFrom(page, count) {
  const flowing = async () => {
    const first = await inboundVideo(page);
    await page.waitForTimeout(700);
    const then = await inboundVideo(page);
    return then.filter((t, i) => t.frames > (first[i]?.frames ?? 0) && t.bytes > (first[i]?.bytes ?? 0)).length;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if ((await flowing()) >= count) return;
    assert.ok(Date.now() < deadline, `video from ${count} others within 30 s`);
  }
}

test("three people hold a video call through the server's SFU", async () => {
  const ann = await signedUp("caller");
  const bob = await signedUp("callee");
  const cat = await signedUp("latecomer");
  await ann.page.getByTestId("group-title").fill("Standup");
  await ann.page.getByTestId("group-members").fill(`${bob.username}, ${cat.username}`);
  await ann.page.getByTestId("create-group").click();
  await ann.page.getByTestId("chat-title").filter({ hasText: "Standup" }).waitFor();

  // Ann calls; Bob's page rings and he answers; each decodes the other's video.
  await ann.page.getByTestId("call-start-video").click();
  await ann.page.getByTestId("call-view").waitFor();
  await bob.page.getByTestId("incoming-call").waitFor({ state: "visible" });
  await bob.page.getByTestId("incoming-join").click();
  await bob.page.getByTestId("call-view").waitFor();
  await decodingFrom(ann.page, 1);
  await decodingFrom(bob.page, 1);
  await ann.page.locator("[data-testid=remote-video]").first().waitFor();

  // Cat joins from the call's card in the chat: everyone sees two others.
  await cat.page.getByTestId("conversation").filter({ hasText: "Standup" }).click();
  await cat.page.getByTestId("call-join").click();
  await cat.page.getByTestId("call-view").waitFor();
  for (const who of [ann, bob, cat]) {
    await decodingFrom(who.page, 2);
    await who.page.locator("[data-testid=remote-video]").nth(1).waitFor();
    assert.equal(await who.page.locator("[data-testid=remote-video]").count(), 2, `${who.username} sees two others`);
  }
  for (const who of [ann, bob, cat]) {
    await who.page.screenshot({ path: join(artifacts, `call-${who.username.split("-")[0]}.png`) });
  }

  // Ann shares her screen: it reaches the others as a stream of its own, beside her camera.
  await ann.page.getByTestId("call-screen").click();
  for (const who of [bob, cat]) {
    await who.page.locator("[data-testid=remote-screen]").waitFor();
    await decodingFrom(who.page, 3);
  }
  await bob.page.screenshot({ path: join(artifacts, "call-screen-share.png") });

  // Bob leaves: the others are left with one remote video each; the card tells the call.
  await bob.page.getByTestId("call-leave").click();
  await bob.page.getByTestId("call-view").waitFor({ state: "detached" });
  for (const who of [ann, cat]) {
    await who.page.locator("[data-testid=remote-video]").nth(1).waitFor({ state: "detached" });
  }
  await ann.page.getByTestId("call-status").filter({ hasText: "2 in the call" }).waitFor();
  for (const who of [ann, bob, cat]) await who.context.close();
});
