// Sharing a drive file or folder with another user, as a viewer or an editor, from a
// small form under its row in the drive view.

import { type SecureConnect } from "@secureconnect/sdk";
import { ShareRole, type File } from "@secureconnect/sdk/proto";
import { h } from "./dom.js";

/**
 * A form that shares `file` with a user found by username; `done` gets what to tell the
 * user (the share, or why it failed).
 */
export function shareForm(sc: SecureConnect, file: File, done: (outcome: string, failed: boolean) => void): HTMLElement {
  const username = h("input", { placeholder: "Username", "data-testid": "drive-share-user" });
  const role = h("select", { "data-testid": "drive-share-role" },
    h("option", { value: String(ShareRole.VIEWER) }, "can view"),
    h("option", { value: String(ShareRole.EDITOR) }, "can edit"));
  const confirm = h("button.small", { type: "button", "data-testid": "drive-share-confirm" }, "Share");
  const form = h("div.file.share", {}, username, role, confirm);
  confirm.onclick = async () => {
    try {
      const found = await sc.users.searchUsers({ query: username.value, pageSize: 5 });
      const user = found.users.find((u) => u.username === username.value);
      if (!user) {
        done(`no user named ${username.value}`, true);
        return;
      }
      const granted = Number(role.value) as ShareRole;
      await sc.drive.shareFile({ fileId: file.fileId, grantee: { case: "userId", value: user.userId }, role: granted });
      form.remove();
      done(`${file.name}: ${user.username} ${granted === ShareRole.EDITOR ? "can edit" : "can view"}`, false);
    } catch (e) {
      done(e instanceof Error ? e.message : String(e), true);
    }
  };
  return form;
}
