//! The drive: each user's files and folders, resumable uploads, downloads, the trash and
//! the quota. Metadata lives in the `DriveStore`, bytes in the `BlobStore` under keys the
//! server chooses (`files/<id>`, `uploads/<id>/<offset>`), never under anything a client
//! sent. Only owners change files; a file shared with someone (or with a conversation
//! they are in) — or inside a shared folder — they may read. Anything else does not exist
//! for them (`NOT_FOUND`).

use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::{TokenAuthority, passwords::Passwords},
    blobs::BlobStore,
    config::DriveConfig,
    domain::{
        ImageSize, Time,
        drive::{
            Access, DirectUpload, DriveFile, FileKind, FileOrder, Grantee, Part, Share, ShareLink,
            ShareRole, Thumbnail, Upload, Usage,
        },
    },
    error::{Error, Reason, Result},
    paging,
    ratelimit::{Limit, RateLimiter},
    store::{
        DriveStore, NewUpload,
        drive::{CompletedFile, Emptied},
    },
    validate::Violations,
};

pub mod names;
mod thumbnails;

/// The largest chunk, unless the server's request limit is lower.
pub const MAX_CHUNK_BYTES: usize = 4 << 20;
/// Download chunks.
pub const DOWNLOAD_CHUNK_BYTES: u64 = 1 << 20;
/// How long a direct download URL works.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How many bytes the content type is recognised from.
const SNIFF_BYTES: usize = 8 << 10;
/// The parts a streamed upload is stored in (fewer parts than chunks: fewer writes).
const STREAM_PART_BYTES: usize = 16 << 20;
/// The smallest part of a direct upload (S3's minimum is 5 MiB).
pub const DIRECT_PART_BYTES: u64 = 16 << 20;
/// S3's limit on a multipart upload's parts.
const MAX_DIRECT_PARTS: u64 = 10_000;
/// Ranges a direct upload's blob is read back in, to hash it.
const DIGEST_READ_BYTES: u64 = 8 << 20;

/// A part of a direct upload as the client reports it done.
#[derive(Debug, Clone, Default)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// Where a client PUTs a part of a direct upload.
#[derive(Debug, Clone)]
pub struct DirectPart {
    pub number: u16,
    pub offset: u64,
    pub size: u64,
    pub url: url::Url,
}

/// Input of `create_upload`.
#[derive(Debug, Clone, Default)]
pub struct CreateUpload {
    pub parent_id: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
    /// Asks for a direct upload (presigned part URLs), when the blob store can.
    pub direct: bool,
    /// A file whose contents the upload replaces (`parent_id` and `name` unused).
    pub replace_file_id: String,
}

/// Input of `list`.
#[derive(Debug, Clone, Default)]
pub struct FilePage {
    pub parent_id: String,
    pub order: FileOrder,
    pub trashed: bool,
    pub page_size: i32,
    pub page_token: String,
}

/// A download: the file, then its bytes as (offset, chunk).
pub type Download = (
    DriveFile,
    Pin<Box<dyn Stream<Item = Result<(u64, Bytes)>> + Send>>,
);

pub struct Drive {
    store: Arc<dyn DriveStore>,
    blobs: Arc<dyn BlobStore>,
    limiter: Arc<dyn RateLimiter>,
    config: DriveConfig,
    max_chunk: usize,
    /// Signs and checks share links' tokens.
    tokens: Arc<TokenAuthority>,
    /// Share link passwords (hashed like account passwords, a few at a time).
    passwords: Passwords,
    /// Thumbnails being made: each holds a decoded image in memory.
    previews: tokio::sync::Semaphore,
}

/// The longest a share link may last.
const MAX_LINK_DAYS: i64 = 365;

impl Drive {
    /// `max_request_bytes` bounds chunks: a chunk and the rest of its request must fit.
    pub fn new(
        store: Arc<dyn DriveStore>,
        blobs: Arc<dyn BlobStore>,
        limiter: Arc<dyn RateLimiter>,
        config: DriveConfig,
        max_request_bytes: usize,
        tokens: Arc<TokenAuthority>,
    ) -> Self {
        Self {
            store,
            blobs,
            limiter,
            config,
            max_chunk: MAX_CHUNK_BYTES.min(max_request_bytes.saturating_sub(1024)),
            tokens,
            passwords: Passwords::new(1, 16),
            previews: tokio::sync::Semaphore::new(2),
        }
    }

