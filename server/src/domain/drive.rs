//! The drive in the domain: files, folders, uploads in progress and quotas.

use uuid::Uuid;

use super::{ImageSize, Time};

/// A file with contents, or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Folder,
}

/// A file or folder as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveFile {
    pub id: Uuid,
    pub owner: Uuid,
    /// `None`: the drive's top folder.
    pub parent: Option<Uuid>,
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
    /// Lowercase hex (files).
    pub sha256: String,
    /// Recognised from the first bytes (files).
    pub content_type: String,
    /// Where the bytes are in the blob store (files): chosen by the server, never derived
    /// from anything a client sent.
    pub blob_key: Option<String>,
    pub create_time: Time,
    pub update_time: Time,
    /// Set while it is in the trash (on everything a trashed folder holds, too).
    pub trash_time: Option<Time>,
    /// Set for images the server decoded (and so has a thumbnail of).
    pub image: Option<ImageSize>,
}

impl DriveFile {
    /// What a message shows of this file when it is attached.
    pub fn attachment(&self) -> super::Attachment {
        super::Attachment {
            file_id: self.id,
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            image: self.image,
        }
    }
}

/// A thumbnail of an image file, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// JPEG.
    pub data: Vec<u8>,
    pub size: ImageSize,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: Uuid,
    pub owner: Uuid,
    pub parent: Option<Uuid>,
    pub name: String,
    pub size: u64,
    /// The SHA-256 the bytes must have (lowercase hex), when declared.
    pub sha256: Option<String>,
    pub received: u64,
    pub expire_time: Time,
    /// Set for a direct upload: its bytes go straight to the object store.
    pub direct: Option<DirectUpload>,
    /// Who sends the bytes and completes it: the owner, or an editor of `replaces`.
    pub uploader: Uuid,
    /// The file whose contents it replaces (owned by `owner`), if any.
    pub replaces: Option<Uuid>,
}

/// A multipart upload in the object store whose parts clients PUT themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUpload {
    /// The blob the parts become (chosen by the server).
    pub key: String,
    /// The object store's id of the multipart upload.
    pub id: String,
    /// Every part's size but the last's.
    pub part_size: u64,
}

impl DirectUpload {
    /// The parts of an upload of `size` bytes: (number from 1, offset, length).
    pub fn parts(&self, size: u64) -> impl Iterator<Item = (u16, u64, u64)> + '_ {
        let count = size.div_ceil(self.part_size.max(1));
        (0..count).map(move |i| {
            let offset = i * self.part_size;
            let number = u16::try_from(i + 1).unwrap_or(u16::MAX);
            (number, offset, self.part_size.min(size - offset))
        })
    }
}

/// One stored chunk of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub size: u64,
}

impl Upload {
    /// Where the chunk at `offset` is kept while the upload lasts.
    pub fn part_key(&self, offset: u64) -> String {
        format!("uploads/{}/{offset:020}", self.id)
    }

    /// Where the bytes are kept while the upload lasts, when the blob store writes in
    /// place (see `BlobStore::write_at`): one file, the chunks written into it in order
    /// (directly under a folder of all such files: nothing is left behind to clean up).
    pub fn staging_key(&self) -> String {
        format!("staged/{}", self.id)
    }
}

/// A user's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes of their files, trash included.
    pub used: u64,
    /// Bytes reserved by uploads in progress.
    pub reserved: u64,
}

/// How a folder's listing is ordered (folders always first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileOrder {
    #[default]
    Name,
    /// Largest first.
    Size,
    /// Newest change first.
    UpdateTime,
}

/// Who a share lets read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantee {
    User(Uuid),
    /// The conversation's members, as they are at each read.
    Conversation(Uuid),
}

/// A file or folder shared for reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: Uuid,
    pub file_id: Uuid,
    pub owner: Uuid,
    pub grantee: Grantee,
    pub create_time: Time,
    pub role: ShareRole,
}

/// What a share lets its grantees do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum ShareRole {
    /// Read.
    #[default]
    Viewer,
    /// Read, and replace files' contents.
    Editor,
}

/// What a user may do with a file or folder, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    /// Read and replace its contents.
    Edit,
    /// Everything: it is theirs.
    Own,
}

/// A link anyone holding it can download a file through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLink {
    pub id: Uuid,
    pub file_id: Uuid,
    pub owner: Uuid,
    pub expire_time: Time,
    pub password_hash: Option<String>,
    /// 0: no limit.
    pub max_downloads: u32,
    pub downloads: u32,
    pub revoked: bool,
    pub create_time: Time,
}
