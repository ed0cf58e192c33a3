//! Files in and out of the drive, resuming where an interrupted transfer stopped — even
//! after the process was killed: an upload remembers its id in a small state file (in the
//! system's temporary directory, keyed by the file's path, size and SHA-256), and a
//! download writes to `<path>.part` until it is complete and verified.

use std::path::{Path, PathBuf};

use secureconnect_proto::drive::v1::{
    CompleteUploadRequest, CreateUploadRequest, DownloadFileRequest, File, GetUploadRequest,
    UploadChunkRequest,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tonic::Code;

use crate::{Client, Error};

/// Bytes per `UploadChunk` call (the server's largest).
pub const UPLOAD_CHUNK_BYTES: usize = 4 << 20;

fn io(context: &str, err: std::io::Error) -> Error {
    Error::Io(format!("{context}: {err}"))
}

/// The SHA-256 (hex) and size of the file at `path`.
async fn digest(path: &Path) -> Result<(String, u64), Error> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io(&path.display().to_string(), e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .await
            .map_err(|e| io(&path.display().to_string(), e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// What an upload makes: a new file in a folder, or new contents for a file.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Folder(&'a str),
    Replace(&'a str),
}

/// Where the id of an upload of this file (this path, size and content, to this target)
/// is remembered.
fn state_file(path: &Path, size: u64, sha256: &str, target: &Target<'_>) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let target = match target {
        Target::Folder(id) => format!("folder:{id}"),
        Target::Replace(id) => format!("replace:{id}"),
    };
    let key = Sha256::new()
        .chain_update(absolute.to_string_lossy().as_bytes())
        .chain_update(size.to_le_bytes())
        .chain_update(sha256.as_bytes())
        .chain_update(target.as_bytes())
        .finalize();
    std::env::temp_dir()
        .join("secureconnect-uploads")
        .join(hex::encode(&key[..16]))
}

impl Client {
    /// Uploads the file at `path` into the folder `folder_id` (empty: the top folder),
    /// calling `progress(sent, total)` as bytes are acknowledged. If an earlier call for
    /// the same file was interrupted (even by killing the process), this one carries on
    /// where the server says it stopped. The server checks the SHA-256 before the file
    /// appears.
    pub async fn upload_path(
        &self,
        path: impl AsRef<Path>,
        folder_id: &str,
        progress: impl FnMut(u64, u64),
    ) -> Result<File, Error> {
        self.upload_to(path.as_ref(), Target::Folder(folder_id), progress)
            .await
    }

    /// Replaces the contents of the file `file_id` (the caller's, or one shared with them
    /// as an editor) with the file at `path`; the file keeps its id, name and shares. It
    /// resumes and reports progress as [`Self::upload_path`] does.
    pub async fn replace_contents(
        &self,
        file_id: &str,
        path: impl AsRef<Path>,
        progress: impl FnMut(u64, u64),
    ) -> Result<File, Error> {
        self.upload_to(path.as_ref(), Target::Replace(file_id), progress)
            .await
    }

    async fn upload_to(
        &self,
        path: &Path,
        target: Target<'_>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<File, Error> {
        let (sha256, size) = digest(path).await?;
        let state = state_file(path, size, &sha256, &target);
        let (upload_id, mut offset) = match self.resumable(&state).await? {
            Some(resumed) => resumed,
            None => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let upload = self
                    .drive()
                    .create_upload(CreateUploadRequest {
                        parent_id: match target {
                            Target::Folder(folder_id) => folder_id.to_owned(),
                            Target::Replace(_) => String::new(),
                        },
                        name,
                        size,
                        sha256: sha256.clone(),
                        // Chunks through the server: this SDK speaks gRPC only.
                        direct: false,
                        replace_file_id: match target {
                            Target::Folder(_) => String::new(),
                            Target::Replace(file_id) => file_id.to_owned(),
                        },
                    })
                    .await?
                    .into_inner()
                    .upload
                    .ok_or_else(|| Error::from(tonic::Status::internal("no upload")))?;
                if let Some(dir) = state.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| io("upload state", e))?;
                }
                tokio::fs::write(&state, &upload.upload_id)
                    .await
                    .map_err(|e| io("upload state", e))?;
                (upload.upload_id, 0)
            }
        };
        progress(offset, size);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io(&path.display().to_string(), e))?;
        let mut buffer = vec![0; UPLOAD_CHUNK_BYTES];
        while offset < size {
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| io(&path.display().to_string(), e))?;
            let want = usize::try_from(size - offset)
                .unwrap_or(usize::MAX)
                .min(UPLOAD_CHUNK_BYTES);
            file.read_exact(&mut buffer[..want])
                .await
                .map_err(|e| io(&path.display().to_string(), e))?;
            let sent = self
                .drive()
                .upload_chunk(UploadChunkRequest {
                    upload_id: upload_id.clone(),
                    offset,
                    data: buffer[..want].to_vec(),
                })
                .await;
            offset = match sent {
                Ok(answer) => answer.into_inner().received_bytes,
                // Out of step (an answer was lost): carry on where the server is.
                Err(status) if status.code() == Code::FailedPrecondition => {
                    self.received(&upload_id).await?
                }
                Err(status) => return Err(status.into()),
            };
            progress(offset, size);
        }
        let done = self
            .drive()
            .complete_upload(CompleteUploadRequest {
                upload_id: upload_id.clone(),
                parts: Vec::new(),
            })
            .await;
        // Complete or refused for good: the state is of no more use either way.
        let _ = tokio::fs::remove_file(&state).await;
        done?
            .into_inner()
            .file
            .ok_or_else(|| Error::from(tonic::Status::internal("no file")))
    }

    /// Downloads file `file_id` to `path`, calling `progress(received, total)`. Bytes go
    /// to `<path>.part` first; an interrupted download carries on from what that holds,
    /// and the file is moved into place only once its SHA-256 matches the server's.
    pub async fn download_to(
        &self,
        file_id: &str,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<File, Error> {
        let path = path.as_ref();
        let mut partial = path.as_os_str().to_owned();
        partial.push(".part");
        let partial = PathBuf::from(partial);
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .await
            .map_err(|e| io(&partial.display().to_string(), e))?;
        let have = out
            .metadata()
            .await
            .map_err(|e| io(&partial.display().to_string(), e))?
            .len();
        let mut stream = self
            .drive()
            .download_file(DownloadFileRequest {
                file_id: file_id.to_owned(),
                offset: have,
                length: 0,
            })
            .await?
            .into_inner();
        let mut file = None;
        let mut received = have;
        while let Some(chunk) = stream.message().await? {
            if let Some(described) = chunk.file {
                progress(received, described.size);
                file = Some(described);
            }
            out.write_all(&chunk.data)
                .await
                .map_err(|e| io(&partial.display().to_string(), e))?;
            received += chunk.data.len() as u64;
            progress(received, file.as_ref().map_or(0, |f| f.size));
        }
        out.flush()
            .await
            .map_err(|e| io(&partial.display().to_string(), e))?;
        drop(out);
        let file = file.ok_or_else(|| Error::from(tonic::Status::internal("no file")))?;
        let (sha256, _) = digest(&partial).await?;
        if sha256 != file.sha256 {
            // Whatever was there before did not belong to this file: start over next time.
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(Error::Io(format!(
                "{}: downloaded bytes do not match the file's SHA-256; removed, try again",
                partial.display()
            )));
        }
        tokio::fs::rename(&partial, path)
            .await
            .map_err(|e| io(&path.display().to_string(), e))?;
        Ok(file)
    }

    /// The upload recorded in `state`, if the server still has it: its id and how many
    /// bytes it has.
    async fn resumable(&self, state: &Path) -> Result<Option<(String, u64)>, Error> {
        let Ok(upload_id) = tokio::fs::read_to_string(state).await else {
            return Ok(None);
        };
        match self
            .drive()
            .get_upload(GetUploadRequest {
                upload_id: upload_id.clone(),
            })
            .await
        {
            Ok(found) => Ok(found
                .into_inner()
                .upload
                .map(|upload| (upload_id, upload.received_bytes))),
            // Expired, aborted or completed meanwhile: start a new one.
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }

    async fn received(&self, upload_id: &str) -> Result<u64, Error> {
        Ok(self
            .drive()
            .get_upload(GetUploadRequest {
                upload_id: upload_id.to_owned(),
            })
            .await?
            .into_inner()
            .upload
            .map_or(0, |u| u.received_bytes))
    }
}