    pub async fn create_upload(&self, who: Uuid, input: CreateUpload, now: Time) -> Result<Upload> {
        let mut v = Violations::new();
        let replaces = v.optional_id("replace_file_id", &input.replace_file_id);
        let (parent, name) = if input.replace_file_id.is_empty() {
            let parent = v.optional_id("parent_id", &input.parent_id);
            (parent, names::check_name(&mut v, "name", &input.name))
        } else {
            (None, String::new())
        };
        if input.size > self.config.max_file_bytes {
            v.add(
                "size",
                format!("at most {} bytes", self.config.max_file_bytes),
            );
        }
        let sha256 = check_sha256(&mut v, &input.sha256);
        v.finish()?;
        let limit = Limit {
            name: "upload",
            max: self.config.uploads_per_minute,
            window: Duration::from_secs(60),
        };
        self.limiter.check(limit, &who.to_string()).await?;
        // A replacement is its owner's upload (their quota, their file), sent by `who`.
        let (owner, name) = match replaces {
            Some(file) => {
                let target = self.editable_file(who, file).await?;
                (target.owner, target.name)
            }
            None => (who, name),
        };
        let direct = match input.direct {
            true => self.start_direct(input.size).await?,
            false => None,
        };
        let new = NewUpload {
            owner,
            parent,
            name,
            size: input.size,
            sha256,
            expire_time: now + self.ttl(),
            direct: direct.clone(),
            uploader: who,
            replaces,
        };
        let created = self
            .store
            .create_upload(new, self.config.quota_bytes, now)
            .await;
        if let (Err(_), Some(direct)) = (&created, &direct) {
            // Refused (quota, folder): the store's multipart upload must not linger.
            if let Err(err) = self
                .blobs
                .abort_direct_upload(&direct.key, &direct.id)
                .await
            {
                tracing::warn!(error = %err, "could not abort a refused direct upload");
            }
        }
        created
    }

    pub async fn upload_chunk(
        &self,
        who: Uuid,
        upload_id: &str,
        offset: u64,
        data: Bytes,
        now: Time,
    ) -> Result<u64> {
        let mut v = Violations::new();
        let id = v.id("upload_id", upload_id);
        if data.is_empty() {
            v.add("data", "1 byte or more");
        } else if data.len() > self.max_chunk {
            v.add("data", format!("at most {} bytes", self.max_chunk));
        }
        v.finish()?;
        let upload = self.own_upload(who, id).await?;
        self.append(&upload, offset, data, now).await
    }

    /// Receives an upload's bytes as one stream from `offset` (where the upload stands),
    /// stores them in parts of up to `STREAM_PART_BYTES`, then completes the upload. A
    /// stream that ends early keeps everything it sent; one that breaks, at least every
    /// part stored before the break (the rest if this call is not cancelled with it).
    pub async fn upload_stream(
        &self,
        who: Uuid,
        upload_id: &str,
        offset: u64,
        mut chunks: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
    ) -> Result<DriveFile> {
        let id = parse_id("upload_id", upload_id)?;
        let mut upload = self.own_upload(who, Some(id)).await?;
        if offset != upload.received {
            return Err(Error::OffsetMismatch {
                received: upload.received,
            });
        }
        let mut buffer = bytes::BytesMut::new();
        let mut at = offset;
        loop {
            let next = chunks.next().await;
            if let Some(Ok(chunk)) = &next {
                buffer.extend_from_slice(chunk);
                if buffer.len() < STREAM_PART_BYTES {
                    continue;
                }
            }
            // A full part, or the stream's end (or break): store what is buffered.
            if !buffer.is_empty() {
                let part = buffer.split().freeze();
                upload.received = self.append(&upload, at, part, chrono::Utc::now()).await?;
                at = upload.received;
            }
            match next {
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
                None => break,
            }
        }
        self.complete_upload(who, upload_id, Vec::new(), chrono::Utc::now())
            .await
    }

