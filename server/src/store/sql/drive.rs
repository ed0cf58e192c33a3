//! The drive on SQL. Every write starts by locking the owner's usage row (PostgreSQL;
//! SQLite writes one at a time anyway), so one user's drive changes queue: the quota and
//! the free-name checks below hold until the write commits.

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    ExprTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use super::{
    SqlStore,
    convert::db_time,
    entities::{
        drive_attachments, drive_files, drive_links, drive_shares, drive_thumbnails,
        drive_upload_parts, drive_uploads, drive_usage, members, users,
    },
};
use crate::{
    domain::{
        Attachment, ImageSize, Time,
        drive::{
            Access, DirectUpload, DriveFile, FileKind, FileOrder, Grantee, Part, Share, ShareLink,
            ShareRole, Thumbnail, Upload, Usage,
        },
    },
    drive::names,
    error::{Error, Reason, Result},
    store::{
        NewAttachments,
        drive::{Completed, CompletedFile, DriveStore, Emptied, NewUpload},
    },
};

/// The deepest folder nesting followed when looking for a share above a file.
const MAX_DEPTH: usize = 256;

/// How many numbered names to try before giving up on a taken one.
const MAX_NUMBERED: u32 = 1_000;

fn kind_code(kind: FileKind) -> i16 {
    match kind {
        FileKind::File => 1,
        FileKind::Folder => 2,
    }
}

