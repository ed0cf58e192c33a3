//! The drive through the real server, on local files and (services pass) on SeaweedFS's
//! S3: resumable uploads that end with the right bytes or none, quotas that hold under
//! concurrent uploads, names that cannot traverse, the trash, expiry, and a crash in the
//! middle of an upload.

use secureconnect_sdk::{Client, proto::drive::v1::*};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::common::*;

const MIB: usize = 1 << 20;
const CHUNK: usize = 4 * MIB;

/// `len` bytes that differ from position to position (and from seed to seed).
pub(crate) fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 13) as u8))
        .collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) async fn create_upload(
    client: &Client,
    parent_id: &str,
    name: &str,
    bytes: &[u8],
    declared: Option<String>,
) -> Result<Upload, tonic::Status> {
    client
        .drive()
        .create_upload(CreateUploadRequest {
            parent_id: parent_id.into(),
            name: name.into(),
            size: bytes.len() as u64,
            sha256: declared.unwrap_or_else(|| sha256_hex(bytes)),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().upload.expect("upload"))
}

pub(crate) async fn chunk(
    client: &Client,
    upload: &Upload,
    bytes: &[u8],
    offset: usize,
) -> Result<u64, tonic::Status> {
    let end = (offset + CHUNK).min(bytes.len());
    client
        .drive()
        .upload_chunk(UploadChunkRequest {
            upload_id: upload.upload_id.clone(),
            offset: offset as u64,
            data: bytes[offset..end].to_vec(),
        })
        .await
        .map(|r| r.into_inner().received_bytes)
}

pub(crate) async fn complete(client: &Client, upload: &Upload) -> Result<File, tonic::Status> {
    client
        .drive()
        .complete_upload(CompleteUploadRequest {
            upload_id: upload.upload_id.clone(),
            parts: Vec::new(),
        })
        .await
        .map(|r| r.into_inner().file.expect("file"))
}

/// Uploads `bytes` in one go, chunk after chunk.
pub(crate) async fn upload(client: &Client, parent_id: &str, name: &str, bytes: &[u8]) -> File {
    let upload = create_upload(client, parent_id, name, bytes, None)
        .await
        .expect("create upload");
    let mut offset = 0;
    while offset < bytes.len() {
        offset = chunk(client, &upload, bytes, offset).await.expect("chunk") as usize;
    }
    complete(client, &upload).await.expect("complete")
}

pub(crate) async fn download(client: &Client, file_id: &str, offset: u64, length: u64) -> Vec<u8> {
    let mut stream = client
        .drive()
        .download_file(DownloadFileRequest {
            file_id: file_id.into(),
            offset,
            length,
        })
        .await
        .expect("download")
        .into_inner();
    let mut bytes = Vec::new();
    let mut first = true;
    while let Some(message) = stream.message().await.expect("chunk") {
        assert_eq!(
            message.file.is_some(),
            first,
            "the file comes with the first chunk"
        );
        first = false;
        assert_eq!(message.offset, offset + bytes.len() as u64);
        bytes.extend_from_slice(&message.data);
    }
    assert!(!first, "at least one message");
    bytes
}

async fn quota(client: &Client) -> GetQuotaResponse {
    client
        .drive()
        .get_quota(GetQuotaRequest {})
        .await
        .expect("quota")
        .into_inner()
}

async fn list(client: &Client, parent_id: &str, trashed: bool) -> Vec<File> {
    client
        .drive()
        .list_files(ListFilesRequest {
            parent_id: parent_id.into(),
            trashed,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .files
}

pub(crate) async fn folder(client: &Client, parent_id: &str, name: &str) -> File {
    client
        .drive()
        .create_folder(CreateFolderRequest {
            parent_id: parent_id.into(),
            name: name.into(),
        })
        .await
        .expect("folder")
        .into_inner()
        .folder
        .expect("folder")
}

/// A 50 MiB upload that loses answers, repeats chunks, jumps ahead and loses its
/// connection, resumed each time from what the server says it has: it completes with the
/// right SHA-256 and downloads back byte for byte, whole and by ranges.
#[tokio::test]
async fn an_interrupted_upload_resumes_and_completes_intact() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = content(50 * MIB + 12_345, 7);
    let upload = create_upload(&alice.client, "", "video.bin", &bytes, None)
        .await
        .expect("create");
    let reserved = quota(&alice.client).await.reserved_bytes;
    assert_eq!(
        reserved,
        bytes.len() as u64,
        "the size is reserved up front"
    );
    let mut offset = 0usize;
    let mut step = 0;
    while offset < bytes.len() {
        step += 1;
        match step % 5 {
            // The answer is lost: the client sends the same chunk again.
            1 => {
                let first = chunk(&alice.client, &upload, &bytes, offset)
                    .await
                    .expect("chunk");
                let again = chunk(&alice.client, &upload, &bytes, offset)
                    .await
                    .expect("repeat");
                assert_eq!(first, again, "a repeated chunk changes nothing");
                offset = again as usize;
            }
            // A confused client jumps ahead: refused, with where to carry on.
            2 => {
                let ahead = offset + CHUNK;
                if ahead < bytes.len() {
                    let status = chunk(&alice.client, &upload, &bytes, ahead)
                        .await
                        .expect_err("a gap");
                    assert_eq!(status.code(), Code::FailedPrecondition);
                    assert_eq!(reason(&status), "UPLOAD_OFFSET_MISMATCH");
                }
                offset = chunk(&alice.client, &upload, &bytes, offset)
                    .await
                    .expect("chunk") as usize;
            }
            // The connection drops: a new client asks where the upload stands.
            3 => {
                let fresh = server.client().await;
                fresh.set_access_token(Some(alice.tokens.access_token.clone()));
                let status = fresh
                    .drive()
                    .get_upload(GetUploadRequest {
                        upload_id: upload.upload_id.clone(),
                    })
                    .await
                    .expect("get upload")
                    .into_inner()
                    .upload
                    .expect("upload");
                assert_eq!(status.received_bytes as usize, offset);
                offset = chunk(&fresh, &upload, &bytes, offset).await.expect("chunk") as usize;
            }
            _ => {
                offset = chunk(&alice.client, &upload, &bytes, offset)
                    .await
                    .expect("chunk") as usize;
            }
        }
    }
    let file = complete(&alice.client, &upload).await.expect("complete");
    assert_eq!(file.sha256, sha256_hex(&bytes));
    assert_eq!(file.size, bytes.len() as u64);
    assert_eq!(file.name, "video.bin");
    let usage = quota(&alice.client).await;
    assert_eq!(
        (usage.used_bytes, usage.reserved_bytes),
        (bytes.len() as u64, 0)
    );
    assert!(download(&alice.client, &file.file_id, 0, 0).await == bytes);
    let range = download(
        &alice.client,
        &file.file_id,
        3 * MIB as u64 + 17,
        2 * MIB as u64,
    )
    .await;
    assert!(range == bytes[3 * MIB + 17..5 * MIB + 17]);
    let tail = download(&alice.client, &file.file_id, bytes.len() as u64 - 10, 100).await;
    assert!(tail == bytes[bytes.len() - 10..]);
    // The upload is gone once complete.
    let gone = alice
        .client
        .drive()
        .get_upload(GetUploadRequest {
            upload_id: upload.upload_id.clone(),
        })
        .await;
    assert_code(gone, Code::NotFound);
    server.shutdown().await;
}

/// Bytes that do not match the declared SHA-256: refused, no file, the quota released.
#[tokio::test]
async fn a_wrong_hash_leaves_no_file_and_frees_the_quota() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = content(5 * MIB, 1);
    let wrong = sha256_hex(b"something else");
    let upload = create_upload(&alice.client, "", "report.pdf", &bytes, Some(wrong))
        .await
        .expect("create");
    let mut offset = 0;
    while offset < bytes.len() {
        offset = chunk(&alice.client, &upload, &bytes, offset)
            .await
            .expect("chunk") as usize;
    }
    let status = complete(&alice.client, &upload)
        .await
        .expect_err("a mismatch");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["sha256"]);
    assert!(list(&alice.client, "", false).await.is_empty(), "no file");
    let usage = quota(&alice.client).await;
    assert_eq!((usage.used_bytes, usage.reserved_bytes), (0, 0));
    let again = complete(&alice.client, &upload).await;
    assert_code(again, Code::NotFound);
    server.shutdown().await;
}