    /// Stores bytes at `offset` of an upload (see `upload_chunk`); the bytes received
    /// after them.
    async fn append(&self, upload: &Upload, offset: u64, data: Bytes, now: Time) -> Result<u64> {
        if upload.direct.is_some() {
            return Err(Error::FailedPrecondition {
                reason: Reason::DirectUpload,
                message: "this upload's parts go to their presigned URLs, not through UploadChunk",
            });
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > upload.size {
            return Err(Error::invalid(
                "data",
                format!("ends past the declared size ({} bytes)", upload.size),
            ));
        }
        if end <= upload.received {
            return Ok(upload.received); // Received already: a repeat changes nothing.
        }
        if offset != upload.received {
            return Err(Error::OffsetMismatch {
                received: upload.received,
            });
        }
        // The bytes first, then the record: a copy of this chunk racing here writes the
        // same bytes at the same place, and the record lets only one of them count. In
        // place when the store can (once written, they are the file's bytes); otherwise
        // as a blob of their own, under a key of this offset, joined at completion.
        let len = data.len() as u64;
        let in_place = self
            .blobs
            .write_at(&upload.staging_key(), offset, data.clone())
            .await?;
        if !in_place {
            self.blobs.put(&upload.part_key(offset), data).await?;
        }
        let received = self
            .store
            .record_chunk(upload.id, offset, len, now + self.ttl())
            .await?;
        Ok(received)
    }

    pub async fn upload(&self, who: Uuid, upload_id: &str) -> Result<Upload> {
        let id = parse_id("upload_id", upload_id)?;
        self.own_upload(who, Some(id)).await
    }

    /// Checks the bytes and makes the file. Its blob is written before the metadata
    /// commits: a crash in between leaves the upload as it was (complete it again), never
    /// a file without its bytes.
    pub async fn complete_upload(
        &self,
        who: Uuid,
        upload_id: &str,
        direct_parts: Vec<CompletedPart>,
        now: Time,
    ) -> Result<DriveFile> {
        let id = parse_id("upload_id", upload_id)?;
        let upload = self.own_upload(who, Some(id)).await?;
        if let Some(target) = upload.replaces {
            // An editor's share may have been taken back since the upload started.
            self.editable_file(who, target).await?;
        }
        if let Some(direct) = &upload.direct {
            return self
                .complete_direct(upload.clone(), direct, direct_parts, now)
                .await;
        }
        if !direct_parts.is_empty() {
            return Err(Error::invalid("parts", "only for direct uploads"));
        }
        if upload.received < upload.size {
            return Err(Error::FailedPrecondition {
                reason: Reason::UploadIncomplete,
                message: "the upload has not received all its bytes: see GetUpload",
            });
        }
        let parts = self.store.parts(upload.id).await?;
        let file_id = Uuid::now_v7();
        let blob_key = format!("files/{file_id}");
        let staged = self.blobs.head(&upload.staging_key()).await?;
        let digest = match staged {
            // Written in place: the file is that blob, under its own key.
            Some(staged) if staged.size == upload.size => {
                match self.digest_blob(&upload.staging_key(), upload.size).await {
                    Ok(digest) => (self.blobs)
                        .copy(&upload.staging_key(), &blob_key)
                        .await
                        .map(|()| digest),
                    Err(err) => Err(err),
                }
            }
            Some(_) => Err(Error::internal("an upload's staged bytes are not its size")),
            None => self.assemble(&upload, &parts, &blob_key).await,
        };
        self.commit_upload(upload, &parts, file_id, blob_key, digest, now)
            .await
    }

    /// Completes a direct upload: the store joins the parts, then the server reads the
    /// blob back for its size, hash and type before the file appears. A retry after the
    /// join (whose answer was lost) finds the blob joined already.
    async fn complete_direct(
        &self,
        upload: Upload,
        direct: &DirectUpload,
        given: Vec<CompletedPart>,
        now: Time,
    ) -> Result<DriveFile> {
        let expected: Vec<u16> = direct.parts(upload.size).map(|(n, _, _)| n).collect();
        let numbers: Vec<u16> = given
            .iter()
            .map(|p| u16::try_from(p.part_number).unwrap_or(0))
            .collect();
        if numbers != expected || given.iter().any(|p| p.etag.is_empty()) {
            return Err(Error::invalid(
                "parts",
                format!(
                    "every part, numbered 1 to {} in order, each with its ETag",
                    expected.len()
                ),
            ));
        }
        let e_tags = given.into_iter().map(|p| p.etag).collect();
        let joining = self
            .blobs
            .complete_direct_upload(&direct.key, &direct.id, e_tags)
            .await;
        let stored = self.blobs.head(&direct.key).await?.map(|meta| meta.size);
        let digest = match (joining, stored) {
            (_, Some(size)) if size == upload.size => self.digest_blob(&direct.key, size).await,
            (Err(err), _) => return Err(err),
            (Ok(()), _) => Err(Error::invalid(
                "parts",
                format!("the parts do not add up to {} bytes", upload.size),
            )),
        };
        let file_id = Uuid::now_v7();
        self.commit_upload(upload, &[], file_id, direct.key.clone(), digest, now)
            .await
    }

    /// Makes the file of an upload whose bytes are in `blob_key` (`digest`: their SHA-256
    /// and first bytes, or why they are not usable), or discards them.
    async fn commit_upload(
        &self,
        upload: Upload,
        parts: &[Part],
        file_id: Uuid,
        blob_key: String,
        digest: Result<(String, Vec<u8>)>,
        now: Time,
    ) -> Result<DriveFile> {
        let (sha256, head) = match digest {
            Ok(done) => done,
            Err(err) => {
                self.forget_blob(&blob_key).await;
                return Err(err);
            }
        };
        if upload.sha256.as_ref().is_some_and(|want| *want != sha256) {
            // The bytes are not the declared ones: nothing is kept, the quota is freed.
            self.forget_blob(&blob_key).await;
            if let Some((dropped, parts)) = self.store.drop_upload(upload.id).await? {
                self.forget_parts(&dropped, &parts).await;
            }
            return Err(Error::invalid(
                "sha256",
                format!("the bytes received have SHA-256 {sha256}: the upload is discarded"),
            ));
        }
        let content_type = content_type(&head);
        let image = self.preview(&blob_key, upload.size, &content_type).await;
        let completed = CompletedFile {
            id: file_id,
            sha256,
            content_type,
            blob_key: blob_key.clone(),
            image,
        };
        match self.store.complete_upload(upload.id, completed, now).await {
            Ok(done) => {
                if upload.direct.is_none() {
                    self.forget_parts(&upload, parts).await;
                }
                if let Some(replaced) = &done.replaced_blob {
                    self.forget_blob(replaced).await;
                }
                Ok(done.file)
            }
            Err(err) => {
                self.forget_blob(&blob_key).await;
                Err(err)
            }
        }
    }

    /// An image's size and thumbnail, for files that are images the server can decode
    /// within `thumbnails`' limits; `None` for anything else, including a failure.
    async fn preview(
        &self,
        blob_key: &str,
        size: u64,
        content_type: &str,
    ) -> Option<(ImageSize, Thumbnail)> {
        if !thumbnails::previewable(content_type) || size > thumbnails::MAX_SOURCE_BYTES {
            return None;
        }
        let _turn = self.previews.acquire().await.ok()?;
        let bytes = match self.blobs.get_range(blob_key, 0..size).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(%err, "reading an image to preview it");
                return None;
            }
        };
        tokio::task::spawn_blocking(move || thumbnails::make(&bytes))
            .await
            .ok()
            .flatten()
    }

    /// An image file's thumbnail, for anyone who may read the file.
    pub async fn thumbnail(&self, who: Uuid, file_id: &str) -> Result<Thumbnail> {
        let id = parse_id("file_id", file_id)?;
        self.readable_file(who, id).await?;
        self.store
            .thumbnail(id)
            .await?
            .ok_or(Error::NotFound("thumbnail"))
    }

    pub async fn abort_upload(&self, who: Uuid, upload_id: &str) -> Result<()> {
        let id = parse_id("upload_id", upload_id)?;
        match self.store.upload(id).await? {
            None => Ok(()), // Gone already (aborted, completed or expired).
            Some(upload) if upload.uploader != who => Err(Error::NotFound("upload")),
            Some(_) => {
                if let Some((dropped, parts)) = self.store.drop_upload(id).await? {
                    self.forget_parts(&dropped, &parts).await;
                }
                Ok(())
            }
        }
    }

    /// Removes uploads that expired, releasing their reservations and their bytes.
    pub async fn expire_uploads(&self, now: Time) -> Result<usize> {
        let expired = self.store.expire_uploads(now, 100).await?;
        for (upload, parts) in &expired {
            self.forget_parts(upload, parts).await;
        }
        Ok(expired.len())
    }

    pub async fn download(
        &self,
        who: Uuid,
        file_id: &str,
        offset: u64,
        length: u64,
    ) -> Result<Download> {
        let id = parse_id("file_id", file_id)?;
        let file = self.readable_file(who, id).await?;
        self.open(file, offset, length)
    }

    /// The bytes of `file` from `offset` (`length` of them; 0: to the end).
    fn open(&self, file: DriveFile, offset: u64, length: u64) -> Result<Download> {
        let key = blob_key(&file)?;
        if offset > file.size {
            return Err(Error::invalid(
                "offset",
                format!("past the end of the file ({} bytes)", file.size),
            ));
        }
        let end = match length {
            0 => file.size,
            n => offset.saturating_add(n).min(file.size),
        };
        let blobs = Arc::clone(&self.blobs);
        // (at, first): an empty file or range still sends one (empty) chunk, which
        // carries the file.
        let chunks = futures::stream::unfold((offset, true), move |(at, first)| {
            let (blobs, key) = (Arc::clone(&blobs), key.clone());
            async move {
                if at >= end {
                    return first.then(|| (Ok((at, Bytes::new())), (at, false)));
                }
                let to = (at + DOWNLOAD_CHUNK_BYTES).min(end);
                let chunk = blobs.get_range(&key, at..to).await.map(|b| (at, b));
                Some((chunk, (to, false)))
            }
        });
        Ok((file, Box::pin(chunks)))
    }

    /// A presigned GET URL of the file's blob (S3), and when it expires.
    pub async fn download_url(
        &self,
        who: Uuid,
        file_id: &str,
        now: Time,
    ) -> Result<(url::Url, Time)> {
        let id = parse_id("file_id", file_id)?;
        let file = self.readable_file(who, id).await?;
        let key = blob_key(&file)?;
        let url = self
            .blobs
            .presigned_url(http::Method::GET, &key, DOWNLOAD_URL_TTL)
            .await?
            .ok_or(Error::FailedPrecondition {
                reason: Reason::DirectUrlUnavailable,
                message: "files are kept on the server's own disk: use DownloadFile",
            })?;
        let ttl = chrono::Duration::from_std(DOWNLOAD_URL_TTL).unwrap_or_default();
        Ok((url, now + ttl))
    }

    pub async fn create_folder(
        &self,
        who: Uuid,
        parent_id: &str,
        name: &str,
        now: Time,
    ) -> Result<DriveFile> {
        let mut v = Violations::new();
        let parent = v.optional_id("parent_id", parent_id);
        let name = names::check_name(&mut v, "name", name);
        v.finish()?;
        self.store.create_folder(who, parent, &name, now).await
    }

    pub async fn file(&self, who: Uuid, file_id: &str) -> Result<DriveFile> {
        let id = parse_id("file_id", file_id)?;
        self.readable_file(who, id).await
    }

    pub async fn list(&self, who: Uuid, page: FilePage) -> Result<(Vec<DriveFile>, String)> {
        let mut v = Violations::new();
        let parent = v.optional_id("parent_id", &page.parent_id);
        let size = v.page_size("page_size", page.page_size, 50, 200);
        v.finish()?;
        let skip = skip_of(&page.page_token)?;
        let files = if page.trashed {
            self.store.trash(who, skip, size).await?
        } else {
            // A folder someone shared: listed as its owner sees it.
            let owner = match parent {
                Some(folder) => match self.store.readable(folder, who).await? {
                    Some(found) if found.kind == FileKind::Folder => found.owner,
                    _ => return Err(Error::NotFound("folder")),
                },
                None => who,
            };
            self.store
                .files(owner, parent, page.order, skip, size)
                .await?
        };
        let next = paging::next_token(&files, size, |_| {
            paging::encode_text_key(&(skip + size).to_string())
        });
        Ok((files, next))
    }

    /// Renames and/or moves (`parent_id`: `Some("")` is the top folder).
    pub async fn update_file(
        &self,
        who: Uuid,
        file_id: &str,
        name: Option<&str>,
        parent_id: Option<&str>,
        now: Time,
    ) -> Result<DriveFile> {
        let mut v = Violations::new();
        let id = v.id("file.file_id", file_id);
        let name = name.map(|n| names::check_name(&mut v, "file.name", n));
        let parent = parent_id.map(|p| v.optional_id("file.parent_id", p));
        v.finish()?;
        let id = id.ok_or(Error::NotFound("file"))?;
        self.store.update_file(who, id, name, parent, now).await
    }

    pub async fn trash(&self, who: Uuid, file_id: &str, now: Time) -> Result<DriveFile> {
        let id = parse_id("file_id", file_id)?;
        self.store.trash_file(who, id, now).await
    }

    pub async fn restore(&self, who: Uuid, file_id: &str, now: Time) -> Result<DriveFile> {
        let id = parse_id("file_id", file_id)?;
        self.store.restore_file(who, id, now).await
    }

    pub async fn empty_trash(&self, who: Uuid) -> Result<Emptied> {
        let emptied = self.store.empty_trash(who).await?;
        for key in &emptied.blob_keys {
            self.forget_blob(key).await;
        }
        Ok(emptied)
    }

    /// Shares a file or folder of the caller's with a user or a conversation.
    pub async fn share(
        &self,
        who: Uuid,
        file_id: &str,
        user_id: Option<&str>,
        conversation_id: Option<&str>,
        role: ShareRole,
        now: Time,
    ) -> Result<Share> {
        let mut v = Violations::new();
        let file = v.id("file_id", file_id);
        let grantee = match (user_id, conversation_id) {
            (Some(user), None) => v.id("user_id", user).map(Grantee::User),
            (None, Some(conversation)) => v
                .id("conversation_id", conversation)
                .map(Grantee::Conversation),
            _ => {
                v.add("grantee", "required: user_id or conversation_id");
                None
            }
        };
        v.finish()?;
        let (Some(file), Some(grantee)) = (file, grantee) else {
            return Err(Error::NotFound("file"));
        };
        self.store.share(who, file, grantee, role, now).await
    }

    /// Takes back a share of the caller's (gone already: fine).
    pub async fn unshare(&self, who: Uuid, share_id: &str) -> Result<()> {
        let id = parse_id("share_id", share_id)?;
        self.store.unshare(who, id).await.map(|_| ())
    }

    /// Who a file or folder of the caller's is shared with.
    pub async fn shares(&self, who: Uuid, file_id: &str) -> Result<Vec<Share>> {
        let id = parse_id("file_id", file_id)?;
        self.store.shares(who, id).await
    }

    /// What others shared with the caller.
    pub async fn shared_with_me(
        &self,
        who: Uuid,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<DriveFile>, String)> {
        let mut v = Violations::new();
        let size = v.page_size("page_size", page_size, 50, 200);
        v.finish()?;
        let skip = skip_of(page_token)?;
        let (files, read) = self.store.shared_with(who, skip, size).await?;
        // The token counts shares (a file shared twice shows once, so a page can hold
        // fewer files than the shares it read): more may follow after a full page of them.
        let next = if read == size {
            paging::encode_text_key(&(skip + size).to_string())
        } else {
            String::new()
        };
        Ok((files, next))
    }

    /// Makes a share link to a file of the caller's; the link and its token (shown once).
    pub async fn create_link(
        &self,
        who: Uuid,
        file_id: &str,
        expire_time: Option<Time>,
        password: &str,
        max_downloads: u32,
        now: Time,
    ) -> Result<(ShareLink, String)> {
        let mut v = Violations::new();
        let file = v.id("file_id", file_id);
        match expire_time {
            None => v.add("expire_time", "required"),
            Some(t) if t <= now => v.add("expire_time", "must be in the future"),
            Some(t) if t > now + chrono::Duration::days(MAX_LINK_DAYS) => {
                v.add("expire_time", "at most a year ahead")
            }
            Some(_) => {}
        }
        let chars = password.chars().count();
        if chars > 0 && !(8..=128).contains(&chars) {
            v.add("password", "8 to 128 characters, or empty for none");
        }
        v.finish()?;
        let (Some(file), Some(expire_time)) = (file, expire_time) else {
            return Err(Error::NotFound("file"));
        };
        let password_hash = match password {
            "" => None,
            given => Some(self.passwords.hash(given.to_owned()).await?),
        };
        let link = self
            .store
            .create_link(ShareLink {
                id: Uuid::now_v7(),
                file_id: file,
                owner: who,
                expire_time,
                password_hash,
                max_downloads,
                downloads: 0,
                revoked: false,
                create_time: now,
            })
            .await?;
        let token = self.tokens.issue_link(link.id, link.expire_time)?;
        Ok((link, token))
    }

    /// The caller's links to a file of theirs.
    pub async fn links(&self, who: Uuid, file_id: &str) -> Result<Vec<ShareLink>> {
        let id = parse_id("file_id", file_id)?;
        self.store.links(who, id).await
    }

    /// Revokes a link of the caller's (gone already, or never theirs: nothing happens).
    pub async fn revoke_link(&self, who: Uuid, link_id: &str) -> Result<()> {
        let id = parse_id("link_id", link_id)?;
        self.store.revoke_link(who, id).await.map(|_| ())
    }

    /// The file a link leads to, for whoever holds its token (and password).
    pub async fn link_file(
        &self,
        token: &str,
        password: &str,
        now: Time,
    ) -> Result<(ShareLink, DriveFile)> {
        let not_found = || Error::NotFound("share link");
        if token.is_empty() {
            return Err(Error::invalid("token", "required"));
        }
        let id = self.tokens.verify_link(token)?;
        let link = self.store.link(id).await?.ok_or_else(not_found)?;
        if link.revoked || link.expire_time <= now {
            return Err(not_found());
        }
        let file = self.store.file(link.file_id).await?.ok_or_else(not_found)?;
        if file.owner != link.owner || file.trash_time.is_some() {
            return Err(not_found());
        }
        if let Some(hash) = &link.password_hash {
            let right = !password.is_empty()
                && self
                    .passwords
                    .verify(password.to_owned(), hash.clone())
                    .await?;
            if !right {
                return Err(Error::PermissionDenied {
                    reason: Reason::LinkPassword,
                    message: "this link needs its password",
                });
            }
        }
        if link.max_downloads > 0 && link.downloads >= link.max_downloads {
            return Err(link_exhausted());
        }
        Ok((link, file))
    }

    /// Downloads through a link; one from the start counts against its limit.
    pub async fn link_download(
        &self,
        token: &str,
        password: &str,
        offset: u64,
        length: u64,
        now: Time,
    ) -> Result<Download> {
        let (link, file) = self.link_file(token, password, now).await?;
        self.open_link(&link, file, offset, length).await
    }

    /// The bytes of a link's file, once `link_file` let the holder in (so the password,
    /// hashed slowly on purpose, is checked once per download).
    pub async fn open_link(
        &self,
        link: &ShareLink,
        file: DriveFile,
        offset: u64,
        length: u64,
    ) -> Result<Download> {
        if offset == 0 && !self.store.count_link_download(link.id).await? {
            return Err(link_exhausted());
        }
        self.open(file, offset, length)
    }

    /// The caller's usage and quota.
    pub async fn quota(&self, who: Uuid) -> Result<(Usage, u64)> {
        Ok((self.store.usage(who).await?, self.config.quota_bytes))
    }

    fn ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.config.upload_ttl_secs).unwrap_or(i64::MAX))
    }

    /// The upload, if `who` sends its bytes.
    async fn own_upload(&self, who: Uuid, id: Option<Uuid>) -> Result<Upload> {
        let id = id.ok_or(Error::NotFound("upload"))?;
        match self.store.upload(id).await? {
            Some(upload) if upload.uploader == who => Ok(upload),
            _ => Err(Error::NotFound("upload")),
        }
    }

    /// The file, if `who` may replace its contents: its owner, or an editor of a share
    /// of it (or of a folder above it). A reader who may not is told so; anyone else
    /// finds nothing.
    async fn editable_file(&self, who: Uuid, id: Uuid) -> Result<DriveFile> {
        match self.store.access(id, who, Access::Edit).await? {
            Some((file, Access::Own | Access::Edit)) if file.kind == FileKind::File => Ok(file),
            Some((_, Access::Read)) => Err(Error::PermissionDenied {
                reason: Reason::InsufficientRole,
                message: "only the owner and editors replace a file's contents",
            }),
            _ => Err(Error::NotFound("file")),
        }
    }

    /// The file, if `who` may read it (its owner, or shared with them).
    async fn readable_file(&self, who: Uuid, id: Uuid) -> Result<DriveFile> {
        self.store
            .readable(id, who)
            .await?
            .ok_or(Error::NotFound("file"))
    }

    /// Streams the upload's parts into the blob at `key`, hashing them on the way; the
    /// SHA-256 (hex) and the first bytes (to recognise the content type).
    async fn assemble(
        &self,
        upload: &Upload,
        parts: &[Part],
        key: &str,
    ) -> Result<(String, Vec<u8>)> {
        struct Seen {
            hasher: Sha256,
            head: Vec<u8>,
            failed: Option<Error>,
        }
        let seen = Arc::new(Mutex::new(Seen {
            hasher: Sha256::new(),
            head: Vec::new(),
            failed: None,
        }));
        let keys: Vec<String> = parts.iter().map(|p| upload.part_key(p.offset)).collect();
        let blobs = Arc::clone(&self.blobs);
        let watcher = Arc::clone(&seen);
        let chunks = futures::stream::iter(keys)
            .then(move |part| {
                let blobs = Arc::clone(&blobs);
                async move { blobs.get(&part).await }
            })
            .scan(watcher, |seen, got| {
                let mut seen_now = seen.lock().unwrap_or_else(PoisonError::into_inner);
                let item = match got {
                    Ok(bytes) => {
                        seen_now.hasher.update(&bytes);
                        let room = SNIFF_BYTES.saturating_sub(seen_now.head.len());
                        let head = &bytes[..room.min(bytes.len())];
                        seen_now.head.extend_from_slice(head);
                        Some(bytes)
                    }
                    Err(err) => {
                        seen_now.failed = Some(err);
                        None // Ends the stream: the blob written is discarded below.
                    }
                };
                futures::future::ready(item)
            });
        if parts.is_empty() {
            self.blobs.put(key, Bytes::new()).await?;
        } else {
            self.blobs.put_stream(key, Box::pin(chunks)).await?;
        }
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(err) = seen.failed.take() {
            return Err(err);
        }
        let digest = std::mem::take(&mut seen.hasher).finalize();
        Ok((hex::encode(digest), std::mem::take(&mut seen.head)))
    }

    /// Deletes a blob nothing refers to any more; a failure only leaves an orphan behind.
    async fn forget_blob(&self, key: &str) {
        if let Err(err) = self.blobs.delete(key).await {
            tracing::warn!(error = %err, key, "could not delete an unused blob");
        }
    }

    /// Removes what an upload that will not complete left in the blob store.
    async fn forget_parts(&self, upload: &Upload, parts: &[Part]) {
        // Its bytes are in one or the other (deleting what is absent is harmless).
        self.forget_blob(&upload.staging_key()).await;
        for part in parts {
            self.forget_blob(&upload.part_key(part.offset)).await;
        }
        if let Some(direct) = &upload.direct {
            if let Err(err) = self
                .blobs
                .abort_direct_upload(&direct.key, &direct.id)
                .await
            {
                tracing::warn!(error = %err, key = direct.key, "could not abort a direct upload");
            }
            // Joined already, by a completion that failed afterwards.
            self.forget_blob(&direct.key).await;
        }
    }

    /// The SHA-256 (hex) and first bytes of a stored blob of `size` bytes, read in ranges.
    async fn digest_blob(&self, key: &str, size: u64) -> Result<(String, Vec<u8>)> {
        let mut hasher = Sha256::new();
        let mut head = Vec::new();
        let mut at = 0;
        while at < size {
            let to = (at + DIGEST_READ_BYTES).min(size);
            let bytes = self.blobs.get_range(key, at..to).await?;
            if head.len() < SNIFF_BYTES {
                let room = SNIFF_BYTES - head.len();
                head.extend_from_slice(&bytes[..room.min(bytes.len())]);
            }
            hasher.update(&bytes);
            at = to;
        }
        Ok((hex::encode(hasher.finalize()), head))
    }

    /// A direct upload of `size` bytes into a fresh blob, when the blob store can do
    /// them; parts of at least `DIRECT_PART_BYTES`, at most 10,000 of them (S3's limit).
    async fn start_direct(&self, size: u64) -> Result<Option<DirectUpload>> {
        if size == 0 {
            return Ok(None);
        }
        let key = format!("files/{}", Uuid::now_v7());
        let Some(id) = self.blobs.start_direct_upload(&key).await? else {
            return Ok(None);
        };
        let part_size =
            DIRECT_PART_BYTES.max(size.div_ceil(MAX_DIRECT_PARTS).next_multiple_of(1 << 20));
        Ok(Some(DirectUpload { key, id, part_size }))
    }

    /// A direct upload's parts with URLs signed until the upload expires.
    pub fn direct_parts(&self, upload: &Upload, now: Time) -> Vec<DirectPart> {
        let Some(direct) = &upload.direct else {
            return Vec::new();
        };
        let ttl = (upload.expire_time - now)
            .to_std()
            .unwrap_or(Duration::from_secs(60))
            // SigV4 presigned URLs last at most 7 days.
            .min(Duration::from_secs(7 * 24 * 3600));
        direct
            .parts(upload.size)
            .filter_map(|(number, offset, size)| {
                let url = self
                    .blobs
                    .direct_part_url(&direct.key, &direct.id, number, size, ttl)?;
                Some(DirectPart {
                    number,
                    offset,
                    size,
                    url,
                })
            })
            .collect()
    }
}

