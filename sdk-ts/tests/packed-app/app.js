// A browser app that knows the SDK only as the installed npm package: it signs up, opens a
// chat with the user named in `?bot=`, sends a line and shows the answer when it arrives.
import { createSecureConnect } from "@secureconnect/sdk";

const params = new URLSearchParams(location.search);
const sc = await createSecureConnect({ baseUrl: location.origin });
const me = `web${Date.now()}`;
await sc.register({ email: `${me}@example.com`, username: me, password: "correct horse" });
const { conversation } = await sc.conversations.createConversation({
  type: 1,
  memberUserIds: [params.get("bot") ?? ""],
});
const stream = sc.eventStream("");
let live = false;
for await (const item of stream) {
  if (item.kind === "caughtUp" && !live) {
    live = true;
    await sc.sendText(conversation.conversationId, "ping from the browser ✓");
  }
  if (item.kind === "conversation" && item.event.change.case === "messageSent") {
    const message = item.event.change.value;
    if (message.senderUserId !== sc.session()?.userId) {
      document.body.dataset.answer = message.content?.body.value ?? "";
      break;
    }
  }
}
