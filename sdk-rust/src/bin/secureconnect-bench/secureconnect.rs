//! Setting up SecureConnect for a scenario: accounts, each on its own connection, and a
//! group conversation holding them.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use secureconnect_sdk::{
    Client,
    proto::{
        auth::v1::RegisterRequest,
        conversation::v1::{AddMembersRequest, ConversationType, CreateConversationRequest},
    },
};
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};

/// Users added per call (the contract's limit).
const MEMBERS_PER_CALL: usize = 256;
/// Registrations in flight: password hashing is bounded on the server and refuses a
/// burst beyond its queue.
const REGISTERING_AT_ONCE: usize = 4;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A signed-in account on its own connection.
pub struct Account {
    pub client: Client,
    /// The connection, for calls outside the SDK (`grpc.health.v1`).
    pub channel: Channel,
    pub user_id: String,
}

/// Registers `count` accounts on `endpoint`, each with its own connection.
pub async fn accounts(endpoint: &str, count: usize) -> Result<Vec<Account>, BoxError> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = run[..8].to_owned();
    stream::iter(0..count)
        .map(|i| register(endpoint, format!("b{run}u{i}")))
        .buffered(REGISTERING_AT_ONCE)
        .try_collect()
        .await
}

async fn register(endpoint: &str, username: String) -> Result<Account, BoxError> {
    let channel = connect(endpoint).await?;
    let client = Client::from_channel(channel.clone());
    loop {
        let request = RegisterRequest {
            email: format!("{username}@example.com"),
            password: "bench-password".into(),
            username: username.clone(),
            ..Default::default()
        };
        match client.register(request).await {
            Ok(session) => {
                return Ok(Account {
                    client,
                    channel,
                    user_id: session.user_id,
                });
            }
            Err(err) if err.code() == Code::ResourceExhausted => {
                let wait = err.retry_delay().unwrap_or(Duration::from_millis(200));
                tokio::time::sleep(wait).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// A group owned by `accounts[0]` with all of `accounts` as members; its id.
pub async fn group(accounts: &[Account]) -> Result<String, BoxError> {
    let (owner, others) = accounts.split_first().ok_or("no accounts")?;
    let ids: Vec<String> = others.iter().map(|a| a.user_id.clone()).collect();
    let mut chunks = ids.chunks(MEMBERS_PER_CALL);
    let first = chunks
        .next()
        .map(|chunk| chunk[..chunk.len().min(MEMBERS_PER_CALL - 1)].to_vec())
        .unwrap_or_default();
    let rest: Vec<String> = ids.iter().skip(first.len()).cloned().collect();
    let conversation = owner
        .client
        .conversations()
        .create_conversation(CreateConversationRequest {
            r#type: ConversationType::Group.into(),
            member_user_ids: first,
            title: "bench".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .conversation
        .ok_or("no conversation in the response")?;
    for chunk in rest.chunks(MEMBERS_PER_CALL) {
        owner
            .client
            .conversations()
            .add_members(AddMembersRequest {
                conversation_id: conversation.conversation_id.clone(),
                user_ids: chunk.to_vec(),
            })
            .await?;
    }
    Ok(conversation.conversation_id)
}

/// A new connection to `endpoint`.
pub async fn connect(endpoint: &str) -> Result<Channel, BoxError> {
    Ok(Endpoint::from_shared(endpoint.to_owned())?
        .connect()
        .await?)
}
