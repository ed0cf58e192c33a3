//! An echo bot: answers every text message in its conversations with the same text.
//!
//! ```sh
//! cargo run -p secureconnect-sdk --example bot -- http://127.0.0.1:50051 bot@example.com 'bot password'
//! ```

use futures::StreamExt;
use secureconnect_sdk::{
    Client, Error, StreamEvent,
    proto::{event::v1::conversation_event::Change, message::v1::message_content::Body},
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, email, password] = args.as_slice() else {
        eprintln!("usage: bot <server url> <email> <password>");
        std::process::exit(2);
    };
    run(url, email, password).await
}

/// The whole bot.
pub async fn run(url: &str, email: &str, password: &str) -> Result<(), Error> {
    let client = Client::connect(url.to_owned()).await?;
    let me = client.login(email, password).await?.user_id;
    let mut events = Box::pin(client.event_stream(""));
    while let Some(item) = events.next().await {
        let (StreamEvent::Conversation(event), _cursor) = item? else {
            continue;
        };
        let Some(Change::MessageSent(message)) = event.change else {
            continue;
        };
        if message.sender_user_id == me {
            continue; // Not an echo of our own echo.
        }
        if let Some(Body::Text(text)) = message.content.and_then(|content| content.body) {
            client.send_text(&event.conversation_id, text).await?;
        }
    }
    Ok(())
}
