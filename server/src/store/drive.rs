//! The drive store contract: metadata in SQL (bytes live in the blob store). Every write
//! locks the owner's usage row first, so one user's drive changes queue: the quota check
//! and the "is this name free" check cannot race.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    domain::{
        ImageSize, Time,
        drive::{
            Access, DriveFile, FileOrder, Grantee, Part, Share, ShareLink, ShareRole, Thumbnail,
            Upload, Usage,
        },
    },
    error::Result,
};

/// An upload to start (already checked).
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub owner: Uuid,
    pub parent: Option<Uuid>,
    pub name: String,
    pub size: u64,
    pub sha256: Option<String>,
    pub expire_time: Time,
    pub direct: Option<crate::domain::drive::DirectUpload>,
    /// Who sends the bytes: the owner, or an editor of `replaces`.
    pub uploader: Uuid,
    /// A file of the owner's whose contents the upload replaces (`parent` and `name`
    /// are then unused).
    pub replaces: Option<Uuid>,
}

/// What completing an upload did.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The new file, or the file with its new contents.
    pub file: DriveFile,
    /// The blob of the contents replaced, to delete now that nothing refers to it.
    pub replaced_blob: Option<String>,
}

/// The file a completed upload becomes (its bytes already in the blob store).
#[derive(Debug, Clone)]
pub struct CompletedFile {
    pub id: Uuid,
    pub sha256: String,
    pub content_type: String,
    pub blob_key: String,
    /// For an image the server decoded: its size and its thumbnail.
    pub image: Option<(ImageSize, Thumbnail)>,
}

/// What emptying the trash removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emptied {
    pub count: u32,
    pub freed: u64,
    /// Blobs to delete now that no file refers to them.
    pub blob_keys: Vec<String>,
}