/// Where a file's bytes are; a folder has none.
fn blob_key(file: &DriveFile) -> Result<String> {
    file.blob_key
        .clone()
        .filter(|_| file.kind == FileKind::File)
        .ok_or_else(|| Error::invalid("file_id", "a folder has no bytes to download"))
}

/// How many items a page token of `list` or `shared_with_me` skips (0 without one).
fn skip_of(page_token: &str) -> Result<u64> {
    match paging::decode_text_key("page_token", page_token)? {
        Some(skip) => skip
            .parse::<u64>()
            .map_err(|_| Error::invalid("page_token", "not a token this server gave")),
        None => Ok(0),
    }
}

fn link_exhausted() -> Error {
    Error::FailedPrecondition {
        reason: Reason::LinkExhausted,
        message: "this link's downloads are used up",
    }
}

fn parse_id(field: &str, raw: &str) -> Result<Uuid> {
    let mut v = Violations::new();
    let id = v.id(field, raw);
    v.finish()?;
    id.ok_or(Error::NotFound("file"))
}

/// A declared SHA-256: empty, or 64 hex digits (stored lowercase).
fn check_sha256(v: &mut Violations, raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    if lower.len() != 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        v.add("sha256", "64 hexadecimal digits");
        return None;
    }
    Some(lower)
}

/// The content type the first bytes show, never the one a client claimed.
fn content_type(head: &[u8]) -> String {
    infer::get(head)
        .map(|kind| kind.mime_type().to_owned())
        .unwrap_or_else(|| "application/octet-stream".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_come_from_the_bytes() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0];
        assert_eq!(content_type(&png), "image/png");
        assert_eq!(content_type(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(content_type(b"just some text"), "application/octet-stream");
    }

    #[test]
    fn declared_hashes_are_64_hex_digits() {
        let mut v = Violations::new();
        let upper = "AB".repeat(32);
        assert_eq!(check_sha256(&mut v, &upper), Some("ab".repeat(32)));
        assert_eq!(check_sha256(&mut v, ""), None);
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        check_sha256(&mut v, "abc");
        check_sha256(&mut Violations::new(), &"zz".repeat(32));
        assert!(v.finish().is_err());
    }
}
