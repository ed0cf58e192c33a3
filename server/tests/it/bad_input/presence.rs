//! `PresenceService`, as alice.

use secureconnect_sdk::proto::presence::v1::{GetPresenceRequest, SetTypingRequest};

use super::invalid;
use crate::common::*;

#[tokio::test]
async fn set_typing() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let typing = |conversation_id: &str| {
        let (client, conversation_id) = (alice.client.clone(), conversation_id.to_owned());
        async move {
            client
                .presence()
                .set_typing(SetTypingRequest {
                    conversation_id,
                    typing: true,
                })
                .await
        }
    };
    invalid(
        "set typing: no conversation",
        typing("").await,
        "conversation_id",
    );
    invalid(
        "set typing: malformed conversation",
        typing("not-an-id").await,
        "conversation_id",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn get_presence() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let presence = |user_ids: Vec<String>| {
        let client = alice.client.clone();
        async move {
            client
                .presence()
                .get_presence(GetPresenceRequest { user_ids })
                .await
        }
    };
    invalid(
        "get presence: no ids",
        presence(Vec::new()).await,
        "user_ids",
    );
    let many = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    invalid("get presence: 101 ids", presence(many).await, "user_ids");
    invalid(
        "get presence: a malformed id",
        presence(vec![alice.id.clone(), "nope".into()]).await,
        "user_ids[1]",
    );
    server.shutdown().await;
}