fn bytes(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn db_pixels(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn db_bytes(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn file(row: drive_files::Model) -> DriveFile {
    DriveFile {
        id: row.id,
        owner: row.owner_id,
        parent: row.parent_id,
        name: row.name,
        kind: if row.kind == 2 {
            FileKind::Folder
        } else {
            FileKind::File
        },
        size: bytes(row.size),
        sha256: row.sha256,
        content_type: row.content_type,
        blob_key: row.blob_key,
        create_time: row.create_time,
        update_time: row.update_time,
        trash_time: row.trash_time,
        image: row.image_width.zip(row.image_height).and_then(|(w, h)| {
            Some(ImageSize {
                width: u32::try_from(w).ok()?,
                height: u32::try_from(h).ok()?,
            })
        }),
    }
}

fn upload(row: drive_uploads::Model) -> Upload {
    Upload {
        id: row.id,
        owner: row.owner_id,
        parent: row.parent_id,
        name: row.name,
        size: bytes(row.size),
        sha256: row.sha256,
        received: bytes(row.received),
        expire_time: row.expire_time,
        direct: match (row.direct_key, row.direct_id, row.direct_part_size) {
            (Some(key), Some(id), Some(part_size)) => Some(DirectUpload {
                key,
                id,
                part_size: bytes(part_size),
            }),
            _ => None,
        },
        uploader: row.uploader_id.unwrap_or(row.owner_id),
        replaces: row.replace_id,
    }
}

const EDITOR: i16 = 1;

fn role(code: Option<i16>) -> ShareRole {
    match code {
        Some(EDITOR) => ShareRole::Editor,
        _ => ShareRole::Viewer,
    }
}

fn role_code(role: ShareRole) -> i16 {
    match role {
        ShareRole::Viewer => 0,
        ShareRole::Editor => EDITOR,
    }
}

fn share(row: drive_shares::Model) -> Result<Share> {
    let grantee = match (row.user_id, row.conversation_id) {
        (Some(user), None) => Grantee::User(user),
        (None, Some(conversation)) => Grantee::Conversation(conversation),
        _ => return Err(Error::internal("a share without exactly one grantee")),
    };
    Ok(Share {
        id: row.id,
        file_id: row.file_id,
        owner: row.owner_id,
        grantee,
        create_time: row.create_time,
        role: role(row.role),
    })
}

/// The owner's file `id` whose contents an upload may replace: a file, not in the trash.
async fn replaceable<C: ConnectionTrait>(
    txn: &C,
    owner: Uuid,
    id: Uuid,
) -> Result<drive_files::Model> {
    let found = owned(txn, owner, id).await?;
    if found.kind != kind_code(FileKind::File) || found.trash_time.is_some() {
        return Err(Error::NotFound("file"));
    }
    Ok(found)
}

fn link(row: drive_links::Model) -> ShareLink {
    ShareLink {
        id: row.id,
        file_id: row.file_id,
        owner: row.owner_id,
        expire_time: row.expire_time,
        password_hash: row.password_hash,
        max_downloads: u32::try_from(row.max_downloads).unwrap_or(0),
        downloads: u32::try_from(row.downloads).unwrap_or(0),
        revoked: row.revoked,
        create_time: row.create_time,
    }
}

/// The conversations `user` is a member of.
async fn conversations_of<C: ConnectionTrait>(db: &C, user: Uuid) -> Result<Vec<Uuid>> {
    Ok(members::Entity::find()
        .select_only()
        .column(members::Column::ConversationId)
        .filter(members::Column::UserId.eq(user))
        .into_tuple()
        .all(db)
        .await?)
}

fn part(row: drive_upload_parts::Model) -> Part {
    Part {
        offset: bytes(row.offset),
        size: bytes(row.size),
    }
}

/// `parent_id` is `parent` (`None`: the top folder).
fn in_folder(parent: Option<Uuid>) -> Condition {
    let column = drive_files::Column::ParentId;
    Condition::all().add(match parent {
        Some(id) => column.eq(id),
        None => column.is_null(),
    })
}

/// Starts `owner`'s drive write: the usage row made if missing, then locked.
async fn begin(store: &SqlStore, owner: Uuid) -> Result<(DatabaseTransaction, drive_usage::Model)> {
    let txn = store.db.begin().await?;
    drive_usage::Entity::insert(drive_usage::ActiveModel {
        user_id: Set(owner),
        used: Set(0),
        reserved: Set(0),
    })
    .on_conflict(
        OnConflict::column(drive_usage::Column::UserId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let mut query = drive_usage::Entity::find_by_id(owner);
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    let usage = query
        .one(&txn)
        .await?
        .ok_or_else(|| Error::internal("a usage row vanished in its own write"))?;
    Ok((txn, usage))
}

/// Moves the owner's usage counters by the given amounts.
async fn count<C: ConnectionTrait>(txn: &C, owner: Uuid, used: i64, reserved: i64) -> Result<()> {
    drive_usage::Entity::update_many()
        .col_expr(
            drive_usage::Column::Used,
            Expr::col(drive_usage::Column::Used).add(used),
        )
        .col_expr(
            drive_usage::Column::Reserved,
            Expr::col(drive_usage::Column::Reserved).add(reserved),
        )
        .filter(drive_usage::Column::UserId.eq(owner))
        .exec(txn)
        .await?;
    Ok(())
}

/// The owner's file or folder `id` (trashed or not); `NOT_FOUND` for anyone else's.
async fn owned<C: ConnectionTrait>(txn: &C, owner: Uuid, id: Uuid) -> Result<drive_files::Model> {
    drive_files::Entity::find_by_id(id)
        .filter(drive_files::Column::OwnerId.eq(owner))
        .one(txn)
        .await?
        .ok_or(Error::NotFound("file"))
}

/// Checks that `parent` is the top folder or a folder of the owner's, not in the trash.
async fn check_folder<C: ConnectionTrait>(
    txn: &C,
    owner: Uuid,
    parent: Option<Uuid>,
) -> Result<()> {
    let Some(id) = parent else {
        return Ok(());
    };
    let folder = owned(txn, owner, id)
        .await
        .map_err(|_| Error::NotFound("folder"))?;
    if folder.kind != kind_code(FileKind::Folder) || folder.trash_time.is_some() {
        return Err(Error::NotFound("folder"));
    }
    Ok(())
}

async fn taken<C: ConnectionTrait>(
    txn: &C,
    owner: Uuid,
    parent: Option<Uuid>,
    name: &str,
) -> Result<bool> {
    Ok(drive_files::Entity::find()
        .filter(drive_files::Column::OwnerId.eq(owner))
        .filter(in_folder(parent))
        .filter(drive_files::Column::Name.eq(name))
        .filter(drive_files::Column::TrashTime.is_null())
        .count(txn)
        .await?
        > 0)
}

/// `name`, or the first free numbered variant of it in `parent`.
async fn free_name<C: ConnectionTrait>(
    txn: &C,
    owner: Uuid,
    parent: Option<Uuid>,
    name: &str,
    kind: FileKind,
) -> Result<String> {
    if !taken(txn, owner, parent, name).await? {
        return Ok(name.to_owned());
    }
    for n in 2..=MAX_NUMBERED {
        let candidate = names::numbered(name, n, kind == FileKind::Folder);
        if !taken(txn, owner, parent, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(name_taken())
}

fn name_taken() -> Error {
    Error::AlreadyExists {
        reason: Reason::NameTaken,
        message: "the folder already holds a file or folder of that name",
    }
}

/// Every file and folder below `folder` (not itself), walking down folder by folder.
async fn descendants<C: ConnectionTrait>(txn: &C, folder: Uuid) -> Result<Vec<drive_files::Model>> {
    let mut found = Vec::new();
    let mut frontier = vec![folder];
    while !frontier.is_empty() {
        let children = drive_files::Entity::find()
            .filter(drive_files::Column::ParentId.is_in(frontier.iter().copied()))
            .all(txn)
            .await?;
        frontier = children
            .iter()
            .filter(|c| c.kind == kind_code(FileKind::Folder))
            .map(|c| c.id)
            .collect();
        found.extend(children);
    }
    Ok(found)
}

async fn insert_file<C: ConnectionTrait>(txn: &C, row: drive_files::Model) -> Result<DriveFile> {
    row.clone()
        .into_active_model()
        .reset_all()
        .insert(txn)
        .await?;
    Ok(file(row))
}

/// Completes an upload that replaces the contents of `target` (inside `txn`, the owner's
/// usage locked): the file gets the new bytes' size, hash, type, image and thumbnail,
/// and the owner's usage moves by the difference.
async fn replace_contents<C: ConnectionTrait>(
    txn: &C,
    upload: &drive_uploads::Model,
    target: Uuid,
    completed: CompletedFile,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Completed> {
    let old = replaceable(txn, upload.owner_id, target).await?;
    remove_upload(txn, upload).await?;
    count(txn, upload.owner_id, upload.size - old.size, 0).await?;
    let (width, height) = image_columns(&completed.image);
    let mut row = old.clone().into_active_model();
    row.size = Set(upload.size);
    row.sha256 = Set(completed.sha256);
    row.content_type = Set(completed.content_type);
    row.blob_key = Set(Some(completed.blob_key));
    row.update_time = Set(now);
    row.image_width = Set(width);
    row.image_height = Set(height);
    let updated = row.update(txn).await?;
    drive_thumbnails::Entity::delete_by_id(target)
        .exec(txn)
        .await?;
    save_thumbnail(txn, target, completed.image).await?;
    Ok(Completed {
        file: file(updated),
        replaced_blob: old.blob_key,
    })
}

/// A file's `image_width` and `image_height` columns, for an image the server decoded.
fn image_columns(image: &Option<(ImageSize, Thumbnail)>) -> (Option<i32>, Option<i32>) {
    match image {
        Some((size, _)) => (Some(db_pixels(size.width)), Some(db_pixels(size.height))),
        None => (None, None),
    }
}

/// Keeps a file's thumbnail, when it has one.
async fn save_thumbnail<C: ConnectionTrait>(
    txn: &C,
    file: Uuid,
    image: Option<(ImageSize, Thumbnail)>,
) -> Result<()> {
    if let Some((_, thumbnail)) = image {
        drive_thumbnails::ActiveModel {
            file_id: Set(file),
            width: Set(db_pixels(thumbnail.size.width)),
            height: Set(db_pixels(thumbnail.size.height)),
            data: Set(thumbnail.data),
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}

/// Removes an upload (its row, its parts' rows, its reservation) inside `txn`.
async fn remove_upload<C: ConnectionTrait>(
    txn: &C,
    row: &drive_uploads::Model,
) -> Result<Vec<Part>> {
    let parts = drive_upload_parts::Entity::find()
        .filter(drive_upload_parts::Column::UploadId.eq(row.id))
        .order_by_asc(drive_upload_parts::Column::Offset)
        .all(txn)
        .await?;
    drive_upload_parts::Entity::delete_many()
        .filter(drive_upload_parts::Column::UploadId.eq(row.id))
        .exec(txn)
        .await?;
    drive_uploads::Entity::delete_by_id(row.id)
        .exec(txn)
        .await?;
    count(txn, row.owner_id, 0, -row.size).await?;
    Ok(parts.into_iter().map(part).collect())
}

fn ordered(query: Select<drive_files::Entity>, order: FileOrder) -> Select<drive_files::Entity> {
    // Folders (kind 2) first, then the chosen order, then the id to break ties.
    let query = query.order_by_desc(drive_files::Column::Kind);
    match order {
        FileOrder::Name => query.order_by_asc(drive_files::Column::Name),
        FileOrder::Size => query.order_by_desc(drive_files::Column::Size),
        FileOrder::UpdateTime => query.order_by_desc(drive_files::Column::UpdateTime),
    }
    .order_by_asc(drive_files::Column::Id)
}

#[async_trait]
impl DriveStore for SqlStore {
    async fn create_upload(&self, new: NewUpload, quota: u64, now: Time) -> Result<Upload> {
        let _guard = self.write_guard().await;
        let (txn, usage) = begin(self, new.owner).await?;
        match new.replaces {
            Some(file) => drop(replaceable(&txn, new.owner, file).await?),
            None => check_folder(&txn, new.owner, new.parent).await?,
        }
        let committed = bytes(usage.used).saturating_add(bytes(usage.reserved));
        if committed.saturating_add(new.size) > quota {
            return Err(Error::QuotaExceeded {
                message: format!(
                    "{} bytes do not fit: {committed} of {quota} bytes are used or reserved",
                    new.size
                ),
            });
        }
        let row = drive_uploads::Model {
            id: Uuid::now_v7(),
            owner_id: new.owner,
            parent_id: new.parent,
            name: new.name,
            size: db_bytes(new.size),
            sha256: new.sha256,
            received: 0,
            expire_time: db_time(new.expire_time),
            create_time: db_time(now),
            direct_key: new.direct.as_ref().map(|d| d.key.clone()),
            direct_id: new.direct.as_ref().map(|d| d.id.clone()),
            direct_part_size: new.direct.as_ref().map(|d| db_bytes(d.part_size)),
            uploader_id: Some(new.uploader).filter(|uploader| *uploader != new.owner),
            replace_id: new.replaces,
        };
        row.clone()
            .into_active_model()
            .reset_all()
            .insert(&txn)
            .await?;
        count(&txn, new.owner, 0, row.size).await?;
        txn.commit().await?;
        Ok(upload(row))
    }

    async fn upload(&self, id: Uuid) -> Result<Option<Upload>> {
        Ok(drive_uploads::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(upload))
    }

    async fn record_chunk(
        &self,
        id: Uuid,
        offset: u64,
        size: u64,
        expire_time: Time,
    ) -> Result<u64> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        // Only the chunk that finds exactly `offset` received moves it on: of two copies
        // of one chunk racing here, one does and the other is a repeat.
        let advanced = drive_uploads::Entity::update_many()
            .col_expr(
                drive_uploads::Column::Received,
                Expr::col(drive_uploads::Column::Received).add(db_bytes(size)),
            )
            .col_expr(
                drive_uploads::Column::ExpireTime,
                db_time(expire_time).into(),
            )
            .filter(drive_uploads::Column::Id.eq(id))
            .filter(drive_uploads::Column::Received.eq(db_bytes(offset)))
            .exec(&txn)
            .await?
            .rows_affected;
        if advanced == 1 {
            drive_upload_parts::ActiveModel {
                upload_id: Set(id),
                offset: Set(db_bytes(offset)),
                size: Set(db_bytes(size)),
            }
            .insert(&txn)
            .await?;
        }
        let received = drive_uploads::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("upload"))?
            .received;
        txn.commit().await?;
        Ok(bytes(received))
    }

    async fn parts(&self, id: Uuid) -> Result<Vec<Part>> {
        Ok(drive_upload_parts::Entity::find()
            .filter(drive_upload_parts::Column::UploadId.eq(id))
            .order_by_asc(drive_upload_parts::Column::Offset)
            .all(&self.db)
            .await?
            .into_iter()
            .map(part)
            .collect())
    }

    async fn complete_upload(
        &self,
        id: Uuid,
        completed: CompletedFile,
        now: Time,
    ) -> Result<Completed> {
        let now = db_time(now);
        let owner = drive_uploads::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("upload"))?
            .owner_id;
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, owner).await?;
        let row = drive_uploads::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("upload"))?;
        if let Some(target) = row.replace_id {
            let replaced = replace_contents(&txn, &row, target, completed, now).await?;
            txn.commit().await?;
            return Ok(replaced);
        }
        // Its folder may have gone (or into the trash) meanwhile: then the top folder.
        let parent = match check_folder(&txn, owner, row.parent_id).await {
            Ok(()) => row.parent_id,
            Err(_) => None,
        };
        let name = free_name(&txn, owner, parent, &row.name, FileKind::File).await?;
        remove_upload(&txn, &row).await?;
        let (image_width, image_height) = image_columns(&completed.image);
        count(&txn, owner, row.size, 0).await?;
        let created = insert_file(
            &txn,
            drive_files::Model {
                id: completed.id,
                owner_id: owner,
                parent_id: parent,
                name,
                kind: kind_code(FileKind::File),
                size: row.size,
                sha256: completed.sha256,
                content_type: completed.content_type,
                blob_key: Some(completed.blob_key),
                create_time: now,
                update_time: now,
                trash_time: None,
                trash_root: None,
                image_width,
                image_height,
            },
        )
        .await?;
        save_thumbnail(&txn, created.id, completed.image).await?;
        txn.commit().await?;
        Ok(Completed {
            file: created,
            replaced_blob: None,
        })
    }

    async fn drop_upload(&self, id: Uuid) -> Result<Option<(Upload, Vec<Part>)>> {
        let Some(row) = drive_uploads::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, row.owner_id).await?;
        // Read again under the lock: a racing drop or completion may have taken it.
        let Some(row) = drive_uploads::Entity::find_by_id(id).one(&txn).await? else {
            return Ok(None);
        };
        let parts = remove_upload(&txn, &row).await?;
        txn.commit().await?;
        Ok(Some((upload(row), parts)))
    }

    async fn expire_uploads(&self, now: Time, limit: u64) -> Result<Vec<(Upload, Vec<Part>)>> {
        let due: Vec<Uuid> = drive_uploads::Entity::find()
            .select_only()
            .column(drive_uploads::Column::Id)
            .filter(drive_uploads::Column::ExpireTime.lt(db_time(now)))
            .order_by_asc(drive_uploads::Column::ExpireTime)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut expired = Vec::new();
        for id in due {
            if let Some(dropped) = self.drop_upload(id).await? {
                expired.push(dropped);
            }
        }
        Ok(expired)
    }

    async fn create_folder(
        &self,
        owner: Uuid,
        parent: Option<Uuid>,
        name: &str,
        now: Time,
    ) -> Result<DriveFile> {
        let now = db_time(now);
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, owner).await?;
        check_folder(&txn, owner, parent).await?;
        let name = free_name(&txn, owner, parent, name, FileKind::Folder).await?;
        let created = insert_file(
            &txn,
            drive_files::Model {
                id: Uuid::now_v7(),
                owner_id: owner,
                parent_id: parent,
                name,
                kind: kind_code(FileKind::Folder),
                size: 0,
                sha256: String::new(),
                content_type: String::new(),
                blob_key: None,
                create_time: now,
                update_time: now,
                trash_time: None,
                trash_root: None,
                image_width: None,
                image_height: None,
            },
        )
        .await?;
        txn.commit().await?;
        Ok(created)
    }

    async fn file(&self, id: Uuid) -> Result<Option<DriveFile>> {
        Ok(drive_files::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(file))
    }

    async fn files(
        &self,
        owner: Uuid,
        parent: Option<Uuid>,
        order: FileOrder,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<DriveFile>> {
        check_folder(&self.db, owner, parent).await?;
        let query = drive_files::Entity::find()
            .filter(drive_files::Column::OwnerId.eq(owner))
            .filter(in_folder(parent))
            .filter(drive_files::Column::TrashTime.is_null());
        Ok(ordered(query, order)
            .offset(skip)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(file)
            .collect())
    }

    async fn trash(&self, owner: Uuid, skip: u64, limit: u64) -> Result<Vec<DriveFile>> {
        Ok(drive_files::Entity::find()
            .filter(drive_files::Column::OwnerId.eq(owner))
            .filter(
                Expr::col(drive_files::Column::TrashRoot).eq(Expr::col(drive_files::Column::Id)),
            )
            .order_by_desc(drive_files::Column::TrashTime)
            .order_by_asc(drive_files::Column::Id)
            .offset(skip)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(file)
            .collect())
    }

    async fn update_file(
        &self,
        owner: Uuid,
        id: Uuid,
        name: Option<String>,
        parent: Option<Option<Uuid>>,
        now: Time,
    ) -> Result<DriveFile> {
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, owner).await?;
        let row = owned(&txn, owner, id).await?;
        if row.trash_time.is_some() {
            return Err(Error::NotFound("file"));
        }
        let to_parent = parent.unwrap_or(row.parent_id);
        let to_name = name.unwrap_or_else(|| row.name.clone());
        if to_parent == row.parent_id && to_name == row.name {
            return Ok(file(row));
        }
        check_folder(&txn, owner, to_parent).await?;
        // A folder cannot go into itself or below itself: walk up from the destination.
        let mut cursor = to_parent;
        while let Some(folder) = cursor {
            if folder == id {
                return Err(Error::FailedPrecondition {
                    reason: Reason::FolderCycle,
                    message: "a folder cannot move into itself or a folder below it",
                });
            }
            cursor = owned(&txn, owner, folder).await?.parent_id;
        }
        if taken(&txn, owner, to_parent, &to_name).await? {
            return Err(name_taken());
        }
        let mut active = row.into_active_model();
        active.parent_id = Set(to_parent);
        active.name = Set(to_name);
        active.update_time = Set(db_time(now));
        let updated = active.update(&txn).await?;
        txn.commit().await?;
        Ok(file(updated))
    }

    async fn trash_file(&self, owner: Uuid, id: Uuid, now: Time) -> Result<DriveFile> {
        let now = db_time(now);
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, owner).await?;
        let row = owned(&txn, owner, id).await?;
        if row.trash_time.is_some() {
            return Ok(file(row)); // In the trash already.
        }
        let mut ids = vec![id];
        if row.kind == kind_code(FileKind::Folder) {
            ids.extend(
                descendants(&txn, id)
                    .await?
                    .into_iter()
                    .filter(|d| d.trash_time.is_none())
                    .map(|d| d.id),
            );
        }
        drive_files::Entity::update_many()
            .col_expr(drive_files::Column::TrashTime, Some(now).into())
            .col_expr(drive_files::Column::TrashRoot, Some(id).into())
            .filter(drive_files::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        drive_files::Entity::update_many()
            .col_expr(drive_files::Column::UpdateTime, now.into())
            .filter(drive_files::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        let trashed = owned(&txn, owner, id).await?;
        txn.commit().await?;
        Ok(file(trashed))
    }

    async fn restore_file(&self, owner: Uuid, id: Uuid, now: Time) -> Result<DriveFile> {
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, owner).await?;
        let row = owned(&txn, owner, id).await?;
        if row.trash_root != Some(id) {
            // Not in the trash, or only there with a folder: restore that folder instead.
            return Err(Error::NotFound("file in the trash"));
        }
        let parent = match check_folder(&txn, owner, row.parent_id).await {
            Ok(()) => row.parent_id,
            Err(_) => None,
        };
        let kind = if row.kind == kind_code(FileKind::Folder) {
            FileKind::Folder
        } else {
            FileKind::File
        };
        let name = free_name(&txn, owner, parent, &row.name, kind).await?;
        drive_files::Entity::update_many()
            .col_expr(drive_files::Column::TrashTime, Option::<Time>::None.into())
            .col_expr(drive_files::Column::TrashRoot, Option::<Uuid>::None.into())
            .filter(drive_files::Column::OwnerId.eq(owner))
            .filter(drive_files::Column::TrashRoot.eq(id))
            .exec(&txn)
            .await?;
        let mut active = owned(&txn, owner, id).await?.into_active_model();
        active.parent_id = Set(parent);
        active.name = Set(name);
        active.update_time = Set(db_time(now));
        let restored = active.update(&txn).await?;
        txn.commit().await?;
        Ok(file(restored))
    }

    async fn empty_trash(&self, owner: Uuid) -> Result<Emptied> {
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, owner).await?;
        let trashed = drive_files::Entity::find()
            .filter(drive_files::Column::OwnerId.eq(owner))
            .filter(drive_files::Column::TrashTime.is_not_null())
            .all(&txn)
            .await?;
        let freed: i64 = trashed.iter().map(|f| f.size).sum();
        let ids: Vec<Uuid> = trashed.iter().map(|f| f.id).collect();
        for chunk in ids.chunks(500) {
            drive_thumbnails::Entity::delete_many()
                .filter(drive_thumbnails::Column::FileId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await?;
            drive_attachments::Entity::delete_many()
                .filter(drive_attachments::Column::FileId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await?;
        }
        drive_files::Entity::delete_many()
            .filter(drive_files::Column::OwnerId.eq(owner))
            .filter(drive_files::Column::TrashTime.is_not_null())
            .exec(&txn)
            .await?;
        count(&txn, owner, -freed, 0).await?;
        txn.commit().await?;
        Ok(Emptied {
            count: u32::try_from(trashed.len()).unwrap_or(u32::MAX),
            freed: bytes(freed),
            blob_keys: trashed.into_iter().filter_map(|f| f.blob_key).collect(),
        })
    }

    async fn usage(&self, owner: Uuid) -> Result<Usage> {
        Ok(drive_usage::Entity::find_by_id(owner)
            .one(&self.db)
            .await?
            .map(|row| Usage {
                used: bytes(row.used),
                reserved: bytes(row.reserved),
            })
            .unwrap_or_default())
    }

    async fn share(
        &self,
        owner: Uuid,
        file: Uuid,
        grantee: Grantee,
        role: ShareRole,
        now: Time,
    ) -> Result<Share> {
        let _guard = self.write_guard().await;
        let (txn, _) = begin(self, owner).await?;
        owned(&txn, owner, file).await?;
        let (user, conversation) = match grantee {
            Grantee::User(user) => {
                let exists = users::Entity::find_by_id(user).count(&txn).await? > 0;
                if !exists || user == owner {
                    return Err(Error::NotFound("user"));
                }
                (Some(user), None)
            }
            Grantee::Conversation(conversation) => {
                let member = members::Entity::find_by_id((conversation, owner))
                    .count(&txn)
                    .await?
                    > 0;
                if !member {
                    return Err(Error::NotFound("conversation"));
                }
                (None, Some(conversation))
            }
        };
        let mut existing =
            drive_shares::Entity::find().filter(drive_shares::Column::FileId.eq(file));
        existing = match grantee {
            Grantee::User(user) => existing.filter(drive_shares::Column::UserId.eq(user)),
            Grantee::Conversation(c) => existing.filter(drive_shares::Column::ConversationId.eq(c)),
        };
        if let Some(row) = existing.one(&txn).await? {
            if row.role.unwrap_or(0) == role_code(role) {
                return share(row);
            }
            let mut changed = row.into_active_model();
            changed.role = Set(Some(role_code(role)));
            let row = changed.update(&txn).await?;
            txn.commit().await?;
            return share(row);
        }
        let row = drive_shares::Model {
            id: Uuid::now_v7(),
            file_id: file,
            owner_id: owner,
            user_id: user,
            conversation_id: conversation,
            create_time: db_time(now),
            role: Some(role_code(role)),
        };
        row.clone()
            .into_active_model()
            .reset_all()
            .insert(&txn)
            .await?;
        txn.commit().await?;
        share(row)
    }

    async fn unshare(&self, owner: Uuid, id: Uuid) -> Result<bool> {
        let removed = drive_shares::Entity::delete_many()
            .filter(drive_shares::Column::Id.eq(id))
            .filter(drive_shares::Column::OwnerId.eq(owner))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(removed == 1)
    }

    async fn shares(&self, owner: Uuid, file: Uuid) -> Result<Vec<Share>> {
        owned(&self.db, owner, file).await?;
        drive_shares::Entity::find()
            .filter(drive_shares::Column::FileId.eq(file))
            .order_by_asc(drive_shares::Column::CreateTime)
            .order_by_asc(drive_shares::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(share)
            .collect()
    }

    async fn thumbnail(&self, id: Uuid) -> Result<Option<Thumbnail>> {
        Ok(drive_thumbnails::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(|row| Thumbnail {
                size: ImageSize {
                    width: u32::try_from(row.width).unwrap_or(0),
                    height: u32::try_from(row.height).unwrap_or(0),
                },
                data: row.data,
            }))
    }

    async fn access(
        &self,
        id: Uuid,
        reader: Uuid,
        enough: Access,
    ) -> Result<Option<(DriveFile, Access)>> {
        let Some(row) = drive_files::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        if row.owner_id == reader {
            return Ok(Some((file(row), Access::Own)));
        }
        if row.trash_time.is_some() {
            return Ok(None);
        }
        let mut granted = attached_for(&self.db, row.id, reader)
            .await?
            .then_some(Access::Read);
        if granted >= Some(enough) {
            return Ok(granted.map(|access| (file(row), access)));
        }
        // The file and every folder above it: a share on any of them lets the reader in.
        let mut chain = vec![row.id];
        let mut above = row.parent_id;
        while let Some(folder) = above {
            if chain.len() > MAX_DEPTH {
                break;
            }
            chain.push(folder);
            above = drive_files::Entity::find_by_id(folder)
                .one(&self.db)
                .await?
                .and_then(|f| f.parent_id);
        }
        let shares = drive_shares::Entity::find()
            .filter(drive_shares::Column::FileId.is_in(chain))
            .all(&self.db)
            .await?;
        for found in shares {
            let access = match role(found.role) {
                ShareRole::Viewer => Access::Read,
                ShareRole::Editor => Access::Edit,
            };
            if granted >= Some(access) {
                continue; // Nothing more to learn from it.
            }
            let allowed = match (found.user_id, found.conversation_id) {
                (Some(user), _) => user == reader,
                (None, Some(conversation)) => {
                    members::Entity::find_by_id((conversation, reader))
                        .count(&self.db)
                        .await?
                        > 0
                }
                (None, None) => false,
            };
            if allowed {
                granted = Some(access);
                if access >= enough {
                    break;
                }
            }
        }
        Ok(granted.map(|access| (file(row), access)))
    }

    async fn shared_with(
        &self,
        reader: Uuid,
        skip: u64,
        limit: u64,
    ) -> Result<(Vec<DriveFile>, u64)> {
        let conversations = conversations_of(&self.db, reader).await?;
        let rows = drive_shares::Entity::find()
            .filter(
                Condition::any()
                    .add(drive_shares::Column::UserId.eq(reader))
                    .add(drive_shares::Column::ConversationId.is_in(conversations)),
            )
            .filter(drive_shares::Column::OwnerId.ne(reader))
            .order_by_desc(drive_shares::Column::CreateTime)
            .order_by_desc(drive_shares::Column::Id)
            .offset(skip)
            .limit(limit)
            .all(&self.db)
            .await?;
        let read = rows.len() as u64;
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<Uuid> = rows
            .iter()
            .map(|r| r.file_id)
            .filter(|id| seen.insert(*id))
            .collect();
        let mut files: std::collections::HashMap<Uuid, drive_files::Model> =
            drive_files::Entity::find()
                .filter(drive_files::Column::Id.is_in(ids.iter().copied()))
                .filter(drive_files::Column::TrashTime.is_null())
                .all(&self.db)
                .await?
                .into_iter()
                .map(|f| (f.id, f))
                .collect();
        let shared = ids
            .into_iter()
            .filter_map(|id| files.remove(&id))
            .map(file)
            .collect();
        Ok((shared, read))
    }

    async fn create_link(&self, new: ShareLink) -> Result<ShareLink> {
        let found = owned(&self.db, new.owner, new.file_id).await?;
        if found.kind != kind_code(FileKind::File) || found.trash_time.is_some() {
            return Err(Error::NotFound("file"));
        }
        let row = drive_links::Model {
            id: new.id,
            file_id: new.file_id,
            owner_id: new.owner,
            expire_time: db_time(new.expire_time),
            password_hash: new.password_hash,
            max_downloads: i32::try_from(new.max_downloads).unwrap_or(i32::MAX),
            downloads: 0,
            revoked: false,
            create_time: db_time(new.create_time),
        };
        row.clone()
            .into_active_model()
            .reset_all()
            .insert(&self.db)
            .await?;
        Ok(link(row))
    }

    async fn link(&self, id: Uuid) -> Result<Option<ShareLink>> {
        Ok(drive_links::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(link))
    }

    async fn links(&self, owner: Uuid, file: Uuid) -> Result<Vec<ShareLink>> {
        owned(&self.db, owner, file).await?;
        Ok(drive_links::Entity::find()
            .filter(drive_links::Column::FileId.eq(file))
            .filter(drive_links::Column::Revoked.eq(false))
            .order_by_asc(drive_links::Column::CreateTime)
            .order_by_asc(drive_links::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(link)
            .collect())
    }

    async fn revoke_link(&self, owner: Uuid, id: Uuid) -> Result<bool> {
        let changed = drive_links::Entity::update_many()
            .col_expr(drive_links::Column::Revoked, true.into())
            .filter(drive_links::Column::Id.eq(id))
            .filter(drive_links::Column::OwnerId.eq(owner))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(changed == 1)
    }

    async fn count_link_download(&self, id: Uuid) -> Result<bool> {
        // One conditional write: concurrent downloads cannot pass the limit together.
        let counted = drive_links::Entity::update_many()
            .col_expr(
                drive_links::Column::Downloads,
                Expr::col(drive_links::Column::Downloads).add(1),
            )
            .filter(drive_links::Column::Id.eq(id))
            .filter(
                Condition::any()
                    .add(drive_links::Column::MaxDownloads.eq(0))
                    .add(
                        Expr::col(drive_links::Column::Downloads)
                            .lt(Expr::col(drive_links::Column::MaxDownloads)),
                    ),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(counted == 1)
    }
}

/// Attaches drive files to `message` (inside its send): for `Own`, each must be a file
/// of the sender's, not in the trash (`INVALID_ARGUMENT` naming it otherwise); the
/// conversation's members may read the files from then on. Returns what the message shows.
pub(super) async fn attach<C: ConnectionTrait>(
    txn: &C,
    message: &crate::domain::Message,
    files: NewAttachments,
    now: Time,
) -> Result<Vec<Attachment>> {
    let attachments = match files {
        NewAttachments::None => return Ok(Vec::new()),
        NewAttachments::Copied(attachments) => attachments,
        NewAttachments::Own(ids) => {
            let rows = drive_files::Entity::find()
                .filter(drive_files::Column::Id.is_in(ids.clone()))
                .all(txn)
                .await?;
            let mut attachments = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                let field = format!("attachment_file_ids[{i}]");
                let found = rows
                    .iter()
                    .find(|r| r.id == *id && r.owner_id == message.sender_id);
                let Some(row) = found else {
                    return Err(Error::invalid(field, "no such file in your drive"));
                };
                if row.kind != kind_code(FileKind::File) {
                    return Err(Error::invalid(field, "a folder cannot be attached"));
                }
                if row.trash_time.is_some() {
                    return Err(Error::invalid(field, "the file is in the trash"));
                }
                attachments.push(file(row.clone()).attachment());
            }
            attachments
        }
    };
    if attachments.is_empty() {
        return Ok(attachments);
    }
    drive_attachments::Entity::insert_many(attachments.iter().map(|a| {
        drive_attachments::ActiveModel {
            file_id: Set(a.file_id),
            message_id: Set(message.id),
            conversation_id: Set(message.conversation_id),
            create_time: Set(db_time(now)),
        }
    }))
    .exec(txn)
    .await?;
    Ok(attachments)
}

/// Ends what a deleted message's attachments let its conversation read.
pub(super) async fn detach<C: ConnectionTrait>(txn: &C, message: Uuid) -> Result<()> {
    drive_attachments::Entity::delete_many()
        .filter(drive_attachments::Column::MessageId.eq(message))
        .exec(txn)
        .await?;
    Ok(())
}

/// Whether `file` is attached to a message of a conversation `reader` is a member of
/// (attachment rows go with their message's deletion).
async fn attached_for<C: ConnectionTrait>(db: &C, file: Uuid, reader: Uuid) -> Result<bool> {
    let attached_in = sea_orm::sea_query::Query::select()
        .column(drive_attachments::Column::ConversationId)
        .from(drive_attachments::Entity)
        .and_where(drive_attachments::Column::FileId.eq(file))
        .to_owned();
    let memberships = members::Entity::find()
        .filter(members::Column::UserId.eq(reader))
        .filter(members::Column::ConversationId.in_subquery(attached_in))
        .count(db)
        .await?;
    Ok(memberships > 0)
}
