// The demo's drive view: the user's folders and files, uploads with a progress bar,
// downloads, sharing with viewers and editors, and what others shared — all through the
// SDK (`uploadFile`, `downloadFile`, `sc.drive`).

import { SecureConnectError, type SecureConnect } from "@secureconnect/sdk";
import { FileKind, type File } from "@secureconnect/sdk/proto";
import { size } from "./attachments.js";
import { h } from "./dom.js";
import { shareForm } from "./sharing.js";

/** The drive view, starting in the top folder; `server` is the API's (and links') origin. */
export function driveView(sc: SecureConnect, server: string): HTMLElement {
  const path: File[] = []; // The folders opened, top first.
  let shared = false; // Browsing what others shared instead of one's own drive.
  const crumbs = h("div.crumbs", { "data-testid": "drive-path" });
  const list = h("div.files", { "data-testid": "drive-files" });
  const picker = h("input", { type: "file", "data-testid": "drive-upload-input" });
  const progress = h("progress", { max: "1", value: "0", "data-testid": "drive-progress" });
  const status = h("div.sub", { "data-testid": "drive-status" });
  const folderName = h("input", { placeholder: "New folder", "data-testid": "drive-folder-name" });
  const makeFolder = h("button.ghost", { type: "button", "data-testid": "drive-create-folder" }, "Create");
  const error = h("div.error", { "data-testid": "drive-error" });
  const sharedWithMe = h("button.ghost.small", { type: "button", "data-testid": "drive-shared-with-me" }, "Shared with me");
  const mine = h("button.ghost.small", { type: "button", "data-testid": "drive-mine" }, "My drive");
  const view = h("section.chat.drive", { "data-testid": "drive" },
    h("header", {}, h("div", {}, "Drive"), crumbs, h("span", {}, mine, sharedWithMe)),
    h("div.drive-tools", {}, picker, progress, folderName, makeFolder),
    status, error, list);
  const here = () => path.at(-1)?.fileId ?? "";
  const explain = (e: unknown) => (e instanceof Error && !(e instanceof SecureConnectError) ? e.message : SecureConnectError.from(e).message);

  async function refresh(): Promise<void> {
    crumbs.replaceChildren(
      ...[{ name: shared ? "Shared with me" : "Drive" } as File, ...path].map((folder, i) => {
        const crumb = h("button.ghost.small", { type: "button" }, folder.name);
        crumb.onclick = () => {
          path.splice(i);
          void refresh();
        };
        return crumb;
      }));
    const { files } = shared && !path.length
      ? await sc.drive.listSharedWithMe({ pageSize: 200 })
      : await sc.drive.listFiles({ parentId: here(), pageSize: 200 });
    list.replaceChildren(...files.map((file) => {
      const folder = file.kind === FileKind.FOLDER;
      const row = h("div.file", { "data-testid": "drive-file", "data-name": file.name },
        h("span.name", {}, folder ? `📁 ${file.name}` : file.name),
        h("span.sub", {}, folder ? "" : `${size(file.size)} · ${file.contentType}`));
      if (folder) {
        row.onclick = () => {
          path.push(file);
          void refresh();
        };
      } else {
        const download = h("button.small", { type: "button", "data-testid": "drive-download" }, "Download");
        download.onclick = () => void save(file);
        row.append(download, replaceButton(file));
        if (!shared) {
          const link = h("button.ghost.small", { type: "button", "data-testid": "drive-share-link" }, "Share link");
          link.onclick = () => void shareLink(file, row);
          row.append(link);
        }
      }
      if (!shared) {
        const share = h("button.ghost.small", { type: "button", "data-testid": "drive-share" }, "Share");
        share.onclick = (event) => {
          event.stopPropagation(); // Not a click on the folder.
          row.after(shareForm(sc, file, (outcome, failed) => {
            (failed ? error : status).textContent = outcome;
          }));
        };
        row.append(share);
      }
      return row;
    }));
    if (!files.length) list.append(h("div.empty", {}, shared ? "Nothing shared with you yet." : "Nothing here yet: upload a file."));
  }

  /** A button that replaces the file's contents with a file picked (owners and editors). */
  function replaceButton(file: File): HTMLElement {
    const input = h("input", { type: "file", hidden: "", "data-testid": "drive-replace-input" });
    const button = h("button.ghost.small", { type: "button", "data-testid": "drive-replace" }, "Replace…", input);
    button.onclick = () => input.click();
    input.onclick = (event) => event.stopPropagation();
    input.onchange = () => {
      const chosen = input.files?.[0];
      if (chosen) void send(chosen, { replaceFileId: file.fileId });
    };
    return button;
  }

  /** A week-long link anyone can download the file from, shown under its row. */
  async function shareLink(file: File, row: HTMLElement): Promise<void> {
    error.textContent = "";
    try {
      const week = new Date(Date.now() + 7 * 24 * 3600 * 1000);
      const { link } = await sc.drive.createShareLink({
        fileId: file.fileId,
        expireTime: { seconds: BigInt(Math.floor(week.getTime() / 1000)), nanos: 0 },
      });
      if (!link) return;
      const url = new URL(link.path, server).toString();
      row.after(h("div.file.link", {},
        h("a", { href: url, "data-testid": "drive-link-url", target: "_blank", rel: "noreferrer" }, url),
        h("span.sub", {}, `until ${week.toLocaleDateString()}`)));
    } catch (e) {
      error.textContent = explain(e);
    }
  }

  async function save(file: File): Promise<void> {
    error.textContent = "";
    try {
      const { blob } = await sc.downloadFile(file.fileId, {
        onProgress: (received, total) => {
          progress.value = total ? received / total : 1;
          status.textContent = `downloading ${file.name}: ${size(BigInt(received))} of ${size(file.size)}`;
        },
      });
      const link = h("a", { href: URL.createObjectURL(blob), download: file.name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      status.textContent = `downloaded ${file.name}`;
    } catch (e) {
      error.textContent = explain(e);
    }
  }

  /** Uploads a picked file: into the folder shown, or as a file's new contents. */
  async function send(chosen: globalThis.File, target: { replaceFileId?: string }): Promise<void> {
    error.textContent = "";
    try {
      const file = await sc.uploadFile(chosen, {
        folderId: here(),
        ...target,
        onProgress: (sent, total) => {
          progress.value = total ? sent / total : 1;
          status.textContent = `uploading ${chosen.name}: ${size(BigInt(sent))} of ${size(BigInt(total))}`;
        },
      });
      status.textContent = `${target.replaceFileId ? "replaced" : "uploaded"} ${file.name} (${size(file.size)})`;
      await refresh();
    } catch (e) {
      error.textContent = explain(e);
    }
  }

  picker.onchange = async () => {
    const chosen = picker.files?.[0];
    if (!chosen) return;
    await send(chosen, {});
    picker.value = "";
  };
  const browse = (others: boolean) => {
    shared = others;
    path.splice(0);
    picker.disabled = others; // New files go into one's own drive.
    makeFolder.disabled = others;
    void refresh().catch((e) => {
      error.textContent = explain(e);
    });
  };
  sharedWithMe.onclick = () => browse(true);
  mine.onclick = () => browse(false);
  makeFolder.onclick = async () => {
    error.textContent = "";
    try {
      await sc.drive.createFolder({ parentId: here(), name: folderName.value });
      folderName.value = "";
      await refresh();
    } catch (e) {
      error.textContent = explain(e);
    }
  };
  void refresh().catch((e) => {
    error.textContent = explain(e);
  });
  return view;
}
