//! The Rust SDK's examples, run as written against a real server: the echo bot answers,
//! and the terminal chat shows history, sends what is typed and shows what arrives.

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
