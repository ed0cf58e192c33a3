//! The Rust SDK's examples, run as written against a real server: the echo bot answers,
//! the terminal chat shows history, sends what is typed and shows what arrives, and the
//! drive command uploads and downloads large files, resuming after being killed.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::*;

#[allow(dead_code)] // `main` is the command-line entry; the tests call `run`.
#[path = "../../../sdk-rust/examples/bot.rs"]
mod bot;

#[allow(dead_code)]
#[path = "../../../sdk-rust/examples/chat.rs"]
mod chat;

#[allow(dead_code)]
#[path = "../../../sdk-rust/examples/drive.rs"]
mod drive;

/// Waits until `check` holds (the examples run concurrently with the test).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until `observer` sees `user` online.
async fn until_online(observer: &TestUser, user: &str) {
    use secureconnect_sdk::proto::presence::v1::{GetPresenceRequest, PresenceState};
    for _ in 0..200 {
        let presence = observer
            .client
            .presence()
            .get_presence(GetPresenceRequest {
                user_ids: vec![user.into()],
            })
            .await
            .expect("presence")
            .into_inner();
        if presence
            .presences
            .iter()
            .any(|p| p.state == PresenceState::Online as i32)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{user} never came online");
}

#[tokio::test]
async fn the_echo_bot_answers_each_message_once() {
    let server = TestServer::start().await;
    let (ann, bot_user) = server.pair().await;
    let conversation = ann.direct_with(&bot_user).await.conversation_id;
    let bot = {
        let (url, email, password) = (
            server.endpoint.clone(),
            bot_user.email.clone(),
            bot_user.password.clone(),
        );
        tokio::spawn(async move { bot::run(&url, &email, &password).await })
    };
    // Talk to it once its stream is open (it shows as online then).
    until_online(&ann, &bot_user.id).await;
    ann.send(&conversation, "hello bot").await;
    ann.send(&conversation, "🦀 ok?").await;
    let by_bot = || async {
        let mut messages = ann.list_messages(&conversation).await;
        messages.sort_by_key(|m| m.seq);
        messages
            .iter()
            .filter(|m| m.sender_user_id == bot_user.id)
            .map(|m| text_of(m).unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    for _ in 0..200 {
        if by_bot().await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        by_bot().await,
        ["hello bot", "🦀 ok?"],
        "each echoed, byte for byte"
    );
    // And nothing more: the bot does not answer its own echoes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ann.list_messages(&conversation).await.len(), 4);
    assert!(!bot.is_finished(), "the bot keeps running");
    bot.abort();
}

#[tokio::test]
async fn the_terminal_chat_shows_history_sends_and_receives() {
    let server = TestServer::start().await;
    let (ann, bob) = server.pair().await;
    let conversation = ann.direct_with(&bob).await.conversation_id;
    bob.send(&conversation, "earlier, from bob").await;

    let (typed, lines) = futures::channel::mpsc::unbounded::<String>();
    let screen = Arc::new(Mutex::new(Vec::<String>::new()));
    let chat = {
        let screen = Arc::clone(&screen);
        let (url, email, password) = (
            server.endpoint.clone(),
            ann.email.clone(),
            ann.password.clone(),
        );
        tokio::spawn(async move {
            chat::run(&url, &email, &password, lines, move |line| {
                screen.lock().expect("screen").push(line)
            })
            .await
        })
    };
    let shown = |wanted: &'static str| {
        let screen = Arc::clone(&screen);
        move || {
            screen
                .lock()
                .expect("screen")
                .iter()
                .any(|line| line.contains(wanted))
        }
    };
    eventually("the conversation list", shown("Pick a conversation")).await;
    typed.unbounded_send("1".into()).expect("type");
    eventually("the history", shown("bob: earlier, from bob")).await;
    typed.unbounded_send("hi bob".into()).expect("type");
    let bob_sees = || async {
        bob.list_messages(&conversation)
            .await
            .iter()
            .any(|m| text_of(m) == Some("hi bob"))
    };
    for _ in 0..200 {
        if bob_sees().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bob_sees().await, "what ann typed was sent");
    eventually("the chat going live", shown("(live")).await;
    bob.send(&conversation, "hi ann, live").await;
    eventually("the live message", shown("bob: hi ann, live")).await;
    drop(typed); // End of input: the chat returns.
    tokio::time::timeout(Duration::from_secs(10), chat)
        .await
        .expect("the chat ends with its input")
        .expect("join")
        .expect("no error");
}

/// `drive put` killed mid-upload and run again carries on with the same upload (nothing
/// reserved twice) and ends with the right bytes; `drive get` carries on from a partial
/// download and refuses one that is not this file's.
#[tokio::test]
async fn the_drive_command_resumes_after_being_killed() {
    use secureconnect_sdk::proto::drive::v1::{GetQuotaRequest, GetUploadRequest};
    use sha2::Digest;

    let server = TestServer::start().await;
    let ann = server.register("ann").await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("movie.bin");
    let bytes: Vec<u8> = (0..30 * 1024 * 1024 + 99)
        .map(|i: usize| (i as u8).wrapping_mul(13) ^ ((i >> 11) as u8))
        .collect();
    std::fs::write(&path, &bytes).expect("write");
    let path_text = path.display().to_string();

    // Killed once the server holds part of it (the task aborted: no cleanup runs).
    let put = {
        let (client, path_text) = (ann.client.clone(), path_text.clone());
        tokio::spawn(async move {
            drive::run(&client, &["put", &path_text], false)
                .await
                .is_ok()
        })
    };
    let drive_client = ann.client.drive();
    let mut resumed_from = 0;
    for _ in 0..400 {
        let usage = drive_client
            .clone()
            .get_quota(GetQuotaRequest {})
            .await
            .expect("quota")
            .into_inner();
        if usage.reserved_bytes > 0
            && let Some(upload_id) = pending_upload(&path, &bytes)
        {
            let upload = drive_client
                .clone()
                .get_upload(GetUploadRequest { upload_id })
                .await
                .expect("upload")
                .into_inner()
                .upload
                .expect("upload");
            if upload.received_bytes > 0 {
                resumed_from = upload.received_bytes;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    put.abort();
    assert!(resumed_from > 0, "killed part way through");
    let out = drive::run(&ann.client, &["put", &path_text], false)
        .await
        .unwrap_or_else(|_| panic!("put again"));
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    assert!(out.contains(&sha), "{out}");
    let usage = drive_client
        .clone()
        .get_quota(GetQuotaRequest {})
        .await
        .expect("quota")
        .into_inner();
    assert_eq!(
        (usage.used_bytes, usage.reserved_bytes),
        (bytes.len() as u64, 0),
        "the same upload carried on: nothing else reserved"
    );
    assert!(
        pending_upload(&path, &bytes).is_none(),
        "the resume state is cleared"
    );
    let file_id = out.split('\t').next().expect("file id").to_owned();

    // A download that stopped after 5 MiB carries on from there.
    let copy = dir.path().join("copy.bin");
    std::fs::write(dir.path().join("copy.bin.part"), &bytes[..5 * 1024 * 1024]).expect("part");
    let copy_text = copy.display().to_string();
    drive::run(&ann.client, &["get", &file_id, &copy_text], false)
        .await
        .unwrap_or_else(|_| panic!("get"));
    assert!(
        std::fs::read(&copy).expect("copy") == bytes,
        "bit-identical"
    );
    assert!(!dir.path().join("copy.bin.part").exists());

    // A partial file that is not this file's: refused, removed, and the next try works.
    let other = dir.path().join("other.bin");
    std::fs::write(
        dir.path().join("other.bin.part"),
        b"not the start of the file",
    )
    .expect("part");
    let other_text = other.display().to_string();
    assert!(
        drive::run(&ann.client, &["get", &file_id, &other_text], false)
            .await
            .is_err()
    );
    assert!(!dir.path().join("other.bin.part").exists());
    drive::run(&ann.client, &["get", &file_id, &other_text], false)
        .await
        .unwrap_or_else(|_| panic!("get again"));
    assert!(std::fs::read(&other).expect("other") == bytes);
    let listed = drive::run(&ann.client, &["ls"], false)
        .await
        .unwrap_or_else(|_| panic!("ls"));
    assert!(listed.contains("movie.bin"), "{listed}");
    server.shutdown().await;
}

/// The upload id the SDK remembers for the file at `path` (see `sdk-rust/src/drive.rs`).
fn pending_upload(path: &std::path::Path, bytes: &[u8]) -> Option<String> {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(bytes));
    let absolute = std::path::absolute(path).expect("absolute");
    let key = sha2::Sha256::new()
        .chain_update(absolute.to_string_lossy().as_bytes())
        .chain_update((bytes.len() as u64).to_le_bytes())
        .chain_update(sha.as_bytes())
        // Into the top folder.
        .chain_update(b"folder:")
        .finalize();
    let state = std::env::temp_dir()
        .join("secureconnect-uploads")
        .join(hex::encode(&key[..16]));
    std::fs::read_to_string(state).ok()
}
