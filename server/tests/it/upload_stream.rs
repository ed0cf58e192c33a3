//! `UploadFile`, the client-streaming upload of native clients: a stream that ends early
//! keeps what arrived, the next stream carries on from there, and the file completes
//! intact.

use secureconnect_sdk::{Client, proto::drive::v1::*};
use tonic::{Code, Status};

use crate::{
    common::*,
    drive::{content, create_upload, download, sha256_hex},
};

const MIB: usize = 1 << 20;

/// `bytes[from..to]` as `UploadFile` messages of 4 MiB, the first naming the upload.
fn messages(upload: &Upload, bytes: &[u8], from: usize, to: usize) -> Vec<UploadFileRequest> {
    (from..to)
        .step_by(4 * MIB)
        .enumerate()
        .map(|(i, at)| UploadFileRequest {
            upload_id: if i == 0 {
                upload.upload_id.clone()
            } else {
                String::new()
            },
            offset: if i == 0 { from as u64 } else { 0 },
            data: bytes[at..(at + 4 * MIB).min(to)].to_vec(),
        })
        .collect()
}

async fn send(client: &Client, messages: Vec<UploadFileRequest>) -> Result<File, Status> {
    client
        .drive()
        .upload_file(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner().file.expect("file"))
}

async fn received(client: &Client, upload: &Upload) -> u64 {
    client
        .drive()
        .get_upload(GetUploadRequest {
            upload_id: upload.upload_id.clone(),
        })
        .await
        .expect("get upload")
        .into_inner()
        .upload
        .expect("upload")
        .received_bytes
}

/// A 40 MiB upload in three streams: the first two end early (the upload is then
/// incomplete, with their bytes kept: 16 MiB parts and what was left over), the third
/// finishes it.
#[tokio::test]
async fn a_streamed_upload_that_ends_early_carries_on_where_it_stopped() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = content(40 * MIB + 7, 5);
    let upload = create_upload(&alice.client, "", "backup.tar", &bytes, None)
        .await
        .expect("create");

    let early = send(&alice.client, messages(&upload, &bytes, 0, 10 * MIB)).await;
    assert_eq!(
        reason(&assert_code(early, Code::FailedPrecondition)),
        "UPLOAD_INCOMPLETE"
    );
    assert_eq!(received(&alice.client, &upload).await, 10 * MIB as u64);

    let second = send(&alice.client, messages(&upload, &bytes, 10 * MIB, 30 * MIB)).await;
    assert_code(second, Code::FailedPrecondition);
    let wanted = 30 * MIB as u64;
    assert_eq!(received(&alice.client, &upload).await, wanted);

    let wrong_offset = send(&alice.client, messages(&upload, &bytes, 0, MIB)).await;
    assert_eq!(
        reason(&assert_code(wrong_offset, Code::FailedPrecondition)),
        "UPLOAD_OFFSET_MISMATCH"
    );
    let file = send(
        &alice.client,
        messages(&upload, &bytes, wanted as usize, bytes.len()),
    )
    .await
    .expect("the last stream completes the upload");
    assert_eq!(file.sha256, sha256_hex(&bytes));
    assert!(download(&alice.client, &file.file_id, 0, 0).await == bytes);
    server.shutdown().await;
}

/// Bytes past the declared size are refused, and so are other users' uploads.
#[tokio::test]
async fn a_streamed_upload_keeps_to_its_size_and_its_owner() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let bytes = content(MIB, 6);
    let upload = create_upload(&alice.client, "", "a.bin", &bytes[..MIB / 2], None)
        .await
        .expect("create");
    let too_long = send(&alice.client, messages(&upload, &bytes, 0, MIB)).await;
    assert_eq!(
        violated_fields(&assert_code(too_long, Code::InvalidArgument)),
        ["data"]
    );
    let not_his = send(&bob.client, messages(&upload, &bytes, 0, MIB / 2)).await;
    assert_code(not_his, Code::NotFound);
    let empty = send(&alice.client, Vec::new()).await;
    assert_code(empty, Code::InvalidArgument);
    server.shutdown().await;
}