/// Twenty uploads started at once against a quota with room for ten: exactly ten get a
/// reservation, and the quota is never passed.
#[tokio::test]
async fn the_quota_holds_under_twenty_concurrent_uploads() {
    let server = TestServer::start_with(|c| c.drive.quota_bytes = 10 * MIB as u64).await;
    let alice = server.register("alice").await;
    let bytes = content(MIB, 3);
    let starts = (0..20).map(|i| {
        let (client, bytes) = (alice.client.clone(), bytes.clone());
        async move { create_upload(&client, "", &format!("f{i}"), &bytes, None).await }
    });
    let results = futures::future::join_all(starts).await;
    let accepted: Vec<&Upload> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(accepted.len(), 10, "exactly as many as fit");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(reason(refused), "QUOTA_EXCEEDED");
    }
    let usage = quota(&alice.client).await;
    assert_eq!(usage.reserved_bytes, 10 * MIB as u64);
    assert_eq!(usage.total_bytes, 10 * MIB as u64);
    alice
        .client
        .drive()
        .abort_upload(AbortUploadRequest {
            upload_id: accepted[0].upload_id.clone(),
        })
        .await
        .expect("abort");
    assert_eq!(quota(&alice.client).await.reserved_bytes, 9 * MIB as u64);
    server.shutdown().await;
}

