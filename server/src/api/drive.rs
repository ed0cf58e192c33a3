//! `secureconnect.drive.v1.DriveService`.

use std::{pin::Pin, sync::Arc};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use secureconnect_proto::drive::v1::{self as pb, drive_service_server::DriveService};
use tonic::{Request, Response, Status};

use super::{convert, mask_paths, principal};
use crate::{
    auth::{Auth, Operation},
    domain::drive::{DriveFile, FileKind, FileOrder, Grantee, Share, ShareLink, ShareRole, Upload},
    drive::{CompletedPart, CreateUpload, Download, Drive, FilePage},
    error::Error,
};

pub struct DriveApi {
    pub auth: Arc<Auth>,
    pub drive: Arc<Drive>,
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<pb::DownloadFileResponse, Status>> + Send>>;
type LinkDownloadStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadShareLinkResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DriveService for DriveApi {
    type DownloadFileStream = DownloadStream;
    type DownloadShareLinkStream = LinkDownloadStream;

    async fn create_share_link(
        &self,
        req: Request<pb::CreateShareLinkRequest>,
    ) -> Result<Response<pb::CreateShareLinkResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let expire_time = r.expire_time.and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        });
        let (link, token) = self
            .drive
            .create_link(
                who.user_id,
                &r.file_id,
                expire_time,
                &r.password,
                r.max_downloads,
                chrono::Utc::now(),
            )
            .await?;
        let mut link = link_pb(link);
        link.path = format!("/s/{token}");
        link.token = token;
        Ok(Response::new(pb::CreateShareLinkResponse {
            link: Some(link),
        }))
    }

    async fn list_share_links(
        &self,
        req: Request<pb::ListShareLinksRequest>,
    ) -> Result<Response<pb::ListShareLinksResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let links = self
            .drive
            .links(who.user_id, &req.get_ref().file_id)
            .await?;
        Ok(Response::new(pb::ListShareLinksResponse {
            links: links.into_iter().map(link_pb).collect(),
        }))
    }

    async fn revoke_share_link(
        &self,
        req: Request<pb::RevokeShareLinkRequest>,
    ) -> Result<Response<pb::RevokeShareLinkResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.drive
            .revoke_link(who.user_id, &req.get_ref().link_id)
            .await?;
        Ok(Response::new(pb::RevokeShareLinkResponse {}))
    }

    /// No access token: the link's token is the credential.
    async fn get_share_link_file(
        &self,
        req: Request<pb::GetShareLinkFileRequest>,
    ) -> Result<Response<pb::GetShareLinkFileResponse>, Status> {
        let r = req.into_inner();
        let (_, file) = self
            .drive
            .link_file(&r.token, &r.password, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::GetShareLinkFileResponse {
            file: Some(file_pb(file)),
        }))
    }

    /// No access token: the link's token is the credential.
    async fn download_share_link(
        &self,
        req: Request<pb::DownloadShareLinkRequest>,
    ) -> Result<Response<LinkDownloadStream>, Status> {
        let r = req.into_inner();
        let download = self
            .drive
            .link_download(
                &r.token,
                &r.password,
                r.offset,
                r.length,
                chrono::Utc::now(),
            )
            .await?;
        let stream = chunks(download, |file, offset, data| {
            pb::DownloadShareLinkResponse { file, offset, data }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn create_upload(
        &self,
        req: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::CreateUploadResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let input = CreateUpload {
            parent_id: r.parent_id,
            name: r.name,
            size: r.size,
            sha256: r.sha256,
            direct: r.direct,
            replace_file_id: r.replace_file_id,
        };
        let now = chrono::Utc::now();
        let upload = self.drive.create_upload(who.user_id, input, now).await?;
        Ok(Response::new(pb::CreateUploadResponse {
            direct_parts: self.direct_parts(&upload, now),
            upload: Some(upload_pb(upload)),
        }))
    }

    async fn upload_chunk(
        &self,
        req: Request<pb::UploadChunkRequest>,
    ) -> Result<Response<pb::UploadChunkResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let received_bytes = self
            .drive
            .upload_chunk(
                who.user_id,
                &r.upload_id,
                r.offset,
                r.data.into(),
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::UploadChunkResponse { received_bytes }))
    }

    async fn upload_file(
        &self,
        req: Request<tonic::Streaming<pb::UploadFileRequest>>,
    ) -> Result<Response<pb::UploadFileResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let mut messages = req.into_inner();
        let first = messages
            .message()
            .await?
            .ok_or_else(|| Error::invalid("upload_id", "required"))?;
        let head = futures::stream::iter([Ok(Bytes::from(first.data))]);
        let rest = messages.map(|m| {
            m.map(|m| Bytes::from(m.data))
                .map_err(|s| Error::Unavailable(format!("the stream broke: {}", s.message())))
        });
        let file = self
            .drive
            .upload_stream(
                who.user_id,
                &first.upload_id,
                first.offset,
                Box::pin(head.chain(rest)),
            )
            .await?;
        Ok(Response::new(pb::UploadFileResponse {
            file: Some(file_pb(file)),
        }))
    }

    async fn get_upload(
        &self,
        req: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::GetUploadResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let upload = self
            .drive
            .upload(who.user_id, &req.get_ref().upload_id)
            .await?;
        Ok(Response::new(pb::GetUploadResponse {
            direct_parts: self.direct_parts(&upload, chrono::Utc::now()),
            upload: Some(upload_pb(upload)),
        }))
    }

    async fn complete_upload(
        &self,
        req: Request<pb::CompleteUploadRequest>,
    ) -> Result<Response<pb::CompleteUploadResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let parts = r
            .parts
            .into_iter()
            .map(|p| CompletedPart {
                part_number: p.part_number,
                etag: p.etag,
            })
            .collect();
        let file = self
            .drive
            .complete_upload(who.user_id, &r.upload_id, parts, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::CompleteUploadResponse {
            file: Some(file_pb(file)),
        }))
    }

    async fn abort_upload(
        &self,
        req: Request<pb::AbortUploadRequest>,
    ) -> Result<Response<pb::AbortUploadResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.drive
            .abort_upload(who.user_id, &req.get_ref().upload_id)
            .await?;
        Ok(Response::new(pb::AbortUploadResponse {}))
    }

    async fn download_file(
        &self,
        req: Request<pb::DownloadFileRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let download = self
            .drive
            .download(who.user_id, &r.file_id, r.offset, r.length)
            .await?;
        let stream = chunks(download, |file, offset, data| pb::DownloadFileResponse {
            file,
            offset,
            data,
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_download_url(
        &self,
        req: Request<pb::GetDownloadUrlRequest>,
    ) -> Result<Response<pb::GetDownloadUrlResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let (url, expire_time) = self
            .drive
            .download_url(who.user_id, &req.get_ref().file_id, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::GetDownloadUrlResponse {
            url: url.to_string(),
            expire_time: Some(convert::timestamp(expire_time)),
        }))
    }

    async fn get_thumbnail(
        &self,
        req: Request<pb::GetThumbnailRequest>,
    ) -> Result<Response<pb::GetThumbnailResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let thumbnail = self
            .drive
            .thumbnail(who.user_id, &req.get_ref().file_id)
            .await?;
        Ok(Response::new(pb::GetThumbnailResponse {
            content_type: "image/jpeg".into(),
            data: thumbnail.data,
            size: Some(convert::image_size(thumbnail.size)),
        }))
    }

    async fn create_folder(
        &self,
        req: Request<pb::CreateFolderRequest>,
    ) -> Result<Response<pb::CreateFolderResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let folder = self
            .drive
            .create_folder(who.user_id, &r.parent_id, &r.name, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::CreateFolderResponse {
            folder: Some(file_pb(folder)),
        }))
    }

    async fn get_file(
        &self,
        req: Request<pb::GetFileRequest>,
    ) -> Result<Response<pb::GetFileResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let file = self.drive.file(who.user_id, &req.get_ref().file_id).await?;
        Ok(Response::new(pb::GetFileResponse {
            file: Some(file_pb(file)),
        }))
    }

    async fn list_files(
        &self,
        req: Request<pb::ListFilesRequest>,
    ) -> Result<Response<pb::ListFilesResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let order = match pb::FileOrder::try_from(r.order_by) {
            Ok(pb::FileOrder::Size) => FileOrder::Size,
            Ok(pb::FileOrder::UpdateTime) => FileOrder::UpdateTime,
            _ => FileOrder::Name,
        };
        let page = FilePage {
            parent_id: r.parent_id,
            order,
            trashed: r.trashed,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let (files, next_page_token) = self.drive.list(who.user_id, page).await?;
        Ok(Response::new(pb::ListFilesResponse {
            files: files.into_iter().map(file_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_file(
        &self,
        req: Request<pb::UpdateFileRequest>,
    ) -> Result<Response<pb::UpdateFileResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let paths = mask_paths(r.update_mask, &["name", "parent_id"])?;
        let file = r.file.unwrap_or_default();
        let has = |path: &str| paths.iter().any(|p| p == path);
        let updated = self
            .drive
            .update_file(
                who.user_id,
                &file.file_id,
                has("name").then_some(file.name.as_str()),
                has("parent_id").then_some(file.parent_id.as_str()),
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::UpdateFileResponse {
            file: Some(file_pb(updated)),
        }))
    }

    async fn delete_file(
        &self,
        req: Request<pb::DeleteFileRequest>,
    ) -> Result<Response<pb::DeleteFileResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let file = self
            .drive
            .trash(who.user_id, &req.get_ref().file_id, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::DeleteFileResponse {
            file: Some(file_pb(file)),
        }))
    }

    async fn restore_file(
        &self,
        req: Request<pb::RestoreFileRequest>,
    ) -> Result<Response<pb::RestoreFileResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let file = self
            .drive
            .restore(who.user_id, &req.get_ref().file_id, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::RestoreFileResponse {
            file: Some(file_pb(file)),
        }))
    }

    async fn empty_trash(
        &self,
        req: Request<pb::EmptyTrashRequest>,
    ) -> Result<Response<pb::EmptyTrashResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let emptied = self.drive.empty_trash(who.user_id).await?;
        Ok(Response::new(pb::EmptyTrashResponse {
            deleted_count: emptied.count,
            freed_bytes: emptied.freed,
        }))
    }

    async fn share_file(
        &self,
        req: Request<pb::ShareFileRequest>,
    ) -> Result<Response<pb::ShareFileResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let (user, conversation) = match &r.grantee {
            Some(pb::share_file_request::Grantee::UserId(id)) => (Some(id.as_str()), None),
            Some(pb::share_file_request::Grantee::ConversationId(id)) => (None, Some(id.as_str())),
            None => (None, None),
        };
        // A grant: a value this server does not know is refused, never guessed at.
        let role = match pb::ShareRole::try_from(r.role) {
            Ok(pb::ShareRole::Unspecified | pb::ShareRole::Viewer) => ShareRole::Viewer,
            Ok(pb::ShareRole::Editor) => ShareRole::Editor,
            Err(_) => return Err(Error::invalid("role", "unknown").into()),
        };
        let share = self
            .drive
            .share(
                who.user_id,
                &r.file_id,
                user,
                conversation,
                role,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::ShareFileResponse {
            share: Some(share_pb(share)),
        }))
    }

    async fn unshare_file(
        &self,
        req: Request<pb::UnshareFileRequest>,
    ) -> Result<Response<pb::UnshareFileResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.drive
            .unshare(who.user_id, &req.get_ref().share_id)
            .await?;
        Ok(Response::new(pb::UnshareFileResponse {}))
    }

    async fn list_shares(
        &self,
        req: Request<pb::ListSharesRequest>,
    ) -> Result<Response<pb::ListSharesResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let shares = self
            .drive
            .shares(who.user_id, &req.get_ref().file_id)
            .await?;
        Ok(Response::new(pb::ListSharesResponse {
            shares: shares.into_iter().map(share_pb).collect(),
        }))
    }

    async fn list_shared_with_me(
        &self,
        req: Request<pb::ListSharedWithMeRequest>,
    ) -> Result<Response<pb::ListSharedWithMeResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let (files, next_page_token) = self
            .drive
            .shared_with_me(who.user_id, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListSharedWithMeResponse {
            files: files.into_iter().map(file_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_quota(
        &self,
        req: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::GetQuotaResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let (usage, total) = self.drive.quota(who.user_id).await?;
        Ok(Response::new(pb::GetQuotaResponse {
            used_bytes: usage.used,
            reserved_bytes: usage.reserved,
            total_bytes: total,
        }))
    }
}

/// A download as response messages built by `message` from (the file, on the first one
/// only; the offset; the bytes).
fn chunks<T>(
    (file, chunks): Download,
    message: impl Fn(Option<pb::File>, u64, Vec<u8>) -> T + Send + 'static,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
    let mut first = Some(file_pb(file));
    chunks.map(move |chunk| {
        let (offset, data) = chunk?;
        Ok(message(first.take(), offset, data.into()))
    })
}

/// A link as listed: never its token (which the server does not keep).
fn link_pb(l: ShareLink) -> pb::ShareLink {
    pb::ShareLink {
        link_id: l.id.to_string(),
        file_id: l.file_id.to_string(),
        token: String::new(),
        path: String::new(),
        expire_time: Some(convert::timestamp(l.expire_time)),
        max_downloads: l.max_downloads,
        downloads: l.downloads,
        password_protected: l.password_hash.is_some(),
        create_time: Some(convert::timestamp(l.create_time)),
    }
}

fn share_pb(s: Share) -> pb::Share {
    pb::Share {
        share_id: s.id.to_string(),
        file_id: s.file_id.to_string(),
        grantee: Some(match s.grantee {
            Grantee::User(user) => pb::share::Grantee::UserId(user.to_string()),
            Grantee::Conversation(c) => pb::share::Grantee::ConversationId(c.to_string()),
        }),
        create_time: Some(convert::timestamp(s.create_time)),
        role: match s.role {
            ShareRole::Viewer => pb::ShareRole::Viewer,
            ShareRole::Editor => pb::ShareRole::Editor,
        }
        .into(),
    }
}

impl DriveApi {
    fn direct_parts(&self, upload: &Upload, now: crate::domain::Time) -> Vec<pb::DirectPart> {
        self.drive
            .direct_parts(upload, now)
            .into_iter()
            .map(|p| pb::DirectPart {
                part_number: u32::from(p.number),
                offset: p.offset,
                size: p.size,
                url: p.url.to_string(),
            })
            .collect()
    }
}

fn file_pb(f: DriveFile) -> pb::File {
    pb::File {
        file_id: f.id.to_string(),
        parent_id: f.parent.map(|p| p.to_string()).unwrap_or_default(),
        name: f.name,
        kind: match f.kind {
            FileKind::File => pb::FileKind::File,
            FileKind::Folder => pb::FileKind::Folder,
        }
        .into(),
        size: f.size,
        sha256: f.sha256,
        content_type: f.content_type,
        owner_user_id: f.owner.to_string(),
        create_time: Some(convert::timestamp(f.create_time)),
        update_time: Some(convert::timestamp(f.update_time)),
        trash_time: f.trash_time.map(convert::timestamp),
        image: f.image.map(convert::image_size),
    }
}

fn upload_pb(u: Upload) -> pb::Upload {
    pb::Upload {
        upload_id: u.id.to_string(),
        parent_id: u.parent.map(|p| p.to_string()).unwrap_or_default(),
        name: u.name,
        size: u.size,
        sha256: u.sha256.unwrap_or_default(),
        received_bytes: u.received,
        expire_time: Some(convert::timestamp(u.expire_time)),
        direct_part_size: u.direct.map(|d| d.part_size).unwrap_or_default(),
        replace_file_id: u.replaces.map(|f| f.to_string()).unwrap_or_default(),
    }
}
