//! Editors: a share's role decides who may replace a file's contents. The owner and the
//! editors of a share (on the file or a folder above it) may; viewers are told they may
//! not; everyone else finds nothing. The file keeps its id and name, the owner pays the
//! quota, and taking the role back stops an upload already under way.

use secureconnect_sdk::{Client, proto::drive::v1::*};
use tonic::Code;

use crate::{
    common::*,
    drive::{chunk, complete, content, download, folder, sha256_hex, share, upload},
};

/// Starts an upload replacing the contents of `file_id` with `bytes`.
async fn replacement(
    client: &Client,
    file_id: &str,
    bytes: &[u8],
) -> Result<Upload, tonic::Status> {
    client
        .drive()
        .create_upload(CreateUploadRequest {
            replace_file_id: file_id.into(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().upload.expect("upload"))
}

async fn send_all(client: &Client, upload: &Upload, bytes: &[u8]) {
    let mut offset = 0;
    while offset < bytes.len() {
        offset = chunk(client, upload, bytes, offset).await.expect("chunk") as usize;
    }
}

async fn share_as(
    client: &Client,
    file_id: &str,
    user_id: &str,
    role: ShareRole,
) -> Result<Share, tonic::Status> {
    client
        .drive()
        .share_file(ShareFileRequest {
            file_id: file_id.into(),
            grantee: Some(share_file_request::Grantee::UserId(user_id.into())),
            role: role.into(),
        })
        .await
        .map(|r| r.into_inner().share.expect("share"))
}

async fn usage(client: &Client) -> (u64, u64) {
    let quota = client
        .drive()
        .get_quota(GetQuotaRequest {})
        .await
        .expect("quota")
        .into_inner();
    (quota.used_bytes, quota.reserved_bytes)
}

#[tokio::test]
async fn editors_replace_contents_viewers_may_not_and_strangers_see_nothing() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    let docs = folder(&alice.client, "", "Docs").await;
    let first = content(100_000, 1);
    let report = upload(&alice.client, &docs.file_id, "report.txt", &first).await;
    let editor = share_as(&alice.client, &docs.file_id, &bob.id, ShareRole::Editor)
        .await
        .expect("share with an editor");
    assert_eq!(editor.role(), ShareRole::Editor);
    // Unspecified is a viewer.
    let viewer = share_as(
        &alice.client,
        &docs.file_id,
        &carol.id,
        ShareRole::Unspecified,
    )
    .await
    .expect("share with a viewer");
    assert_eq!(viewer.role(), ShareRole::Viewer);

    // Bob, an editor of the folder above, replaces the file's contents; the quota
    // reserved and then used is Alice's.
    let second = content(250_000, 2);
    let started = replacement(&bob.client, &report.file_id, &second)
        .await
        .expect("an editor replaces");
    assert_eq!(started.replace_file_id, report.file_id);
    assert_eq!(usage(&alice.client).await, (100_000, 250_000));
    assert_eq!(usage(&bob.client).await, (0, 0));
    // The upload is Bob's to send: Alice cannot touch it.
    assert_code(
        chunk(&alice.client, &started, &second, 0).await,
        Code::NotFound,
    );
    send_all(&bob.client, &started, &second).await;
    let replaced = complete(&bob.client, &started).await.expect("complete");
    assert_eq!(replaced.file_id, report.file_id, "the same file");
    assert_eq!(replaced.name, "report.txt");
    assert_eq!(replaced.parent_id, docs.file_id);
    assert_eq!(replaced.size, second.len() as u64);
    assert_eq!(replaced.sha256, sha256_hex(&second));
    assert_eq!(download(&alice.client, &report.file_id, 0, 0).await, second);
    assert_eq!(download(&carol.client, &report.file_id, 0, 0).await, second);
    assert_eq!(usage(&alice.client).await, (250_000, 0));
    assert_eq!(usage(&bob.client).await, (0, 0));

    // Carol reads but may not write; Dave does not even see the file.
    let refused = assert_code(
        replacement(&carol.client, &report.file_id, &first).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&refused), "INSUFFICIENT_ROLE");
    assert_code(
        replacement(&dave.client, &report.file_id, &first).await,
        Code::NotFound,
    );
    // A folder has no contents to replace.
    assert_code(
        replacement(&bob.client, &docs.file_id, &first).await,
        Code::NotFound,
    );

    // Alice turns Bob into a viewer (sharing again sets the role of the same share):
    // the upload he had started can no longer complete, and he cannot start another.
    let under_way = replacement(&bob.client, &report.file_id, &first)
        .await
        .expect("still an editor");
    send_all(&bob.client, &under_way, &first).await;
    let demoted = share_as(&alice.client, &docs.file_id, &bob.id, ShareRole::Viewer)
        .await
        .expect("demote");
    assert_eq!(demoted.share_id, editor.share_id);
    assert_eq!(demoted.role(), ShareRole::Viewer);
    let stopped = assert_code(
        complete(&bob.client, &under_way).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&stopped), "INSUFFICIENT_ROLE");
    assert_code(
        replacement(&bob.client, &report.file_id, &first).await,
        Code::PermissionDenied,
    );
    assert_eq!(download(&alice.client, &report.file_id, 0, 0).await, second);

    // The shares list the roles; a role this server does not know is refused.
    let shares = alice
        .client
        .drive()
        .list_shares(ListSharesRequest {
            file_id: docs.file_id.clone(),
        })
        .await
        .expect("shares")
        .into_inner()
        .shares;
    let roles: Vec<ShareRole> = shares.iter().map(|s| s.role()).collect();
    assert_eq!(roles, [ShareRole::Viewer, ShareRole::Viewer]);
    let unknown = alice
        .client
        .drive()
        .share_file(ShareFileRequest {
            file_id: docs.file_id.clone(),
            grantee: Some(share_file_request::Grantee::UserId(dave.id.clone())),
            role: 7,
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(unknown, Code::InvalidArgument)),
        ["role"]
    );
    server.shutdown().await;
}