/// Names that could escape a folder or fool a reader are refused; taken names are
/// numbered for uploads and folders, refused for renames; a folder cannot move into
/// itself.
#[tokio::test]
async fn names_are_checked_and_folders_keep_their_shape() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    for bad in [
        "../../etc/passwd",
        "a/b",
        "..",
        "evil\u{202E}gpj.exe",
        "\u{0}",
    ] {
        let status = create_upload(&alice.client, "", bad, b"x", None)
            .await
            .expect_err("a bad name");
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(violated_fields(&status), ["name"], "{bad:?}");
    }
    let long = "n".repeat(256);
    let status = create_upload(&alice.client, "", &long, b"x", None)
        .await
        .expect_err("too long");
    assert_eq!(violated_fields(&status), ["name"]);

    let docs = folder(&alice.client, "", "Docs").await;
    let again = folder(&alice.client, "", "Docs").await;
    assert_eq!(again.name, "Docs (2)");
    let first = upload(&alice.client, &docs.file_id, "notes.txt", b"one").await;
    let second = upload(&alice.client, &docs.file_id, "notes.txt", b"two").await;
    assert_eq!(second.name, "notes (2).txt");
    assert_eq!(first.parent_id, docs.file_id);
    let names: Vec<String> = list(&alice.client, &docs.file_id, false)
        .await
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["notes (2).txt", "notes.txt"]);

    let rename = |file: &File, name: &str, parent: Option<&str>| {
        let mut moved = file.clone();
        moved.name = name.into();
        let mut paths = vec!["name".to_owned()];
        if let Some(parent) = parent {
            moved.parent_id = parent.into();
            paths.push("parent_id".into());
        }
        let client = alice.client.clone();
        async move {
            client
                .drive()
                .update_file(UpdateFileRequest {
                    file: Some(moved),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await
        }
    };
    let taken = rename(&second, "notes.txt", None).await;
    assert_eq!(
        reason(&assert_code(taken, Code::AlreadyExists)),
        "NAME_TAKEN"
    );
    let inner = folder(&alice.client, &docs.file_id, "Inner").await;
    let cycle = rename(&docs, "Docs", Some(&inner.file_id)).await;
    assert_eq!(
        reason(&assert_code(cycle, Code::FailedPrecondition)),
        "FOLDER_CYCLE"
    );
    let moved = rename(&first, "moved.txt", Some(""))
        .await
        .expect("move to the top")
        .into_inner()
        .file
        .expect("file");
    assert_eq!(
        (moved.parent_id.as_str(), moved.name.as_str()),
        ("", "moved.txt")
    );
    server.shutdown().await;
}

/// The trash: a folder goes with everything in it, comes back whole, and emptying it
/// frees the bytes and the quota.
#[tokio::test]
async fn the_trash_keeps_then_frees() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let photos = folder(&alice.client, "", "Photos").await;
    let a = upload(&alice.client, &photos.file_id, "a.jpg", &content(1000, 1)).await;
    upload(&alice.client, &photos.file_id, "b.jpg", &content(2000, 2)).await;
    let trash = |id: &str| {
        let (client, file_id) = (alice.client.clone(), id.to_owned());
        async move {
            client
                .drive()
                .delete_file(DeleteFileRequest { file_id })
                .await
        }
    };
    trash(&photos.file_id).await.expect("trash the folder");
    assert!(list(&alice.client, "", false).await.is_empty());
    let trashed = list(&alice.client, "", true).await;
    assert_eq!(trashed.len(), 1, "the folder, not what it holds");
    let listed = alice
        .client
        .drive()
        .list_files(ListFilesRequest {
            parent_id: photos.file_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(listed, Code::NotFound);
    // Trashed files still count.
    assert_eq!(quota(&alice.client).await.used_bytes, 3000);
    alice
        .client
        .drive()
        .restore_file(RestoreFileRequest {
            file_id: photos.file_id.clone(),
        })
        .await
        .expect("restore");
    assert_eq!(list(&alice.client, &photos.file_id, false).await.len(), 2);
    trash(&a.file_id).await.expect("trash a file");
    let emptied = alice
        .client
        .drive()
        .empty_trash(EmptyTrashRequest {})
        .await
        .expect("empty")
        .into_inner();
    assert_eq!((emptied.deleted_count, emptied.freed_bytes), (1, 1000));
    assert_eq!(quota(&alice.client).await.used_bytes, 2000);
    let gone = alice
        .client
        .drive()
        .get_file(GetFileRequest {
            file_id: a.file_id.clone(),
        })
        .await;
    assert_code(gone, Code::NotFound);
    server.shutdown().await;
}

/// Someone else's files, folders and uploads do not exist for you.
#[tokio::test]
async fn another_users_drive_is_invisible() {
    let server = TestServer::start().await;
    let (alice, mallory) = server.pair().await;
    let private = folder(&alice.client, "", "Private").await;
    let file = upload(&alice.client, &private.file_id, "secret.txt", b"secret").await;
    let pending = create_upload(&alice.client, "", "later.bin", &content(10, 1), None)
        .await
        .expect("create");
    let drive = mallory.client.drive();
    let get = drive
        .clone()
        .get_file(GetFileRequest {
            file_id: file.file_id.clone(),
        })
        .await;
    assert_code(get, Code::NotFound);
    let read = drive
        .clone()
        .download_file(DownloadFileRequest {
            file_id: file.file_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(read, Code::NotFound);
    let into = create_upload(&mallory.client, &private.file_id, "planted.txt", b"x", None).await;
    assert_code(into, Code::NotFound);
    let listed = drive
        .clone()
        .list_files(ListFilesRequest {
            parent_id: private.file_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(listed, Code::NotFound);
    let sneak = chunk(&mallory.client, &pending, &content(10, 1), 0).await;
    assert_code(sneak, Code::NotFound);
    let aborted = drive
        .clone()
        .abort_upload(AbortUploadRequest {
            upload_id: pending.upload_id.clone(),
        })
        .await;
    assert_code(aborted, Code::NotFound);
    let trashed = drive
        .clone()
        .delete_file(DeleteFileRequest {
            file_id: file.file_id.clone(),
        })
        .await;
    assert_code(trashed, Code::NotFound);
    assert_eq!(
        download(&alice.client, &file.file_id, 0, 0).await,
        b"secret"
    );
    server.shutdown().await;
}

/// An upload abandoned past its lifetime is removed by the expiry job: its reservation
/// and its stored chunks go with it.
#[tokio::test]
async fn abandoned_uploads_expire_and_release_their_reservation() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = content(3 * MIB, 9);
    let upload = create_upload(&alice.client, "", "half.bin", &bytes, None)
        .await
        .expect("create");
    chunk(&alice.client, &upload, &bytes, 0)
        .await
        .expect("chunk");
    assert_eq!(
        quota(&alice.client).await.reserved_bytes,
        bytes.len() as u64
    );
    // The expiry job as a node runs it, a day later (the server's own runs once a minute).
    let config = server.config();
    let blobs =
        secureconnect_server::blobs::from_config(&config.blobs, &config.data_dir).expect("blobs");
    // The chunk is kept in place on local files, as a blob of its own in S3.
    let kept = [
        format!("staged/{}", upload.upload_id),
        format!("uploads/{}/{:020}", upload.upload_id, 0),
    ];
    let stored = || async {
        let mut found = 0;
        for key in &kept {
            found += usize::from(blobs.head(key).await.expect("head").is_some());
        }
        found
    };
    assert_eq!(stored().await, 1, "the chunk is stored");
    let drive = secureconnect_server::drive::Drive::new(
        server.open_store().await,
        blobs.clone(),
        std::sync::Arc::new(secureconnect_server::ratelimit::LocalRateLimiter::default()),
        config.drive.clone(),
        config.limits.max_request_bytes,
        std::sync::Arc::new(
            secureconnect_server::auth::TokenAuthority::load_or_create(
                &config.root_key_path(),
                std::time::Duration::from_secs(60),
            )
            .expect("signing key"),
        ),
    );
    let now = chrono::Utc::now();
    assert_eq!(drive.expire_uploads(now).await.expect("not yet"), 0);
    let later = now + chrono::Duration::days(2);
    assert_eq!(drive.expire_uploads(later).await.expect("expire"), 1);
    assert_eq!(drive.expire_uploads(later).await.expect("once"), 0);
    assert_eq!(quota(&alice.client).await.reserved_bytes, 0);
    let gone = chunk(&alice.client, &upload, &bytes, 0).await;
    assert_code(gone, Code::NotFound);
    assert_eq!(stored().await, 0, "the stored chunk is deleted");
    server.shutdown().await;
}

/// A server killed in the middle of an upload: after the restart the upload stands
/// where its last acknowledged chunk left it, no file exists yet, and it completes.
#[tokio::test]
async fn a_crash_mid_upload_leaves_nothing_half_committed() {
    let mut server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = content(9 * MIB, 5);
    let upload = create_upload(&alice.client, "", "big.bin", &bytes, None)
        .await
        .expect("create");
    let received = chunk(&alice.client, &upload, &bytes, 0)
        .await
        .expect("chunk") as usize;
    server.crash_and_restart().await;
    assert!(
        list(&alice.client, "", false).await.is_empty(),
        "no file yet"
    );
    let standing = alice
        .client
        .drive()
        .get_upload(GetUploadRequest {
            upload_id: upload.upload_id.clone(),
        })
        .await
        .expect("the upload survives")
        .into_inner()
        .upload
        .expect("upload");
    assert_eq!(standing.received_bytes as usize, received);
    let mut offset = received;
    while offset < bytes.len() {
        offset = chunk(&alice.client, &upload, &bytes, offset)
            .await
            .expect("chunk") as usize;
    }
    let file = complete(&alice.client, &upload).await.expect("complete");
    assert_eq!(file.sha256, sha256_hex(&bytes));
    assert!(download(&alice.client, &file.file_id, 0, 0).await == bytes);
    server.shutdown().await;
}

pub(crate) async fn share(
    client: &Client,
    file_id: &str,
    grantee: share_file_request::Grantee,
) -> Result<Share, tonic::Status> {
    client
        .drive()
        .share_file(ShareFileRequest {
            file_id: file_id.into(),
            grantee: Some(grantee),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().share.expect("share"))
}

pub(crate) async fn readable(client: &Client, file_id: &str) -> bool {
    match client
        .drive()
        .get_file(GetFileRequest {
            file_id: file_id.into(),
        })
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("get file: {status:?}"),
    }
}

/// A folder shared with a user: they read everything in it (listing, downloading), see it
/// among what was shared with them, change nothing, and lose it when the share is taken
/// back or the folder goes to the trash.
#[tokio::test]
async fn a_shared_folder_is_readable_and_nothing_more() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let trip = folder(&alice.client, "", "Trip").await;
    let day1 = folder(&alice.client, &trip.file_id, "Day 1").await;
    let photo = upload(
        &alice.client,
        &day1.file_id,
        "beach.jpg",
        &content(70_000, 4),
    )
    .await;
    assert!(!readable(&bob.client, &photo.file_id).await);
    let granted = share(
        &alice.client,
        &trip.file_id,
        share_file_request::Grantee::UserId(bob.id.clone()),
    )
    .await
    .expect("share");
    let again = share(
        &alice.client,
        &trip.file_id,
        share_file_request::Grantee::UserId(bob.id.clone()),
    )
    .await
    .expect("share again");
    assert_eq!(
        again.share_id, granted.share_id,
        "sharing twice changes nothing"
    );
    // Everything below the shared folder is readable.
    assert!(readable(&bob.client, &photo.file_id).await);
    let inside = list(&bob.client, &day1.file_id, false).await;
    assert_eq!(inside.len(), 1);
    assert_eq!(
        download(&bob.client, &photo.file_id, 0, 0).await,
        content(70_000, 4)
    );
    let shared = bob
        .client
        .drive()
        .list_shared_with_me(ListSharedWithMeRequest::default())
        .await
        .expect("shared with me")
        .into_inner();
    let names: Vec<&str> = shared.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Trip"]);
    // Reading is all: bob changes nothing of alice's.
    let trashed = bob
        .client
        .drive()
        .delete_file(DeleteFileRequest {
            file_id: photo.file_id.clone(),
        })
        .await;
    assert_code(trashed, Code::NotFound);
    let planted = create_upload(&bob.client, &day1.file_id, "planted.txt", b"x", None).await;
    assert_code(planted, Code::NotFound);
    let reshared = share(
        &bob.client,
        &photo.file_id,
        share_file_request::Grantee::UserId(alice.id.clone()),
    )
    .await;
    assert_code(reshared, Code::NotFound);
    // In the trash: shared with nobody; restored: shared again.
    let trash = |id: &str| {
        let (client, file_id) = (alice.client.clone(), id.to_owned());
        async move {
            client
                .drive()
                .delete_file(DeleteFileRequest { file_id })
                .await
        }
    };
    trash(&trip.file_id).await.expect("trash");
    assert!(!readable(&bob.client, &photo.file_id).await);
    alice
        .client
        .drive()
        .restore_file(RestoreFileRequest {
            file_id: trip.file_id.clone(),
        })
        .await
        .expect("restore");
    assert!(readable(&bob.client, &photo.file_id).await);
    // Taken back: gone for bob.
    alice
        .client
        .drive()
        .unshare_file(UnshareFileRequest {
            share_id: granted.share_id.clone(),
        })
        .await
        .expect("unshare");
    assert!(!readable(&bob.client, &photo.file_id).await);
    let shares = alice
        .client
        .drive()
        .list_shares(ListSharesRequest {
            file_id: trip.file_id.clone(),
        })
        .await
        .expect("shares")
        .into_inner()
        .shares;
    assert!(shares.is_empty());
    server.shutdown().await;
}

/// A file shared with a conversation: its members read it for as long as they are
/// members; nobody else ever does.
#[tokio::test]
async fn a_file_shared_with_a_conversation_follows_its_membership() {
    use secureconnect_sdk::proto::conversation::v1::RemoveMemberRequest;

    let server = TestServer::start().await;
    let (alice, [bob, carol], group) = server.group(3).await.into_parts();
    let outsider = server.register("mallory").await;
    let report = upload(&alice.client, "", "report.pdf", b"%PDF-1.7 quarterly").await;
    assert_eq!(
        report.content_type, "application/pdf",
        "recognised from the bytes"
    );
    share(
        &alice.client,
        &report.file_id,
        share_file_request::Grantee::ConversationId(group.conversation_id.clone()),
    )
    .await
    .expect("share with the group");
    assert!(readable(&bob.client, &report.file_id).await);
    assert!(readable(&carol.client, &report.file_id).await);
    assert!(!readable(&outsider.client, &report.file_id).await);
    let read = outsider
        .client
        .drive()
        .download_file(DownloadFileRequest {
            file_id: report.file_id.clone(),
            ..Default::default()
        })
        .await;
    assert_code(read, Code::NotFound);
    alice
        .client
        .conversations()
        .remove_member(RemoveMemberRequest {
            conversation_id: group.conversation_id.clone(),
            user_id: carol.id.clone(),
        })
        .await
        .expect("remove carol");
    assert!(
        !readable(&carol.client, &report.file_id).await,
        "no longer a member"
    );
    assert!(readable(&bob.client, &report.file_id).await);
    // Only into conversations one is in, and only with others.
    let stranger_group = outsider.group_with("theirs", &[&bob]).await;
    let foreign = share(
        &alice.client,
        &report.file_id,
        share_file_request::Grantee::ConversationId(stranger_group.conversation_id),
    )
    .await;
    assert_code(foreign, Code::NotFound);
    let herself = share(
        &alice.client,
        &report.file_id,
        share_file_request::Grantee::UserId(alice.id.clone()),
    )
    .await;
    assert_code(herself, Code::NotFound);
    let nobody = alice
        .client
        .drive()
        .share_file(ShareFileRequest {
            file_id: report.file_id.clone(),
            grantee: None,
            ..Default::default()
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(nobody, Code::InvalidArgument)),
        ["grantee"]
    );
    server.shutdown().await;
}

/// With S3, a reader gets a short-lived URL that a plain HTTP client (no account, no
/// gRPC) downloads the bytes from, ranges included; with local files there is none.
#[tokio::test]
async fn a_direct_download_url_works_with_plain_http_on_s3() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let bytes = content(3 * MIB + 5, 8);
    let file = upload(&alice.client, "", "clip.mp4", &bytes).await;
    share(
        &alice.client,
        &file.file_id,
        share_file_request::Grantee::UserId(bob.id.clone()),
    )
    .await
    .expect("share");
    let asked = bob
        .client
        .drive()
        .get_download_url(GetDownloadUrlRequest {
            file_id: file.file_id.clone(),
        })
        .await;
    if server.config().blobs.s3_bucket.is_none() {
        let status = assert_code(asked, Code::FailedPrecondition);
        assert_eq!(reason(&status), "DIRECT_URL_UNAVAILABLE");
        server.shutdown().await;
        return;
    }
    let url = asked.expect("url").into_inner().url;
    let http = reqwest::Client::new();
    let whole = http.get(&url).send().await.expect("GET");
    assert!(whole.status().is_success(), "{}", whole.status());
    assert!(whole.bytes().await.expect("body") == bytes);
    let part = http
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("ranged GET");
    assert_eq!(part.status().as_u16(), 206);
    assert!(part.bytes().await.expect("body") == bytes[100..200]);
    // A signature is not a key to anything else: another object under the same URL fails.
    let forged = url.replacen(&file.file_id, &uuid::Uuid::new_v4().to_string(), 1);
    let refused = http.get(&forged).send().await.expect("forged GET");
    assert!(!refused.status().is_success(), "{}", refused.status());
    let outsider = server.register("mallory").await;
    let denied = outsider
        .client
        .drive()
        .get_download_url(GetDownloadUrlRequest {
            file_id: file.file_id.clone(),
        })
        .await;
    assert_code(denied, Code::NotFound);
    server.shutdown().await;
}

async fn create_link(
    client: &Client,
    file_id: &str,
    expires_in: std::time::Duration,
    password: &str,
    max_downloads: u32,
) -> ShareLink {
    client
        .drive()
        .create_share_link(CreateShareLinkRequest {
            file_id: file_id.into(),
            expire_time: Some((std::time::SystemTime::now() + expires_in).into()),
            password: password.into(),
            max_downloads,
        })
        .await
        .expect("create link")
        .into_inner()
        .link
        .expect("link")
}

/// A share link works for anyone holding it — over gRPC with no account, and as a plain
/// HTTP GET (password as Basic auth, ranges, the file's name) — and stops at its download
/// limit, when revoked, when it expires and when its file goes to the trash. Its token is
/// no access token, nor an access token a link.
#[tokio::test]
async fn share_links_work_without_an_account_and_stop_when_they_should() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = content(2 * MIB + 77, 6);
    let file = upload(&alice.client, "", "Quartalsbericht Q3 (final).pdf", &bytes).await;
    let hour = std::time::Duration::from_secs(3600);
    let link = create_link(&alice.client, &file.file_id, hour, "open sesame", 2).await;
    assert_eq!(link.path, format!("/s/{}", link.token));
    assert!(link.password_protected);
    let anonymous = server.client().await;
    let get = |token: &str, password: &str| {
        let (client, token, password) = (anonymous.clone(), token.to_owned(), password.to_owned());
        async move {
            client
                .drive()
                .get_share_link_file(GetShareLinkFileRequest { token, password })
                .await
        }
    };
    let locked = get(&link.token, "").await;
    assert_eq!(
        reason(&assert_code(locked, Code::PermissionDenied)),
        "LINK_PASSWORD"
    );
    let wrong = get(&link.token, "open says me").await;
    assert_code(wrong, Code::PermissionDenied);
    let found = get(&link.token, "open sesame")
        .await
        .expect("file")
        .into_inner();
    assert_eq!(found.file.expect("file").name, file.name);

    // Plain HTTP, as a browser or curl.
    let http = reqwest::Client::new();
    let url = format!("{}{}", server.endpoint, link.path);
    let challenged = http.get(&url).send().await.expect("GET");
    assert_eq!(challenged.status().as_u16(), 401);
    assert!(challenged.headers().contains_key("www-authenticate"));
    let whole = http
        .get(&url)
        .basic_auth("anyone", Some("open sesame"))
        .send()
        .await
        .expect("GET");
    assert_eq!(whole.status().as_u16(), 200);
    let disposition = whole.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        disposition.contains("filename*=UTF-8''Quartalsbericht%20Q3%20%28final%29.pdf"),
        "{disposition}"
    );
    assert!(
        whole.bytes().await.expect("body") == bytes,
        "download 1 of 2"
    );
    let ranged = http
        .get(&url)
        .basic_auth("anyone", Some("open sesame"))
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .expect("ranged GET");
    assert_eq!(ranged.status().as_u16(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 1000-1999/{}", bytes.len()).as_str()
    );
    assert!(
        ranged.bytes().await.expect("body") == bytes[1000..2000],
        "a resume does not count"
    );
    let mut stream = anonymous
        .drive()
        .download_share_link(DownloadShareLinkRequest {
            token: link.token.clone(),
            password: "open sesame".into(),
            ..Default::default()
        })
        .await
        .expect("download 2 of 2")
        .into_inner();
    let mut got = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        got.extend_from_slice(&chunk.data);
    }
    assert!(got == bytes);
    let spent = http
        .get(&url)
        .basic_auth("anyone", Some("open sesame"))
        .send()
        .await
        .expect("GET");
    assert_eq!(spent.status().as_u16(), 410, "the limit is reached");
    let spent = get(&link.token, "open sesame").await;
    assert_eq!(
        reason(&assert_code(spent, Code::FailedPrecondition)),
        "LINK_EXHAUSTED"
    );

    // Revoked: gone at once. Listed links carry no token.
    let open = create_link(&alice.client, &file.file_id, hour, "", 0).await;
    assert_eq!(
        http.get(format!("{}{}", server.endpoint, open.path))
            .send()
            .await
            .expect("GET")
            .status()
            .as_u16(),
        200
    );
    let listed = alice
        .client
        .drive()
        .list_share_links(ListShareLinksRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .expect("links")
        .into_inner()
        .links;
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|l| l.token.is_empty() && l.path.is_empty())
    );
    assert_eq!(listed[0].downloads, 2);
    alice
        .client
        .drive()
        .revoke_share_link(RevokeShareLinkRequest {
            link_id: open.link_id.clone(),
        })
        .await
        .expect("revoke");
    assert_code(get(&open.token, "").await, Code::NotFound);
    assert_eq!(
        http.get(format!("{}{}", server.endpoint, open.path))
            .send()
            .await
            .expect("GET")
            .status()
            .as_u16(),
        404
    );

    // Tokens are not interchangeable, and a forged one is nothing.
    let other = create_link(&alice.client, &file.file_id, hour, "", 0).await;
    assert_code(get(&alice.tokens.access_token, "").await, Code::NotFound);
    let as_access = server.client().await;
    as_access.set_access_token(Some(other.token.clone()));
    let refused = as_access.drive().get_quota(GetQuotaRequest {}).await;
    assert_code(refused, Code::Unauthenticated);
    let mut forged = other.token.clone();
    let flipped = if forged.ends_with('A') { 'B' } else { 'A' };
    forged.pop();
    forged.push(flipped);
    assert_code(get(&forged, "").await, Code::NotFound);

    // Its file in the trash: the link leads nowhere.
    alice
        .client
        .drive()
        .delete_file(DeleteFileRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .expect("trash");
    assert_code(get(&other.token, "").await, Code::NotFound);

    // Expired: nowhere either.
    let fresh = upload(&alice.client, "", "brief.txt", b"short-lived").await;
    let brief = create_link(
        &alice.client,
        &fresh.file_id,
        std::time::Duration::from_secs(2),
        "",
        0,
    )
    .await;
    assert!(get(&brief.token, "").await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_code(get(&brief.token, "").await, Code::NotFound);
    server.shutdown().await;
}
