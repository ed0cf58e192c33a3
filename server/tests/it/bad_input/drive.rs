//! `DriveService`, as alice: malformed requests name their field, ids that name nothing
//! are `NOT_FOUND`, and nothing is created, reserved or stored by a bad request.

use secureconnect_sdk::proto::drive::v1::*;
use tonic::Code;

use super::{NOT_AN_ID, UNKNOWN_ID, invalid};
use crate::common::*;

/// The drive is as it started: no file, nothing used or reserved.
async fn assert_untouched(alice: &TestUser) {
    let drive = alice.client.drive();
    let files = drive
        .clone()
        .list_files(ListFilesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .files;
    assert!(files.is_empty(), "{files:?}");
    let quota = drive
        .clone()
        .get_quota(GetQuotaRequest {})
        .await
        .expect("quota")
        .into_inner();
    assert_eq!((quota.used_bytes, quota.reserved_bytes), (0, 0));
}

#[tokio::test]
async fn create_upload() {
    let server = TestServer::start_with(|c| c.drive.max_file_bytes = 1 << 20).await;
    let alice = server.register("alice").await;
    let drive = alice.client.drive();
    let request = |f: &dyn Fn(&mut CreateUploadRequest)| {
        let mut r = CreateUploadRequest {
            name: "ok.txt".into(),
            size: 10,
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let cases: Vec<(&str, CreateUploadRequest, &str)> = vec![
        ("no name", request(&|r| r.name.clear()), "name"),
        ("a path", request(&|r| r.name = "../x".into()), "name"),
        ("too big", request(&|r| r.size = (1 << 20) + 1), "size"),
        (
            "short hash",
            request(&|r| r.sha256 = "abc".into()),
            "sha256",
        ),
        ("not hex", request(&|r| r.sha256 = "z".repeat(64)), "sha256"),
        (
            "bad folder",
            request(&|r| r.parent_id = NOT_AN_ID.into()),
            "parent_id",
        ),
    ];
    for (what, r, field) in cases {
        invalid(what, drive.clone().create_upload(r).await, field);
    }
    let unknown = drive
        .clone()
        .create_upload(request(&|r| r.parent_id = UNKNOWN_ID.into()))
        .await;
    assert_code(unknown, Code::NotFound);
    assert_untouched(&alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn upload_chunk() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let drive = alice.client.drive();
    let upload = drive
        .clone()
        .create_upload(CreateUploadRequest {
            name: "ten.bin".into(),
            size: 10,
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .upload
        .expect("upload");
    let send = |offset: u64, data: Vec<u8>| UploadChunkRequest {
        upload_id: upload.upload_id.clone(),
        offset,
        data,
    };
    invalid(
        "empty",
        drive.clone().upload_chunk(send(0, vec![])).await,
        "data",
    );
    invalid(
        "past the size",
        drive.clone().upload_chunk(send(0, vec![1; 11])).await,
        "data",
    );
    let gap = drive.clone().upload_chunk(send(5, vec![1; 5])).await;
    assert_eq!(
        reason(&assert_code(gap, Code::FailedPrecondition)),
        "UPLOAD_OFFSET_MISMATCH"
    );
    let early = drive
        .clone()
        .complete_upload(CompleteUploadRequest {
            upload_id: upload.upload_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        reason(&assert_code(early, Code::FailedPrecondition)),
        "UPLOAD_INCOMPLETE"
    );
    let unknown = drive
        .clone()
        .upload_chunk(UploadChunkRequest {
            upload_id: UNKNOWN_ID.into(),
            offset: 0,
            data: vec![1],
        })
        .await;
    assert_code(unknown, Code::NotFound);
    invalid(
        "malformed upload",
        drive
            .clone()
            .upload_chunk(UploadChunkRequest {
                upload_id: NOT_AN_ID.into(),
                offset: 0,
                data: vec![1],
            })
            .await,
        "upload_id",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn files_and_folders() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let drive = alice.client.drive();
    invalid(
        "folder: no name",
        drive
            .clone()
            .create_folder(CreateFolderRequest::default())
            .await,
        "name",
    );
    invalid(
        "folder: control character",
        drive
            .clone()
            .create_folder(CreateFolderRequest {
                name: "a\u{7}b".into(),
                ..Default::default()
            })
            .await,
        "name",
    );
    for (id, code) in [
        (NOT_AN_ID, Code::InvalidArgument),
        (UNKNOWN_ID, Code::NotFound),
    ] {
        let file_id = id.to_owned();
        assert_code(
            drive
                .clone()
                .get_file(GetFileRequest {
                    file_id: file_id.clone(),
                })
                .await,
            code,
        );
        assert_code(
            drive
                .clone()
                .delete_file(DeleteFileRequest {
                    file_id: file_id.clone(),
                })
                .await,
            code,
        );
        assert_code(
            drive
                .clone()
                .restore_file(RestoreFileRequest {
                    file_id: file_id.clone(),
                })
                .await,
            code,
        );
        assert_code(
            drive
                .clone()
                .get_thumbnail(GetThumbnailRequest {
                    file_id: file_id.clone(),
                })
                .await,
            code,
        );
        let download = drive
            .clone()
            .download_file(DownloadFileRequest {
                file_id,
                ..Default::default()
            })
            .await;
        assert_code(download, code);
    }
    invalid(
        "list: page size",
        drive
            .clone()
            .list_files(ListFilesRequest {
                page_size: 201,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "list: page token",
        drive
            .clone()
            .list_files(ListFilesRequest {
                page_token: "junk".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    let no_mask = drive
        .clone()
        .update_file(UpdateFileRequest {
            file: Some(File {
                file_id: UNKNOWN_ID.into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await;
    invalid("update: no mask", no_mask, "update_mask");
    assert_untouched(&alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn create_share_link() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let drive = alice.client.drive();
    let folder = drive
        .clone()
        .create_folder(CreateFolderRequest {
            name: "Docs".into(),
            ..Default::default()
        })
        .await
        .expect("folder")
        .into_inner()
        .folder
        .expect("folder");
    let at = |secs: i64| {
        Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() + secs,
            nanos: 0,
        })
    };
    let request = |f: &dyn Fn(&mut CreateShareLinkRequest)| {
        let mut r = CreateShareLinkRequest {
            file_id: folder.file_id.clone(),
            expire_time: at(3600),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let cases: Vec<(&str, CreateShareLinkRequest, &str)> = vec![
        (
            "no expiry",
            request(&|r| r.expire_time = None),
            "expire_time",
        ),
        (
            "expired",
            request(&|r| r.expire_time = at(-10)),
            "expire_time",
        ),
        (
            "too far",
            request(&|r| r.expire_time = at(400 * 86_400)),
            "expire_time",
        ),
        (
            "short password",
            request(&|r| r.password = "1234567".into()),
            "password",
        ),
        (
            "bad file",
            request(&|r| r.file_id = NOT_AN_ID.into()),
            "file_id",
        ),
    ];
    for (what, r, field) in cases {
        invalid(what, drive.clone().create_share_link(r).await, field);
    }
    // A folder has no bytes to link to.
    assert_code(
        drive.clone().create_share_link(request(&|_| {})).await,
        Code::NotFound,
    );
    let bogus = drive
        .clone()
        .get_share_link_file(GetShareLinkFileRequest {
            token: "not-a-token".into(),
            ..Default::default()
        })
        .await;
    assert_code(bogus, Code::NotFound);
    invalid(
        "no token",
        drive
            .clone()
            .get_share_link_file(GetShareLinkFileRequest::default())
            .await,
        "token",
    );
    server.shutdown().await;
}