/// The owner replaces their own file's contents: the old bytes are deleted, the quota
/// follows the new size, wrong bytes change nothing, and a file in the trash cannot be
/// replaced.
#[tokio::test]
async fn owners_replace_their_own_files_and_the_old_bytes_go() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let notes = upload(&alice.client, "", "notes.bin", &content(300_000, 3)).await;
    // Shared with Bob directly, as an editor: he may replace it too.
    share(
        &alice.client,
        &notes.file_id,
        share_file_request::Grantee::UserId(bob.id.clone()),
    )
    .await
    .expect("share");
    assert_code(
        replacement(&bob.client, &notes.file_id, &content(10, 4)).await,
        Code::PermissionDenied,
    );
    // Through the SDK's helper, from a file on disk.
    let smaller = content(50_000, 5);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("notes-v2.bin");
    std::fs::write(&path, &smaller).expect("write");
    let mut reported = 0;
    let replaced = alice
        .client
        .replace_contents(&notes.file_id, &path, |sent, _| reported = sent)
        .await
        .expect("the owner replaces");
    assert_eq!(reported, 50_000);
    assert_eq!(replaced.name, "notes.bin", "the name stays");
    assert_eq!(replaced.file_id, notes.file_id);
    assert_eq!(replaced.size, 50_000);
    assert_eq!(usage(&alice.client).await, (50_000, 0));
    assert_eq!(download(&bob.client, &notes.file_id, 0, 0).await, smaller);
    let config = server.config();
    if config.blobs.s3_bucket.is_none() {
        let blobs = std::fs::read_dir(config.data_dir.join("blobs/files"))
            .expect("blobs")
            .count();
        assert_eq!(blobs, 1, "the replaced bytes are deleted");
    }
    // A declared hash the bytes do not have leaves the file as it was.
    let wrong = alice
        .client
        .drive()
        .create_upload(CreateUploadRequest {
            replace_file_id: notes.file_id.clone(),
            size: 10,
            sha256: sha256_hex(b"something else"),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .upload
        .expect("upload");
    send_all(&alice.client, &wrong, &content(10, 6)).await;
    assert_code(complete(&alice.client, &wrong).await, Code::InvalidArgument);
    assert_eq!(download(&alice.client, &notes.file_id, 0, 0).await, smaller);
    assert_eq!(usage(&alice.client).await, (50_000, 0));
    // In the trash: nothing to replace until it is restored.
    alice
        .client
        .drive()
        .delete_file(DeleteFileRequest {
            file_id: notes.file_id.clone(),
        })
        .await
        .expect("trash");
    assert_code(
        replacement(&alice.client, &notes.file_id, &smaller).await,
        Code::NotFound,
    );
    server.shutdown().await;
}
