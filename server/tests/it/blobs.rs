//! One suite for every blob store backend: the local file system always; an S3 server
//! (SeaweedFS, started by deploy/local/services.sh) on the test script's services pass.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::Method;
use secureconnect_server::{
    blobs::{self, BlobMeta, BlobStore},
    config::BlobsConfig,
    error::Error,
};

/// Runs every check against `store`. `signs_urls`: whether presigned URLs are expected.
async fn blob_store_suite(store: Arc<dyn BlobStore>, signs_urls: bool) {
    let key = format!("suite/{}/a.bin", uuid::Uuid::new_v4());

    // Absent blobs.
    assert!(matches!(store.get(&key).await, Err(Error::NotFound(_))));
    assert_eq!(store.head(&key).await.expect("head"), None);
    store
        .delete(&key)
        .await
        .expect("deleting an absent blob succeeds");

    // Round trip, ranges, overwrite.
    let first = Bytes::from_static(b"hello, blob store");
    let meta = store.put(&key, first.clone()).await.expect("put");
    assert_eq!(meta.size, first.len() as u64);
    assert_eq!(store.get(&key).await.expect("get"), first);
    assert_eq!(
        store.get_range(&key, 7..11).await.expect("range"),
        Bytes::from_static(b"blob")
    );
    assert_eq!(
        store.head(&key).await.expect("head").map(|m| m.size),
        Some(first.len() as u64)
    );
    let second = Bytes::from_static(b"replaced");
    store.put(&key, second.clone()).await.expect("overwrite");
    assert_eq!(store.get(&key).await.expect("get"), second);

    // A large streamed upload: 11 MiB in uneven chunks, so S3 sees a real multipart upload
    // (parts of at least 5 MiB) and the bytes must come back in the same order.
    let big_key = format!("{key}.big");
    let pattern: Vec<u8> = (0..11 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let chunks: Vec<Bytes> = pattern
        .chunks(700_001)
        .map(Bytes::copy_from_slice)
        .collect();
    let meta: BlobMeta = store
        .put_stream(&big_key, Box::pin(futures::stream::iter(chunks)))
        .await
        .expect("multipart upload");
    assert_eq!(meta.size, pattern.len() as u64);
    let back = store.get(&big_key).await.expect("get big");
    assert!(
        back == pattern.as_slice(),
        "multipart upload came back different"
    );
    let tail_start = pattern.len() as u64 - 10;
    let tail = store
        .get_range(&big_key, tail_start..pattern.len() as u64)
        .await
        .expect("tail");
    assert_eq!(tail.as_ref(), &pattern[pattern.len() - 10..]);

    // Presigned URLs: a client reads and writes without the server in the middle.
    let url = store
        .presigned_url(Method::GET, &key, Duration::from_secs(60))
        .await
        .expect("sign");
    if signs_urls {
        let url = url.expect("an S3 store signs URLs");
        let client = reqwest::Client::new();
        let got = client
            .get(url.as_str())
            .send()
            .await
            .expect("GET presigned");
        assert!(got.status().is_success(), "presigned GET: {}", got.status());
        assert_eq!(got.bytes().await.expect("body"), second);
        let put_key = format!("{key}.direct");
        let put_url = store
            .presigned_url(Method::PUT, &put_key, Duration::from_secs(60))
            .await
            .expect("sign")
            .expect("url");
        let put = client
            .put(put_url.as_str())
            .body("uploaded directly")
            .send()
            .await
            .expect("PUT presigned");
        assert!(put.status().is_success(), "presigned PUT: {}", put.status());
        assert_eq!(
            store.get(&put_key).await.expect("get"),
            Bytes::from_static(b"uploaded directly")
        );
        // A tampered signature is refused: the server really checks them.
        let forged = url_with_bad_signature(
            &store
                .presigned_url(Method::GET, &key, Duration::from_secs(60))
                .await
                .expect("sign")
                .expect("url"),
        );
        let refused = client.get(forged).send().await.expect("GET forged");
        assert_eq!(
            refused.status().as_u16(),
            403,
            "a forged signature must be refused"
        );
        store.delete(&put_key).await.expect("delete");
    } else {
        assert!(url.is_none(), "the local file system cannot sign URLs");
    }

    store.delete(&key).await.expect("delete");
    store.delete(&big_key).await.expect("delete big");
    assert_eq!(store.head(&key).await.expect("head"), None);
}

fn url_with_bad_signature(url: &url::Url) -> String {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Signature" {
                "0".repeat(v.len())
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut forged = url.clone();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    forged.to_string()
}

#[tokio::test]
async fn local_file_system_blob_store() {
    let dir = tempfile::tempdir().expect("dir");
    let store = blobs::from_config(&BlobsConfig::default(), dir.path()).expect("local store");
    blob_store_suite(store, false).await;
}

#[tokio::test]
#[ignore = "needs an S3 server (SC_TEST_S3_*); run by deploy/local/test.sh"]
async fn s3_blob_store() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set for this test"))
    };
    let config = BlobsConfig {
        s3_endpoint: Some(var("SC_TEST_S3_ENDPOINT")),
        s3_bucket: Some(var("SC_TEST_S3_BUCKET")),
        s3_access_key_id: var("SC_TEST_S3_ACCESS_KEY_ID"),
        s3_secret_access_key: var("SC_TEST_S3_SECRET_ACCESS_KEY").into(),
        ..BlobsConfig::default()
    };
    let dir = tempfile::tempdir().expect("dir");
    let store = blobs::from_config(&config, dir.path()).expect("s3 store");
    blob_store_suite(store, true).await;

    // Wrong credentials are refused, not silently accepted.
    let wrong = BlobsConfig {
        s3_secret_access_key: "wrong-secret".into(),
        ..config
    };
    let store = blobs::from_config(&wrong, dir.path()).expect("s3 store");
    assert!(
        store
            .put("suite/denied", Bytes::from_static(b"x"))
            .await
            .is_err()
    );
}
