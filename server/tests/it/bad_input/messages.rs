//! `MessageService`, as alice in a direct conversation with bob, on a server whose texts
//! are capped at 100 bytes so "too long" is cheap to say.

use secureconnect_sdk::proto::message::v1::*;
use tonic::{Code, Status};

use super::{NOT_AN_ID, UNKNOWN_ID, invalid};
use crate::common::*;

/// A server with 100-byte texts, alice, and her direct conversation with bob.
async fn direct_chat() -> (TestServer, TestUser, String) {
    let server = TestServer::start_with(|c| c.limits.max_text_bytes = 100).await;
    let (alice, bob) = server.pair().await;
    let id = alice.direct_with(&bob).await.conversation_id;
    (server, alice, id)
}

/// The conversation holds `text` and nothing else: no bad request stored or changed a
/// message.
async fn assert_only_message(alice: &TestUser, conversation_id: &str, text: &str) {
    let listed = alice.list_messages(conversation_id).await;
    assert_eq!(listed.len(), 1, "no bad request stored anything");
    assert_eq!(text_of(&listed[0]), Some(text));
}

#[tokio::test]
async fn send_message() {
    let (server, alice, id) = direct_chat().await;
    let messages = alice.client.messages();
    let send = |content: Option<MessageContent>, request_id: &str| SendMessageRequest {
        conversation_id: id.clone(),
        content,
        request_id: request_id.into(),
        ..Default::default()
    };
    invalid(
        "send: no content",
        messages.clone().send_message(send(None, "r")).await,
        "content",
    );
    invalid(
        "send: empty oneof",
        messages
            .clone()
            .send_message(send(Some(MessageContent { body: None }), "r"))
            .await,
        "content",
    );
    invalid(
        "send: blank text",
        messages
            .clone()
            .send_message(send(Some(text_content("  \n")), "r"))
            .await,
        "content.text",
    );
    invalid(
        "send: oversized",
        messages
            .clone()
            .send_message(send(Some(text_content(&"x".repeat(101))), "r"))
            .await,
        "content.text",
    );
    invalid(
        "send: no request id",
        messages
            .clone()
            .send_message(send(Some(text_content("hi")), ""))
            .await,
        "request_id",
    );
    let empty_payload = Some(MessageContent {
        body: Some(message_content::Body::EncryptedPayload(vec![])),
    });
    invalid(
        "send: empty payload",
        messages
            .clone()
            .send_message(send(empty_payload, "r"))
            .await,
        "content.encrypted_payload",
    );
    let mut with_meta = send(Some(text_content("hi")), "r");
    with_meta.metadata = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
    invalid(
        "send: too much metadata",
        messages.clone().send_message(with_meta).await,
        "metadata",
    );
    let mut reply = send(Some(text_content("hi")), "r");
    reply.reply_to_message_id = UNKNOWN_ID.into();
    invalid(
        "send: reply to unknown",
        messages.clone().send_message(reply).await,
        "reply_to_message_id",
    );
    let mut no_conv = send(Some(text_content("hi")), "r");
    no_conv.conversation_id = NOT_AN_ID.into();
    invalid(
        "send: bad conversation",
        messages.clone().send_message(no_conv).await,
        "conversation_id",
    );
    // Invalid UTF-8 in a string field, sent as raw bytes on the wire. The decoder names
    // the oneof that holds `text`.
    invalid(
        "send: invalid utf-8",
        raw_send_with_invalid_utf8(&server, &alice, &id).await,
        "content.body",
    );

    alice.send(&id, "the only message").await;
    assert_only_message(&alice, &id, "the only message").await;
    server.shutdown().await;
}