#[async_trait]
pub trait DriveStore: Send + Sync {
    /// Starts an upload into `parent` (a folder of the owner's, not in the trash: else
    /// `NOT_FOUND`), or one replacing the contents of `replaces` (a file of the owner's,
    /// not in the trash: else `NOT_FOUND`), reserving its size from the owner's quota:
    /// `RESOURCE_EXHAUSTED` when used + reserved + size would pass `quota`.
    async fn create_upload(&self, new: NewUpload, quota: u64, now: Time) -> Result<Upload>;
    /// The upload, if it exists.
    async fn upload(&self, id: Uuid) -> Result<Option<Upload>>;
    /// Records the chunk at `offset` (its bytes already stored at the part key) when the
    /// upload has received exactly `offset` bytes; returns the bytes received after it.
    /// A chunk that lost a race with a copy of itself changes nothing.
    async fn record_chunk(
        &self,
        id: Uuid,
        offset: u64,
        size: u64,
        expire_time: Time,
    ) -> Result<u64>;
    /// The upload's parts, in order.
    async fn parts(&self, id: Uuid) -> Result<Vec<Part>>;
    /// Turns the upload into a file (named as it asked, or numbered when the name is
    /// taken; into the top folder if its folder went away) — or into the new contents
    /// of the file it replaces (`NOT_FOUND` when that is gone or in the trash) —
    /// moving its reservation to the owner's usage; the upload and its parts are gone
    /// after. `NOT_FOUND` if the upload is.
    async fn complete_upload(&self, id: Uuid, file: CompletedFile, now: Time) -> Result<Completed>;
    /// Removes the upload and releases its reservation; the upload as it was (with its
    /// parts), or `None` when it was gone already.
    async fn drop_upload(&self, id: Uuid) -> Result<Option<(Upload, Vec<Part>)>>;
    /// Removes uploads that expired before `now` (at most `limit`), as `drop_upload`
    /// does: with several nodes at it, each upload is removed — and returned — once.
    async fn expire_uploads(&self, now: Time, limit: u64) -> Result<Vec<(Upload, Vec<Part>)>>;
    /// Creates a folder (numbered when the name is taken).
    async fn create_folder(
        &self,
        owner: Uuid,
        parent: Option<Uuid>,
        name: &str,
        now: Time,
    ) -> Result<DriveFile>;
    /// The file or folder, if it exists.
    async fn file(&self, id: Uuid) -> Result<Option<DriveFile>>;
    /// A page of a folder of the owner's (not in the trash: else `NOT_FOUND`), folders
    /// first, skipping `skip`.
    async fn files(
        &self,
        owner: Uuid,
        parent: Option<Uuid>,
        order: FileOrder,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<DriveFile>>;
    /// A page of what the owner deleted (each deleted file or folder once, without what
    /// a folder took with it), newest first.
    async fn trash(&self, owner: Uuid, skip: u64, limit: u64) -> Result<Vec<DriveFile>>;
    /// Renames (`name`) and/or moves (`parent`: `Some(None)` is the top folder) a file or
    /// folder of the owner's: `ALREADY_EXISTS` when the name is taken there,
    /// `FAILED_PRECONDITION` when a folder would go into itself.
    async fn update_file(
        &self,
        owner: Uuid,
        id: Uuid,
        name: Option<String>,
        parent: Option<Option<Uuid>>,
        now: Time,
    ) -> Result<DriveFile>;
    /// Moves a file or folder (with everything in it) to the trash.
    async fn trash_file(&self, owner: Uuid, id: Uuid, now: Time) -> Result<DriveFile>;
    /// Brings a trashed file or folder back (with what it took along).
    async fn restore_file(&self, owner: Uuid, id: Uuid, now: Time) -> Result<DriveFile>;
    /// Deletes everything in the owner's trash for good.
    async fn empty_trash(&self, owner: Uuid) -> Result<Emptied>;
    /// The owner's storage.
    async fn usage(&self, owner: Uuid) -> Result<Usage>;
    /// Shares a file or folder of the owner's with `grantee` (a user other than the
    /// owner, or a conversation the owner is a member of: `NOT_FOUND` otherwise); the
    /// existing share when there is one, with its role set to `role`.
    async fn share(
        &self,
        owner: Uuid,
        file: Uuid,
        grantee: Grantee,
        role: ShareRole,
        now: Time,
    ) -> Result<Share>;
    /// Takes back one of the owner's shares; `false` when there was none.
    async fn unshare(&self, owner: Uuid, share: Uuid) -> Result<bool>;
    /// The shares of a file or folder of the owner's, oldest first.
    async fn shares(&self, owner: Uuid, file: Uuid) -> Result<Vec<Share>>;
    /// An image file's thumbnail, if it has one.
    async fn thumbnail(&self, id: Uuid) -> Result<Option<Thumbnail>>;
    /// The file or folder if `reader` may read it: its owner (even in the trash), or
    /// anyone it — or a folder above it — is shared with, directly or through a
    /// conversation they are a member of now (not while it is in the trash); or, for a
    /// file, attached to a message of such a conversation that is not deleted. With it,
    /// what they may do: the most any of those grants, looking no further once one
    /// grants `enough`.
    async fn access(
        &self,
        file: Uuid,
        reader: Uuid,
        enough: Access,
    ) -> Result<Option<(DriveFile, Access)>>;
    /// The file or folder if `reader` may read it (see `access`).
    async fn readable(&self, file: Uuid, reader: Uuid) -> Result<Option<DriveFile>> {
        let access = self.access(file, reader, Access::Read).await?;
        Ok(access.map(|(file, _)| file))
    }
    /// What others shared with `reader` (each once, none in the trash), newest share
    /// first, from `limit` shares after the first `skip`; also how many shares it read.
    async fn shared_with(
        &self,
        reader: Uuid,
        skip: u64,
        limit: u64,
    ) -> Result<(Vec<DriveFile>, u64)>;
    /// Records a share link to a file (not a folder) of the owner's.
    async fn create_link(&self, link: ShareLink) -> Result<ShareLink>;
    /// The link, if it exists (revoked ones included).
    async fn link(&self, id: Uuid) -> Result<Option<ShareLink>>;
    /// The owner's links to a file of theirs, revoked ones excepted, oldest first.
    async fn links(&self, owner: Uuid, file: Uuid) -> Result<Vec<ShareLink>>;
    /// Revokes one of the owner's links; `false` when there is none.
    async fn revoke_link(&self, owner: Uuid, id: Uuid) -> Result<bool>;
    /// Counts a download through the link, unless that would pass its limit (`false`).
    async fn count_link_download(&self, id: Uuid) -> Result<bool>;
}
