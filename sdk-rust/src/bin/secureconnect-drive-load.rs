//! Drive load scenario: `--clients` users each upload a `--size-mib` file in 4 MiB chunks
//! (`UploadChunk` calls, as browsers do; with `--streamed`, one `UploadFile` stream, as
//! native clients may) at the same time, then download it back; reports upload and download throughput (MiB/s
//! over all clients) and, as the ceiling, how fast this machine copies the same bytes
//! file to file in `--scratch` (`cp`), with the ratio. Run it on the server's machine with
//! `--scratch` on the server's disk for a fair ceiling.
//!
//! ```sh
//! secureconnect-drive-load --endpoint http://127.0.0.1:50051 --clients 8 --size-mib 64 --scratch /var/tmp
//! ```

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use secureconnect_sdk::{
    Client,
    proto::{
        auth::v1::RegisterRequest,
        drive::v1::{
            CompleteUploadRequest, CreateUploadRequest, DownloadFileRequest, UploadChunkRequest,
            UploadFileRequest,
        },
    },
};

#[derive(Parser, Debug)]
#[command(about = "Drive load scenario for SecureConnect")]
struct Args {
    /// Node to connect to; repeat for several nodes (clients are spread round-robin).
    #[arg(long = "endpoint", default_value = "http://127.0.0.1:50051")]
    endpoints: Vec<String>,
    /// Clients uploading (then downloading) at once.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Size of each client's file, in MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: usize,
    /// Where to measure the file-copy ceiling (the server's disk, ideally).
    #[arg(long, default_value = "/var/tmp")]
    scratch: PathBuf,
    /// Upload through one client-streaming `UploadFile` call instead of `UploadChunk` calls.
    #[arg(long)]
    streamed: bool,
}

const MIB: usize = 1 << 20;
const CHUNK: usize = 4 * MIB;

fn content(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed as u8) ^ ((i >> 13) as u8))
        .collect()
}

async fn upload(
    client: &Client,
    bytes: &[u8],
    name: &str,
    streamed: bool,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let upload = client
        .drive()
        .create_upload(CreateUploadRequest {
            name: name.into(),
            size: bytes.len() as u64,
            ..Default::default()
        })
        .await?
        .into_inner()
        .upload
        .ok_or("no upload")?;
    if streamed {
        let messages: Vec<UploadFileRequest> = bytes
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, data)| UploadFileRequest {
                upload_id: if i == 0 {
                    upload.upload_id.clone()
                } else {
                    String::new()
                },
                offset: 0,
                data: data.to_vec(),
            })
            .collect();
        let file = client
            .drive()
            .upload_file(futures::stream::iter(messages))
            .await?
            .into_inner()
            .file
            .ok_or("no file")?;
        return Ok(file.file_id);
    }
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + CHUNK).min(bytes.len());
        offset = client
            .drive()
            .upload_chunk(UploadChunkRequest {
                upload_id: upload.upload_id.clone(),
                offset: offset as u64,
                data: bytes[offset..end].to_vec(),
            })
            .await?
            .into_inner()
            .received_bytes as usize;
    }
    let file = client
        .drive()
        .complete_upload(CompleteUploadRequest {
            upload_id: upload.upload_id,
            ..Default::default()
        })
        .await?
        .into_inner()
        .file
        .ok_or("no file")?;
    Ok(file.file_id)
}

async fn download(
    client: &Client,
    file_id: String,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = client
        .drive()
        .download_file(DownloadFileRequest {
            file_id,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut received = 0;
    while let Some(chunk) = stream.message().await? {
        received += chunk.data.len();
    }
    Ok(received)
}

fn mib_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / MIB as f64 / took.as_secs_f64()
}

/// `cp` of `clients` files of `size` bytes at once in `dir`, synced: the disk's ceiling.
fn copy_ceiling(dir: &std::path::Path, clients: usize, size: usize) -> std::io::Result<f64> {
    let dir = dir.join(format!("sc-drive-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for i in 0..clients {
        std::fs::write(dir.join(format!("src{i}")), content(size, i))?;
    }
    // The sources are in the page cache, as the server's incoming bytes are in memory.
    let started = Instant::now();
    let copies: Vec<_> = (0..clients)
        .map(|i| {
            std::process::Command::new("cp")
                .arg(dir.join(format!("src{i}")))
                .arg(dir.join(format!("dst{i}")))
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut copy in copies {
        copy.wait()?;
    }
    std::process::Command::new("sync").status()?;
    let took = started.elapsed();
    std::fs::remove_dir_all(&dir)?;
    Ok(mib_per_s(clients * size, took))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let size = args.size_mib * MIB;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut clients = Vec::new();
    for i in 0..args.clients {
        let client = Client::connect(args.endpoints[i % args.endpoints.len()].clone()).await?;
        let registered = client
            .auth()
            .register(RegisterRequest {
                email: format!("drive{i}.{}@example.com", &run[..8]),
                password: "drive-load-password".into(),
                username: format!("d{}c{i}", &run[..8]),
                ..Default::default()
            })
            .await?
            .into_inner();
        client.set_access_token(registered.tokens.map(|t| t.access_token));
        clients.push(client);
    }
    let files: Vec<Vec<u8>> = (0..args.clients).map(|i| content(size, i)).collect();

    let started = Instant::now();
    let uploads = clients
        .iter()
        .zip(&files)
        .enumerate()
        .map(|(i, (client, bytes))| {
            let client = client.clone();
            let name = format!("load-{i}.bin");
            async move { upload(&client, bytes, &name, args.streamed).await }
        });
    let ids: Vec<String> = futures::future::try_join_all(uploads).await?;
    let up = mib_per_s(args.clients * size, started.elapsed());

    let started = Instant::now();
    let downloads = clients.iter().zip(ids).map(|(client, id)| {
        let client = client.clone();
        async move { download(&client, id).await }
    });
    let received: usize = futures::future::try_join_all(downloads)
        .await?
        .into_iter()
        .sum();
    let down = mib_per_s(received, started.elapsed());
    if received != args.clients * size {
        return Err(format!(
            "downloaded {received} bytes, expected {}",
            args.clients * size
        )
        .into());
    }

    let ceiling = copy_ceiling(&args.scratch, args.clients, size)?;
    println!(
        "clients: {}, file: {} MiB each",
        args.clients, args.size_mib
    );
    println!("upload: {up:.1} MiB/s ({:.2} of cp)", up / ceiling);
    println!("download: {down:.1} MiB/s ({:.2} of cp)", down / ceiling);
    println!("cp (same bytes, same disk, synced): {ceiling:.1} MiB/s");
    Ok(())
}
