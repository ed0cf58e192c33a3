// Files in and out of the drive from a browser (or Node): uploads in 4 MiB chunks that ride
// out dropped connections (a failed chunk is retried from where the server says the upload
// stands), and downloads gathered into a Blob, both with progress.

import { Code, type Client } from "@connectrpc/connect";
import { SecureConnectError } from "./errors.js";
import { type DriveService, type File } from "./gen/secureconnect/drive/v1/drive_pb.js";
import { backoffMs } from "./events.js";

/** Bytes per `uploadChunk` call (the server's largest). */
export const UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;
/** Files up to this size declare their SHA-256 (Web Crypto hashes a whole buffer at once). */
const HASHED_UP_TO = 512 * 1024 * 1024;
/** Tries per chunk before giving up (a chunk is never sent twice into the file). */
const CHUNK_TRIES = 6;

export interface UploadOptions {
  /** The name to give it (default: the File's own name, else "upload"). */
  name?: string;
  /** The folder to put it in (default: the top folder). */
  folderId?: string;
  /**
   * A file whose contents this upload replaces (the user's, or shared with them as an
   * editor): it keeps its id, name and shares; `name` and `folderId` are then unused.
   */
  replaceFileId?: string;
  /** Called as bytes are acknowledged. */
  onProgress?: (sent: number, total: number) => void;
  /** Stops the upload (the server discards it when aborted). */
  signal?: AbortSignal;
}

export interface DownloadOptions {
  /** Called as bytes arrive. */
  onProgress?: (received: number, total: number) => void;
  /** Stops the download. */
  signal?: AbortSignal;
}

async function sha256Hex(blob: Blob): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Errors worth another try: the network, or a server that was briefly away. */
function transient(error: SecureConnectError): boolean {
  return [Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Aborted].includes(error.code);
}

export async function uploadFile(
  drive: Client<typeof DriveService>,
  blob: Blob,
  options: UploadOptions = {},
): Promise<File> {
  const name = options.name ?? (blob as { name?: string }).name ?? "upload";
  const total = blob.size;
  const sha256 = total <= HASHED_UP_TO ? await sha256Hex(blob) : "";
  const { upload } = await drive.createUpload({
    parentId: options.replaceFileId ? "" : (options.folderId ?? ""),
    name: options.replaceFileId ? "" : name,
    size: BigInt(total),
    sha256,
    replaceFileId: options.replaceFileId ?? "",
  });
  if (upload === undefined) {
    throw new Error("CreateUpload answered no upload");
  }
  const uploadId = upload.uploadId;
  let offset = 0;
  options.onProgress?.(0, total);
  try {
    while (offset < total) {
      options.signal?.throwIfAborted();
      const data = new Uint8Array(await blob.slice(offset, offset + UPLOAD_CHUNK_BYTES).arrayBuffer());
      for (let attempt = 1; ; attempt += 1) {
        try {
          const answer = await drive.uploadChunk({ uploadId, offset: BigInt(offset), data }, { signal: options.signal });
          offset = Number(answer.receivedBytes);
          break;
        } catch (thrown) {
          const error = SecureConnectError.from(thrown);
          if (options.signal?.aborted || !transient(error) || attempt >= CHUNK_TRIES) {
            throw error;
          }
          await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt)));
          // The chunk may have landed before the answer was lost: ask where things stand.
          const standing = await drive.getUpload({ uploadId }).catch(() => undefined);
          if (standing?.upload && Number(standing.upload.receivedBytes) !== offset) {
            offset = Number(standing.upload.receivedBytes);
            break;
          }
        }
      }
      options.onProgress?.(offset, total);
    }
    const { file } = await drive.completeUpload({ uploadId });
    if (file === undefined) {
      throw new Error("CompleteUpload answered no file");
    }
    return file;
  } catch (error) {
    if (options.signal?.aborted) {
      await drive.abortUpload({ uploadId }).catch(() => undefined);
    }
    throw error;
  }
}

export async function downloadFile(
  drive: Client<typeof DriveService>,
  fileId: string,
  options: DownloadOptions = {},
): Promise<{ file: File; blob: Blob }> {
  const parts: Uint8Array[] = [];
  let file: File | undefined;
  let received = 0;
  for await (const chunk of drive.downloadFile({ fileId }, { signal: options.signal })) {
    file ??= chunk.file;
    parts.push(chunk.data);
    received += chunk.data.length;
    options.onProgress?.(received, Number(file?.size ?? 0n));
  }
  if (file === undefined) {
    throw new Error("DownloadFile sent no file");
  }
  return { file, blob: new Blob(parts as BlobPart[], { type: file.contentType || "application/octet-stream" }) };
}
