//! Blob storage for file contents: the local file system in the embedded default, any
//! S3-compatible service in production — both through `object_store`, behind one trait so
//! the drive never knows which. Keys are `/`-separated paths chosen by the server.

use std::{ops::Range, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::Method;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, aws::AmazonS3Builder,
    local::LocalFileSystem, path::Path, signer::Signer,
};
use url::Url;

use crate::{
    config::BlobsConfig,
    error::{Error, Result},
};

/// Size and identity of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    pub e_tag: Option<String>,
}

/// Stores and serves blobs.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` at `key`, replacing what was there.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<BlobMeta>;
    /// Stores a large blob from a stream of chunks (S3 multipart upload: chunks are
    /// regrouped into parts of at least 5 MiB), without holding it all in memory.
    async fn put_stream(
        &self,
        key: &str,
        chunks: std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    ) -> Result<BlobMeta>;
    /// The whole blob; `NotFound` if absent.
    async fn get(&self, key: &str) -> Result<Bytes>;
    /// Bytes `range` of the blob (downloads in chunks, resumable downloads).
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    /// Size of the blob, or `None` if absent.
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>>;
    /// Removes the blob; removing an absent one succeeds.
    async fn delete(&self, key: &str) -> Result<()>;
    /// A time-limited URL a client can GET (or PUT) directly, bypassing the server;
    /// `None` when the backend cannot sign URLs (the local file system).
    async fn presigned_url(
        &self,
        method: Method,
        key: &str,
        expires_in: Duration,
    ) -> Result<Option<Url>>;
}

/// [`BlobStore`] over an `object_store` backend.
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
}

/// Builds the blob store the configuration asks for.
pub fn from_config(config: &BlobsConfig, data_dir: &std::path::Path) -> Result<Arc<dyn BlobStore>> {
    let Some(bucket) = &config.s3_bucket else {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::internal(format!("{}: {e}", root.display())))?;
        let local = LocalFileSystem::new_with_prefix(&root).map_err(Error::internal)?;
        return Ok(Arc::new(ObjectBlobStore {
            store: Arc::new(local),
            signer: None,
        }));
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&config.s3_region)
        .with_access_key_id(&config.s3_access_key_id)
        .with_secret_access_key(config.s3_secret_access_key.expose());
    if let Some(endpoint) = &config.s3_endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            // Self-hosted S3 servers address buckets by path, not by subdomain.
            .with_virtual_hosted_style_request(false);
    }
    let s3 = Arc::new(
        builder
            .build()
            .map_err(|e| Error::internal(format!("blobs: {e}")))?,
    );
    Ok(Arc::new(ObjectBlobStore {
        store: s3.clone(),
        signer: Some(s3),
    }))
}

fn not_found_or(err: object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { .. } => Error::NotFound("blob"),
        other => Error::Unavailable(format!("blob store: {other}")),
    }
}

fn path(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| Error::internal(format!("bad blob key {key:?}: {e}")))
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<BlobMeta> {
        let size = bytes.len() as u64;
        let result = self
            .store
            .put(&path(key)?, PutPayload::from(bytes))
            .await
            .map_err(not_found_or)?;
        Ok(BlobMeta {
            size,
            e_tag: result.e_tag,
        })
    }

    async fn put_stream(
        &self,
        key: &str,
        mut chunks: std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    ) -> Result<BlobMeta> {
        let upload = self
            .store
            .put_multipart(&path(key)?)
            .await
            .map_err(not_found_or)?;
        let mut writer = WriteMultipart::new(upload);
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            size += chunk.len() as u64;
            // Bounds memory: wait while too many parts are in flight.
            writer.wait_for_capacity(4).await.map_err(not_found_or)?;
            writer.put(chunk);
        }
        let result = writer.finish().await.map_err(not_found_or)?;
        Ok(BlobMeta {
            size,
            e_tag: result.e_tag,
        })
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let result = self.store.get(&path(key)?).await.map_err(not_found_or)?;
        result.bytes().await.map_err(not_found_or)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&path(key)?, range)
            .await
            .map_err(not_found_or)
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>> {
        match self.store.head(&path(key)?).await {
            Ok(meta) => Ok(Some(BlobMeta {
                size: meta.size,
                e_tag: meta.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(not_found_or(err)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(not_found_or(err)),
        }
    }

    async fn presigned_url(
        &self,
        method: Method,
        key: &str,
        expires_in: Duration,
    ) -> Result<Option<Url>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        signer
            .signed_url(method, &path(key)?, expires_in)
            .await
            .map(Some)
            .map_err(not_found_or)
    }
}