#[tokio::test]
async fn get_message() {
    let (server, alice, id) = direct_chat().await;
    let messages = alice.client.messages();
    invalid(
        "get: bad id",
        messages
            .clone()
            .get_message(GetMessageRequest {
                conversation_id: id.clone(),
                message_id: NOT_AN_ID.into(),
            })
            .await,
        "message_id",
    );
    assert_code(
        messages
            .clone()
            .get_message(GetMessageRequest {
                conversation_id: id.clone(),
                message_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_messages() {
    let (server, alice, id) = direct_chat().await;
    let messages = alice.client.messages();
    invalid(
        "list: page size",
        messages
            .clone()
            .list_messages(ListMessagesRequest {
                conversation_id: id.clone(),
                page_size: 201,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "list: token",
        messages
            .clone()
            .list_messages(ListMessagesRequest {
                conversation_id: id.clone(),
                page_token: "zzz".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn forward_message() {
    let (server, alice, id) = direct_chat().await;
    let sent = alice.send(&id, "the only message").await;
    let messages = alice.client.messages();
    // Each case breaks one field of a request that is otherwise fine: forwarding the
    // message into the conversation it is in.
    let forward = |change: &dyn Fn(&mut ForwardMessageRequest)| {
        let mut request = ForwardMessageRequest {
            conversation_id: id.clone(),
            message_id: sent.message_id.clone(),
            target_conversation_id: id.clone(),
            request_id: "r".into(),
        };
        change(&mut request);
        let mut messages = messages.clone();
        async move { messages.forward_message(request).await }
    };
    invalid(
        "forward: no conversation",
        forward(&|r| r.conversation_id.clear()).await,
        "conversation_id",
    );
    invalid(
        "forward: bad conversation",
        forward(&|r| r.conversation_id = NOT_AN_ID.into()).await,
        "conversation_id",
    );
    invalid(
        "forward: no message",
        forward(&|r| r.message_id.clear()).await,
        "message_id",
    );
    invalid(
        "forward: bad message",
        forward(&|r| r.message_id = NOT_AN_ID.into()).await,
        "message_id",
    );
    invalid(
        "forward: no target",
        forward(&|r| r.target_conversation_id.clear()).await,
        "target_conversation_id",
    );
    invalid(
        "forward: bad target",
        forward(&|r| r.target_conversation_id = NOT_AN_ID.into()).await,
        "target_conversation_id",
    );
    invalid(
        "forward: no request id",
        forward(&|r| r.request_id.clear()).await,
        "request_id",
    );
    invalid(
        "forward: long request id",
        forward(&|r| r.request_id = "r".repeat(65)).await,
        "request_id",
    );
    assert_only_message(&alice, &id, "the only message").await;
    server.shutdown().await;
}

#[tokio::test]
async fn edit_message() {
    let (server, alice, id) = direct_chat().await;
    let sent = alice.send(&id, "the only message").await;
    let messages = alice.client.messages();
    invalid(
        "edit: no content",
        messages
            .clone()
            .edit_message(EditMessageRequest {
                conversation_id: id.clone(),
                message_id: sent.message_id.clone(),
                content: None,
            })
            .await,
        "content",
    );
    invalid(
        "edit: oversized",
        messages
            .clone()
            .edit_message(EditMessageRequest {
                conversation_id: id.clone(),
                message_id: sent.message_id.clone(),
                content: Some(text_content(&"y".repeat(101))),
            })
            .await,
        "content.text",
    );
    assert_only_message(&alice, &id, "the only message").await;
    server.shutdown().await;
}

#[tokio::test]
async fn delete_message() {
    let (server, alice, id) = direct_chat().await;
    alice.send(&id, "the only message").await;
    invalid(
        "delete: bad id",
        alice
            .client
            .messages()
            .delete_message(DeleteMessageRequest {
                conversation_id: id.clone(),
                message_id: NOT_AN_ID.into(),
            })
            .await,
        "message_id",
    );
    assert_only_message(&alice, &id, "the only message").await;
    server.shutdown().await;
}

/// `SendMessageRequest` with `content.text` typed as bytes, to put non-UTF-8 on the wire.
#[derive(Clone, PartialEq, prost::Message)]
struct RawSendMessageRequest {
    #[prost(string, tag = "1")]
    conversation_id: String,
    #[prost(message, optional, tag = "2")]
    content: Option<RawContent>,
    #[prost(string, tag = "5")]
    request_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawContent {
    #[prost(bytes = "vec", tag = "1")]
    text: Vec<u8>,
}

async fn raw_send_with_invalid_utf8(
    server: &TestServer,
    user: &TestUser,
    conversation_id: &str,
) -> Result<SendMessageResponse, Status> {
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(RawSendMessageRequest {
        conversation_id: conversation_id.into(),
        content: Some(RawContent {
            text: vec![0x66, 0x6f, 0xff, 0xfe],
        }),
        request_id: "raw".into(),
    });
    let token = format!("Bearer {}", user.client.access_token().expect("token"));
    request
        .metadata_mut()
        .insert("authorization", token.parse().expect("header"));
    let path = http::uri::PathAndQuery::from_static(
        "/secureconnect.message.v1.MessageService/SendMessage",
    );
    let codec = tonic_prost::ProstCodec::<RawSendMessageRequest, SendMessageResponse>::default();
    grpc.unary(request, path, codec)
        .await
        .map(|r| r.into_inner())
}
