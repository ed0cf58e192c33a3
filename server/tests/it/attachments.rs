//! Drive files attached to messages, through the real server (local files, and SeaweedFS's
//! S3 on the services pass): members read them and only them, for as long as the message
//! lives; the message shows name, size, type and an image's size; images get a thumbnail.

use std::io::Cursor;

use secureconnect_sdk::{
    Client,
    proto::{
        drive::v1::{DeleteFileRequest, DownloadFileRequest, File, GetThumbnailRequest},
        message::v1::{
            DeleteMessageRequest, ForwardMessageRequest, Message, MessageContent,
            SendMessageRequest, message_content::Body,
        },
    },
};
use tonic::{Code, Status};

use crate::{
    common::*,
    drive::{content, download, folder, readable, upload},
};

/// A `width` × `height` PNG with a gradient, so that it does not compress to nothing.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

async fn send_with(
    user: &TestUser,
    conversation_id: &str,
    text: &str,
    file_ids: &[&str],
) -> Result<Message, Status> {
    user.client
        .messages()
        .send_message(SendMessageRequest {
            conversation_id: conversation_id.into(),
            content: Some(MessageContent {
                body: Some(Body::Text(text.into())),
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            attachment_file_ids: file_ids.iter().map(|id| (*id).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().message.expect("message"))
}

async fn thumbnail(client: &Client, file_id: &str) -> Result<Vec<u8>, Status> {
    client
        .drive()
        .get_thumbnail(GetThumbnailRequest {
            file_id: file_id.into(),
        })
        .await
        .map(|r| r.into_inner().data)
}

async fn try_download(client: &Client, file_id: &str) -> Result<(), Status> {
    let mut stream = client
        .drive()
        .download_file(DownloadFileRequest {
            file_id: file_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

/// An image and a PDF attached to one message: the message (as sent, listed and streamed)
/// shows both; members download them and the image's thumbnail; an outsider gets
/// `NOT_FOUND` for all of it; deleting the message ends the members' access too.
#[tokio::test]
async fn members_read_attachments_and_nobody_else_does() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let mallory = server.register("mallory").await;
    let mut bobs_stream = bob.subscribe("").await;
    until_caught_up(&mut bobs_stream).await;
    let photo_bytes = png(1200, 800);
    let photo = upload(&alice.client, "", "beach.png", &photo_bytes).await;
    let pdf = upload(&alice.client, "", "plan.pdf", b"%PDF-1.7 the plan").await;
    let image = photo.image.expect("an image file knows its size");
    assert_eq!((image.width, image.height), (1200, 800));
    assert!(pdf.image.is_none());

    let sent = send_with(
        &alice,
        &group.conversation_id,
        "",
        &[&photo.file_id, &pdf.file_id],
    )
    .await
    .expect("send with attachments and no caption");
    let shown: Vec<_> = sent
        .attachments
        .iter()
        .map(|a| {
            (
                a.file_id.as_str(),
                a.name.as_str(),
                a.size,
                a.content_type.as_str(),
                a.image.map(|i| (i.width, i.height)),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                photo.file_id.as_str(),
                "beach.png",
                photo_bytes.len() as u64,
                "image/png",
                Some((1200, 800))
            ),
            (
                pdf.file_id.as_str(),
                "plan.pdf",
                17,
                "application/pdf",
                None
            ),
        ]
    );
    let streamed = next_conversation_event(&mut bobs_stream).await;
    assert!(
        format!("{streamed:?}").contains(&photo.file_id),
        "the stream carries the attachments: {streamed:?}"
    );
    let listed = bob.list_messages(&group.conversation_id).await;
    assert_eq!(listed[0].attachments, sent.attachments);

    // Bob, a member, reads both, and the thumbnail.
    assert!(download(&bob.client, &photo.file_id, 0, 0).await == photo_bytes);
    assert!(download(&bob.client, &pdf.file_id, 0, 0).await == b"%PDF-1.7 the plan");
    let thumb = thumbnail(&bob.client, &photo.file_id)
        .await
        .expect("thumbnail");
    let decoded = image::load_from_memory(&thumb).expect("a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (320, 213));
    assert_code(thumbnail(&bob.client, &pdf.file_id).await, Code::NotFound);

    // Mallory, who is not a member, reads nothing.
    assert!(!readable(&mallory.client, &photo.file_id).await);
    assert_code(
        try_download(&mallory.client, &photo.file_id).await,
        Code::NotFound,
    );
    assert_code(
        thumbnail(&mallory.client, &photo.file_id).await,
        Code::NotFound,
    );

    // Deleting the message takes the files out of the conversation.
    alice
        .client
        .messages()
        .delete_message(DeleteMessageRequest {
            conversation_id: group.conversation_id.clone(),
            message_id: sent.message_id.clone(),
        })
        .await
        .expect("delete");
    assert!(!readable(&bob.client, &photo.file_id).await);
    assert_code(
        try_download(&bob.client, &pdf.file_id).await,
        Code::NotFound,
    );
    let tombstone = &bob.list_messages(&group.conversation_id).await[0];
    assert!(tombstone.attachments.is_empty(), "{tombstone:?}");
    assert!(readable(&alice.client, &photo.file_id).await, "still hers");
    server.shutdown().await;
}

/// A forwarded copy takes its attachments along: the target's members may read them. The
/// owner trashing the file ends every reader's access.
#[tokio::test]
async fn forwarding_carries_attachments_and_the_owner_keeps_the_last_word() {
    let server = TestServer::start().await;
    let (alice, [bob], first) = server.group(2).await.into_parts();
    let carol = server.register("carol").await;
    let second = bob.group_with("Elsewhere", &[&carol]).await;
    let notes = upload(&alice.client, "", "notes.txt", b"remember the milk").await;
    // Through the SDK's helper this time.
    let sent = alice
        .client
        .send_files(&first.conversation_id, "notes", vec![notes.file_id.clone()])
        .await
        .expect("send");
    assert!(!readable(&carol.client, &notes.file_id).await);
    let copy = bob
        .client
        .messages()
        .forward_message(ForwardMessageRequest {
            conversation_id: first.conversation_id.clone(),
            message_id: sent.message_id.clone(),
            target_conversation_id: second.conversation_id.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("forward")
        .into_inner()
        .message
        .expect("copy");
    assert_eq!(copy.attachments, sent.attachments);
    assert!(download(&carol.client, &notes.file_id, 0, 0).await == b"remember the milk");

    alice
        .client
        .drive()
        .delete_file(DeleteFileRequest {
            file_id: notes.file_id.clone(),
        })
        .await
        .expect("trash");
    assert!(!readable(&bob.client, &notes.file_id).await);
    assert!(!readable(&carol.client, &notes.file_id).await);
    server.shutdown().await;
}

/// What cannot be attached, each refused with the field that says why, and nothing sent.
#[tokio::test]
async fn only_the_senders_own_files_can_be_attached() {
    let server = TestServer::start().await;
    let (alice, [bob], group) = server.group(2).await.into_parts();
    let mine = upload(&alice.client, "", "mine.bin", &content(1000, 1)).await;
    let bobs = upload(&bob.client, "", "bobs.bin", &content(1000, 2)).await;
    let dir = folder(&alice.client, "", "Folder").await;
    let trashed: File = upload(&alice.client, "", "old.bin", &content(10, 3)).await;
    alice
        .client
        .drive()
        .delete_file(DeleteFileRequest {
            file_id: trashed.file_id.clone(),
        })
        .await
        .expect("trash");
    let conversation = group.conversation_id.as_str();
    for (ids, field) in [
        (vec![bobs.file_id.as_str()], "attachment_file_ids[0]"),
        (
            vec![mine.file_id.as_str(), dir.file_id.as_str()],
            "attachment_file_ids[1]",
        ),
        (vec![trashed.file_id.as_str()], "attachment_file_ids[0]"),
        (
            vec![mine.file_id.as_str(), mine.file_id.as_str()],
            "attachment_file_ids[1]",
        ),
        (vec!["not-an-id"], "attachment_file_ids[0]"),
        (vec![mine.file_id.as_str(); 11], "attachment_file_ids"),
    ] {
        let refused = assert_code(
            send_with(&alice, conversation, "look", &ids).await,
            Code::InvalidArgument,
        );
        assert!(
            violated_fields(&refused).contains(&field.to_owned()),
            "{ids:?}: {refused:?}"
        );
    }
    let refused = assert_code(
        send_with(&alice, conversation, " ", &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&refused), ["content.text"]);
    let secret = alice.create_group("Secret", &[&bob], true).await;
    let refused = alice
        .client
        .messages()
        .send_message(SendMessageRequest {
            conversation_id: secret.conversation_id.clone(),
            content: Some(MessageContent {
                body: Some(Body::EncryptedPayload(vec![1, 2, 3])),
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            attachment_file_ids: vec![mine.file_id.clone()],
            ..Default::default()
        })
        .await;
    let refused = assert_code(refused, Code::FailedPrecondition);
    assert_eq!(reason(&refused), "ENCRYPTION_MISMATCH");
    assert!(bob.list_messages(conversation).await.is_empty());
    assert!(!readable(&bob.client, &mine.file_id).await);
    server.shutdown().await;
}
