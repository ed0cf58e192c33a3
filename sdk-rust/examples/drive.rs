//! The drive from a terminal: upload, download and list files, with a progress bar.
//! Uploads and downloads resume where they stopped, even after the process was killed:
//! run the same command again.
//!
//! ```sh
//! cargo run -p secureconnect-sdk --example drive -- http://127.0.0.1:50051 ann@example.com 'correct horse' put movie.mkv
//! cargo run -p secureconnect-sdk --example drive -- http://127.0.0.1:50051 ann@example.com 'correct horse' ls
//! cargo run -p secureconnect-sdk --example drive -- http://127.0.0.1:50051 ann@example.com 'correct horse' get <file id> copy.mkv
//! ```

use indicatif::{ProgressBar, ProgressStyle};
use secureconnect_sdk::{
    Client, Error,
    proto::drive::v1::{FileKind, ListFilesRequest},
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, email, password, command @ ..] = args.as_slice() else {
        eprintln!(
            "usage: drive <server url> <email> <password> put <path> [folder id] | get <file id> <path> | ls [folder id]"
        );
        std::process::exit(2);
    };
    let client = Client::connect(url.to_owned()).await?;
    client.login(email, password).await?;
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    match run(&client, &command, true).await {
        Ok(output) => {
            println!("{output}");
            Ok(())
        }
        Err(Usage) => {
            eprintln!("unknown command: {command:?}");
            std::process::exit(2);
        }
        Err(Failed(err)) => Err(err),
    }
}

/// Why a command did not run.
pub enum Outcome {
    Usage,
    Failed(Error),
}
use Outcome::{Failed, Usage};

impl From<Error> for Outcome {
    fn from(err: Error) -> Self {
        Failed(err)
    }
}

/// Runs one command as signed-in `client`; what it prints. `show_progress`: draw a bar.
pub async fn run(
    client: &Client,
    command: &[&str],
    show_progress: bool,
) -> Result<String, Outcome> {
    let bar = || {
        let bar = if show_progress {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    match command {
        ["put", path, rest @ ..] => {
            let folder = rest.first().copied().unwrap_or_default();
            let bar = bar();
            let file = client
                .upload_path(path, folder, |sent, total| {
                    bar.set_length(total);
                    bar.set_position(sent);
                })
                .await?;
            bar.finish_and_clear();
            Ok(format!(
                "{}\t{}\t{} bytes\tsha256 {}",
                file.file_id, file.name, file.size, file.sha256
            ))
        }
        ["get", file_id, path] => {
            let bar = bar();
            let file = client
                .download_to(file_id, path, |received, total| {
                    bar.set_length(total);
                    bar.set_position(received);
                })
                .await?;
            bar.finish_and_clear();
            Ok(format!(
                "{} bytes to {path}\tsha256 {}",
                file.size, file.sha256
            ))
        }
        ["ls", rest @ ..] => {
            let mut lines = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .drive()
                    .list_files(ListFilesRequest {
                        parent_id: rest.first().copied().unwrap_or_default().to_owned(),
                        page_size: 200,
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .map_err(Error::from)?
                    .into_inner();
                for file in page.files {
                    let kind = if file.kind == FileKind::Folder as i32 {
                        "dir"
                    } else {
                        "file"
                    };
                    lines.push(format!(
                        "{}\t{kind}\t{}\t{}",
                        file.file_id, file.size, file.name
                    ));
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            Ok(lines.join("\n"))
        }
        _ => Err(Usage),
    }
}
