//! Direct uploads: with S3 (SeaweedFS on the services pass), `CreateUpload` hands out
//! presigned part URLs, the bytes go to the store with plain HTTP PUTs, and completing
//! checks them as for any upload. With local files, asking for one gives an ordinary
//! upload.

use secureconnect_sdk::{Client, proto::drive::v1::*};
use tonic::Code;

use crate::{
    common::*,
    drive::{content, download, sha256_hex},
};

const MIB: usize = 1 << 20;

async fn create_direct(client: &Client, bytes: &[u8], sha256: String) -> (Upload, Vec<DirectPart>) {
    let created = client
        .drive()
        .create_upload(CreateUploadRequest {
            name: "film.mkv".into(),
            size: bytes.len() as u64,
            sha256,
            direct: true,
            ..Default::default()
        })
        .await
        .expect("create upload")
        .into_inner();
    (created.upload.expect("upload"), created.direct_parts)
}

/// PUTs a part's bytes to its URL; the store's ETag.
async fn put_part(http: &reqwest::Client, part: &DirectPart, bytes: &[u8]) -> String {
    let start = part.offset as usize;
    let body = bytes[start..start + part.size as usize].to_vec();
    let answer = http.put(&part.url).body(body).send().await.expect("PUT");
    assert!(answer.status().is_success(), "{}", answer.status());
    answer
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .expect("ascii")
        .to_owned()
}

async fn complete(
    client: &Client,
    upload: &Upload,
    parts: Vec<CompletedPart>,
) -> Result<File, tonic::Status> {
    client
        .drive()
        .complete_upload(CompleteUploadRequest {
            upload_id: upload.upload_id.clone(),
            parts,
        })
        .await
        .map(|r| r.into_inner().file.expect("file"))
}

async fn quota(client: &Client) -> (u64, u64) {
    let q = client
        .drive()
        .get_quota(GetQuotaRequest {})
        .await
        .expect("quota")
        .into_inner();
    (q.used_bytes, q.reserved_bytes)
}

/// Two parts PUT out of order with plain HTTP, a wrong-length PUT refused by the signed
/// URL, `UploadChunk` refused, an incomplete part list refused; then the upload completes
/// with the right SHA-256 and reads back byte for byte.
#[tokio::test]
async fn a_direct_upload_goes_straight_to_s3_and_completes_checked() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bytes = content(20 * MIB + 1234, 9);
    let (upload, parts) = create_direct(&alice.client, &bytes, sha256_hex(&bytes)).await;
    if server.config().blobs.s3_bucket.is_none() {
        assert_eq!(
            upload.direct_part_size, 0,
            "local files: an ordinary upload"
        );
        assert!(parts.is_empty());
        let with_parts = complete(
            &alice.client,
            &upload,
            vec![CompletedPart {
                part_number: 1,
                etag: "\"x\"".into(),
            }],
        )
        .await;
        assert_eq!(
            violated_fields(&assert_code(with_parts, Code::InvalidArgument)),
            ["parts"]
        );
        server.shutdown().await;
        return;
    }
    assert_eq!(upload.direct_part_size, 16 * MIB as u64);
    let layout: Vec<_> = parts
        .iter()
        .map(|p| (p.part_number, p.offset, p.size))
        .collect();
    assert_eq!(
        layout,
        [
            (1, 0, 16 * MIB as u64),
            (2, 16 * MIB as u64, 4 * MIB as u64 + 1234)
        ]
    );
    let chunk = alice
        .client
        .drive()
        .upload_chunk(UploadChunkRequest {
            upload_id: upload.upload_id.clone(),
            offset: 0,
            data: bytes[..10].to_vec(),
        })
        .await;
    assert_eq!(
        reason(&assert_code(chunk, Code::FailedPrecondition)),
        "DIRECT_UPLOAD"
    );

    let http = reqwest::Client::new();
    let short = http
        .put(&parts[0].url)
        .body(bytes[..1000].to_vec())
        .send()
        .await
        .expect("PUT");
    assert!(
        !short.status().is_success(),
        "the URL is signed for one length: {}",
        short.status()
    );
    let second = put_part(&http, &parts[1], &bytes).await;
    let early = complete(
        &alice.client,
        &upload,
        vec![CompletedPart {
            part_number: 2,
            etag: second.clone(),
        }],
    )
    .await;
    assert_eq!(
        violated_fields(&assert_code(early, Code::InvalidArgument)),
        ["parts"]
    );
    // URLs signed anew on request, as a client that restarted would ask.
    let fresh = alice
        .client
        .drive()
        .get_upload(GetUploadRequest {
            upload_id: upload.upload_id.clone(),
        })
        .await
        .expect("get upload")
        .into_inner()
        .direct_parts;
    assert_eq!(fresh.len(), 2);
    let first = put_part(&http, &fresh[0], &bytes).await;
    let file = complete(
        &alice.client,
        &upload,
        vec![
            CompletedPart {
                part_number: 1,
                etag: first,
            },
            CompletedPart {
                part_number: 2,
                etag: second,
            },
        ],
    )
    .await
    .expect("complete");
    assert_eq!(file.sha256, sha256_hex(&bytes));
    assert_eq!(file.size, bytes.len() as u64);
    assert_eq!(quota(&alice.client).await, (bytes.len() as u64, 0));
    assert!(download(&alice.client, &file.file_id, 0, 0).await == bytes);
    server.shutdown().await;
}

/// Bytes that are not the declared ones leave no file and free the reservation; an
/// aborted direct upload's URLs stop working.
#[tokio::test]
async fn a_direct_upload_with_other_bytes_or_aborted_leaves_nothing() {
    let server = TestServer::start().await;
    if server.config().blobs.s3_bucket.is_none() {
        server.shutdown().await;
        return;
    }
    let alice = server.register("alice").await;
    let bytes = content(3 * MIB, 1);
    let other = content(3 * MIB, 2);
    let (upload, parts) = create_direct(&alice.client, &bytes, sha256_hex(&other)).await;
    let http = reqwest::Client::new();
    let etag = put_part(&http, &parts[0], &bytes).await;
    let refused = complete(
        &alice.client,
        &upload,
        vec![CompletedPart {
            part_number: 1,
            etag,
        }],
    )
    .await;
    assert_eq!(
        violated_fields(&assert_code(refused, Code::InvalidArgument)),
        ["sha256"]
    );
    assert_eq!(quota(&alice.client).await, (0, 0));
    let files = alice
        .client
        .drive()
        .list_files(ListFilesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .files;
    assert!(files.is_empty(), "{files:?}");

    let (upload, parts) = create_direct(&alice.client, &bytes, sha256_hex(&bytes)).await;
    alice
        .client
        .drive()
        .abort_upload(AbortUploadRequest {
            upload_id: upload.upload_id.clone(),
        })
        .await
        .expect("abort");
    let late = http
        .put(&parts[0].url)
        .body(bytes.clone())
        .send()
        .await
        .expect("PUT");
    assert!(
        !late.status().is_success(),
        "an aborted upload takes no parts: {}",
        late.status()
    );
    assert_eq!(quota(&alice.client).await, (0, 0));
    server.shutdown().await;
}
