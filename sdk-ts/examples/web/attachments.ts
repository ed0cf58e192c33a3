// Message attachments in the demo: a picker in the composer that uploads files to the
// drive and sends them with the caption, and how a message shows what it carries — a
// thumbnail for images (made by the server), name and size for everything, a click to
// download. All through the SDK (`uploadFile`, `sendFiles`, `thumbnail`, `downloadFile`).

import { SecureConnectError, type SecureConnect } from "@secureconnect/sdk";
import type { Attachment } from "@secureconnect/sdk/proto";
import { h } from "./dom.js";

export function size(bytes: bigint): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function explain(e: unknown): string {
  return e instanceof Error && !(e instanceof SecureConnectError) ? e.message : SecureConnectError.from(e).message;
}

/** What a message shows of its attachments. */
export function attachmentList(sc: SecureConnect, attachments: Attachment[]): HTMLElement {
  return h("div.attachments", {}, ...attachments.map((a) => attachmentCard(sc, a)));
}

function attachmentCard(sc: SecureConnect, a: Attachment): HTMLElement {
  const card = h("button.attachment", { type: "button", "data-testid": "attachment", "data-file": a.fileId, title: `Download ${a.name}` });
  if (a.image) {
    // Sized from the message before the thumbnail arrives, so the list does not jump.
    const scale = Math.min(1, 240 / Math.max(a.image.width, a.image.height));
    const img = h("img", {
      alt: a.name,
      "data-testid": "attachment-thumbnail",
      width: String(Math.round(a.image.width * scale)),
      height: String(Math.round(a.image.height * scale)),
    });
    sc.thumbnail(a.fileId)
      .then((blob) => (img.src = URL.createObjectURL(blob)))
      .catch(() => img.replaceWith(h("span.sub", {}, "(no preview)")));
    card.append(img);
  }
  card.append(h("span.name", {}, a.name), h("span.sub", {}, `${size(a.size)} · ${a.contentType}`));
  card.onclick = async () => {
    try {
      const { blob } = await sc.downloadFile(a.fileId);
      const link = h("a", { href: URL.createObjectURL(blob), download: a.name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (e) {
      card.append(h("span.error", {}, explain(e)));
    }
  };
  return card;
}

/**
 * The composer's attach button: uploads the chosen files (with progress in `status`), then
 * sends them with what `caption()` holds to the conversation `target()` names.
 */
export function attachButton(
  sc: SecureConnect,
  target: () => string | undefined,
  caption: () => string,
  status: HTMLElement,
): HTMLElement {
  const picker = h("input", { type: "file", multiple: "", "data-testid": "attach-input" });
  picker.hidden = true;
  const button = h("button.ghost", { type: "button", "data-testid": "attach", title: "Attach files" }, "Attach");
  button.onclick = () => picker.click();
  picker.onchange = async () => {
    const conversationId = target();
    const chosen = Array.from(picker.files ?? []);
    picker.value = "";
    if (!conversationId || !chosen.length) return;
    try {
      const ids: string[] = [];
      for (const file of chosen) {
        const uploaded = await sc.uploadFile(file, {
          onProgress: (sent, total) => {
            status.textContent = `uploading ${file.name}: ${size(BigInt(sent))} of ${size(BigInt(total))}`;
          },
        });
        ids.push(uploaded.fileId);
      }
      await sc.sendFiles(conversationId, caption(), ids);
      status.textContent = "";
    } catch (e) {
      status.textContent = explain(e);
    }
  };
  return h("span", {}, picker, button);
}
