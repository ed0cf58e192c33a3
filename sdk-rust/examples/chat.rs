//! A terminal chat: sign in, pick a conversation, see its recent messages, then type to
//! send while new ones appear live.
//!
//! ```sh
//! cargo run -p secureconnect-sdk --example chat -- http://127.0.0.1:50051 ann@example.com 'ann password'
//! ```

use std::collections::HashMap;

use futures::{Stream, StreamExt};
use secureconnect_sdk::{
    Client, Error, StreamEvent,
    proto::{
        call::v1::CallMedia,
        conversation::v1::Conversation,
        event::v1::conversation_event::Change,
        message::v1::{ListDirection, ListMessagesRequest, Message, message_content::Body},
        user::v1::GetUserRequest,
    },
};
use tokio::io::AsyncBufReadExt;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, email, password] = args.as_slice() else {
        eprintln!("usage: chat <server url> <email> <password>");
        std::process::exit(2);
    };
    let stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let input = futures::stream::unfold(stdin, |mut lines| async move {
        lines
            .next_line()
            .await
            .ok()
            .flatten()
            .map(|line| (line, lines))
    });
    run(url, email, password, input, |line| println!("{line}")).await
}

/// The chat, reading the user's lines from `input` and showing everything with `show`.
pub async fn run(
    url: &str,
    email: &str,
    password: &str,
    input: impl Stream<Item = String>,
    show: impl Fn(String) + Send + Sync + 'static,
) -> Result<(), Error> {
    let client = Client::connect(url.to_owned()).await?;
    client.login(email, password).await?;
    let mut input = Box::pin(input);

    let conversations = client.all_conversations().await?;
    if conversations.is_empty() {
        show("No conversations yet.".into());
        return Ok(());
    }
    for (i, conversation) in conversations.iter().enumerate() {
        show(format!(
            "{:>2}. {} ({} unread)",
            i + 1,
            title(conversation),
            conversation.unread_count
        ));
    }
    show("Pick a conversation by number:".into());
    let picked = loop {
        let Some(line) = input.next().await else {
            return Ok(());
        };
        match line.trim().parse::<usize>() {
            Ok(n) if (1..=conversations.len()).contains(&n) => break &conversations[n - 1],
            _ => show(format!("a number from 1 to {}", conversations.len())),
        }
    };
    let conversation_id = picked.conversation_id.clone();

    let names = Names::new(client.clone());
    let recent = client
        .messages()
        .list_messages(ListMessagesRequest {
            conversation_id: conversation_id.clone(),
            direction: ListDirection::Backward.into(),
            page_size: 20,
            ..Default::default()
        })
        .await?
        .into_inner()
        .messages;
    for message in recent.iter().rev() {
        show(names.line(message).await);
    }

    // Live messages, shown as they arrive while the user types.
    let live = {
        let client = client.clone();
        let conversation_id = conversation_id.clone();
        tokio::spawn(async move {
            let mut events = Box::pin(client.event_stream(""));
            while let Some(Ok((event, _cursor))) = events.next().await {
                if event == StreamEvent::CaughtUp {
                    show("(live: new messages appear as they arrive)".into());
                } else if let StreamEvent::Conversation(event) = event
                    && event.conversation_id == conversation_id
                    && let Some(Change::MessageSent(message)) = event.change
                {
                    show(names.line(&message).await);
                }
            }
        })
    };
    while let Some(line) = input.next().await {
        if !line.trim().is_empty() {
            client.send_text(&conversation_id, line).await?;
        }
    }
    live.abort();
    Ok(())
}

fn title(conversation: &Conversation) -> String {
    if conversation.title.is_empty() {
        let id = &conversation.conversation_id;
        format!("direct chat {}", id.get(..8).unwrap_or(id))
    } else {
        conversation.title.clone()
    }
}

/// Usernames by user id, looked up once each.
struct Names {
    client: Client,
    known: tokio::sync::Mutex<HashMap<String, String>>,
}

impl Names {
    fn new(client: Client) -> Self {
        Self {
            client,
            known: Default::default(),
        }
    }

    async fn line(&self, message: &Message) -> String {
        let text = match message.content.as_ref().and_then(|c| c.body.as_ref()) {
            Some(Body::Text(text)) => text.clone(),
            Some(Body::EncryptedPayload(_)) => "(encrypted)".into(),
            Some(Body::Poll(poll)) => format!("(poll) {}", poll.question),
            Some(Body::Call(call)) if call.media() == CallMedia::Video => "(video call)".into(),
            Some(Body::Call(_)) => "(voice call)".into(),
            None => "(deleted)".into(),
        };
        format!("{}: {text}", self.name(&message.sender_user_id).await)
    }

    async fn name(&self, id: &str) -> String {
        let mut known = self.known.lock().await;
        if let Some(name) = known.get(id) {
            return name.clone();
        }
        let request = GetUserRequest { user_id: id.into() };
        let name = match self.client.users().get_user(request).await {
            Ok(found) => found
                .into_inner()
                .user
                .map(|u| u.username)
                .unwrap_or_default(),
            Err(_) => "someone".into(),
        };
        known.insert(id.into(), name.clone());
        name
    }
}
