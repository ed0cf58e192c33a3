//! `ConversationService`, as alice: the owner of a group with bob (`server.group(2)`), and
//! in a direct conversation with him where the RPC treats directs differently.

use secureconnect_sdk::proto::conversation::v1::*;
use tonic::Code;

use super::{NOT_AN_ID, UNKNOWN_ID, invalid, mask};
use crate::common::*;

/// The group is as `server.group(2)` made it: same title, two members, and nothing in its
/// timeline after its creation.
async fn assert_group_unchanged(team: &Group) {
    let after = team
        .owner
        .client
        .conversations()
        .get_conversation(GetConversationRequest {
            conversation_id: team.conversation.conversation_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .conversation
        .expect("c");
    assert_eq!(
        (after.title.as_str(), after.member_count, after.last_seq),
        (Group::TITLE, 2, 1)
    );
}

fn create(kind: ConversationType, members: Vec<String>, title: &str) -> CreateConversationRequest {
    CreateConversationRequest {
        r#type: kind.into(),
        member_user_ids: members,
        title: title.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_conversation() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let convs = alice.client.conversations();
    invalid(
        "create: no type",
        convs
            .clone()
            .create_conversation(create(
                ConversationType::Unspecified,
                vec![bob.id.clone()],
                "",
            ))
            .await,
        "type",
    );
    invalid(
        "create: direct without peer",
        convs
            .clone()
            .create_conversation(create(ConversationType::Direct, vec![], ""))
            .await,
        "member_user_ids",
    );
    invalid(
        "create: direct with title",
        convs
            .clone()
            .create_conversation(create(ConversationType::Direct, vec![bob.id.clone()], "t"))
            .await,
        "title",
    );
    invalid(
        "create: group without title",
        convs
            .clone()
            .create_conversation(create(ConversationType::Group, vec![], ""))
            .await,
        "title",
    );
    invalid(
        "create: bad member id",
        convs
            .clone()
            .create_conversation(create(ConversationType::Group, vec![NOT_AN_ID.into()], "t"))
            .await,
        "member_user_ids[0]",
    );
    invalid(
        "create: unknown member",
        convs
            .clone()
            .create_conversation(create(
                ConversationType::Group,
                vec![UNKNOWN_ID.into()],
                "t",
            ))
            .await,
        "member_user_ids[0]",
    );
    let long_request = CreateConversationRequest {
        request_id: "r".repeat(65),
        ..create(ConversationType::Group, vec![], "t")
    };
    invalid(
        "create: long request id",
        convs.clone().create_conversation(long_request).await,
        "request_id",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn get_conversation() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let convs = alice.client.conversations();
    invalid(
        "get: bad id",
        convs
            .clone()
            .get_conversation(GetConversationRequest {
                conversation_id: NOT_AN_ID.into(),
            })
            .await,
        "conversation_id",
    );
    assert_code(
        convs
            .clone()
            .get_conversation(GetConversationRequest {
                conversation_id: UNKNOWN_ID.into(),
            })
            .await,
        Code::NotFound,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_conversations() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let convs = alice.client.conversations();
    invalid(
        "list: page size",
        convs
            .clone()
            .list_conversations(ListConversationsRequest {
                page_size: 101,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "list: token",
        convs
            .clone()
            .list_conversations(ListConversationsRequest {
                page_token: "nope".into(),
                ..Default::default()
            })
            .await,
        "page_token",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn update_conversation() {
    let server = TestServer::start().await;
    let team = server.group(2).await;
    let (alice, bob) = (&team.owner, &team.members[0]);
    let direct = alice.direct_with(bob).await;
    let convs = alice.client.conversations();
    let update = |conversation_id: &str, title: &str, paths: &[&str]| UpdateConversationRequest {
        conversation: Some(Conversation {
            conversation_id: conversation_id.into(),
            title: title.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let gid = team.conversation.conversation_id.as_str();
    invalid(
        "update: no mask",
        convs
            .clone()
            .update_conversation(update(gid, "x", &[]))
            .await,
        "update_mask",
    );
    invalid(
        "update: bad path",
        convs
            .clone()
            .update_conversation(update(gid, "x", &["settings"]))
            .await,
        "update_mask",
    );
    invalid(
        "update: long title",
        convs
            .clone()
            .update_conversation(update(gid, &"t".repeat(129), &["title"]))
            .await,
        "conversation.title",
    );
    invalid(
        "update: direct",
        convs
            .clone()
            .update_conversation(update(&direct.conversation_id, "x", &["title"]))
            .await,
        "conversation_id",
    );
    assert_group_unchanged(&team).await;
    server.shutdown().await;
}

#[tokio::test]
async fn delete_conversation() {
    let server = TestServer::start().await;
    let team = server.group(2).await;
    let (alice, bob) = (&team.owner, &team.members[0]);
    let direct = alice.direct_with(bob).await;
    let convs = alice.client.conversations();
    let delete = |conversation_id: &str| DeleteConversationRequest {
        conversation_id: conversation_id.into(),
    };
    invalid(
        "delete: no id",
        convs.clone().delete_conversation(delete("")).await,
        "conversation_id",
    );
    invalid(
        "delete: bad id",
        convs.clone().delete_conversation(delete(NOT_AN_ID)).await,
        "conversation_id",
    );
    invalid(
        "delete: direct",
        convs
            .clone()
            .delete_conversation(delete(&direct.conversation_id))
            .await,
        "conversation_id",
    );
    convs
        .clone()
        .get_conversation(GetConversationRequest {
            conversation_id: direct.conversation_id.clone(),
        })
        .await
        .expect("the direct conversation is still there");
    assert_group_unchanged(&team).await;
    server.shutdown().await;
}

#[tokio::test]
async fn add_members() {
    let server = TestServer::start().await;
    let team = server.group(2).await;
    let convs = team.owner.client.conversations();
    let add = |user_ids: Vec<String>| AddMembersRequest {
        conversation_id: team.conversation.conversation_id.clone(),
        user_ids,
    };
    invalid(
        "add: none",
        convs.clone().add_members(add(vec![])).await,
        "user_ids",
    );
    invalid(
        "add: bad id",
        convs.clone().add_members(add(vec![NOT_AN_ID.into()])).await,
        "user_ids[0]",
    );
    invalid(
        "add: unknown",
        convs
            .clone()
            .add_members(add(vec![UNKNOWN_ID.into()]))
            .await,
        "user_ids[0]",
    );
    invalid(
        "add: too many",
        convs
            .clone()
            .add_members(add(vec![UNKNOWN_ID.into(); 257]))
            .await,
        "user_ids",
    );
    assert_group_unchanged(&team).await;
    server.shutdown().await;
}

#[tokio::test]
async fn remove_member() {
    let server = TestServer::start().await;
    let team = server.group(2).await;
    let alice = &team.owner;
    let convs = alice.client.conversations();
    let remove = |user_id: &str| RemoveMemberRequest {
        conversation_id: team.conversation.conversation_id.clone(),
        user_id: user_id.into(),
    };
    invalid(
        "remove: self",
        convs.clone().remove_member(remove(&alice.id)).await,
        "user_id",
    );
    invalid(
        "remove: bad id",
        convs.clone().remove_member(remove(NOT_AN_ID)).await,
        "user_id",
    );
    assert_code(
        convs.clone().remove_member(remove(UNKNOWN_ID)).await,
        Code::NotFound,
    );
    assert_group_unchanged(&team).await;
    server.shutdown().await;
}

#[tokio::test]
async fn leave_conversation() {
    let server = TestServer::start().await;
    let (alice, bob) = server.pair().await;
    let direct = alice.direct_with(&bob).await;
    let convs = alice.client.conversations();
    invalid(
        "leave: bad id",
        convs
            .clone()
            .leave_conversation(LeaveConversationRequest {
                conversation_id: NOT_AN_ID.into(),
            })
            .await,
        "conversation_id",
    );
    invalid(
        "leave: direct",
        convs
            .clone()
            .leave_conversation(LeaveConversationRequest {
                conversation_id: direct.conversation_id.clone(),
            })
            .await,
        "conversation_id",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn update_member_role() {
    let server = TestServer::start().await;
    let team = server.group(2).await;
    let convs = team.owner.client.conversations();
    let role = |role: i32| UpdateMemberRoleRequest {
        conversation_id: team.conversation.conversation_id.clone(),
        user_id: team.members[0].id.clone(),
        role,
    };
    invalid(
        "role: none",
        convs.clone().update_member_role(role(0)).await,
        "role",
    );
    invalid(
        "role: unknown value",
        convs.clone().update_member_role(role(42)).await,
        "role",
    );
    assert_group_unchanged(&team).await;
    server.shutdown().await;
}

#[tokio::test]
async fn list_members() {
    let server = TestServer::start().await;
    let team = server.group(2).await;
    let convs = team.owner.client.conversations();
    invalid(
        "members: page size",
        convs
            .clone()
            .list_members(ListMembersRequest {
                conversation_id: team.conversation.conversation_id.clone(),
                page_size: 501,
                ..Default::default()
            })
            .await,
        "page_size",
    );
    invalid(
        "members: bad id",
        convs
            .clone()
            .list_members(ListMembersRequest {
                conversation_id: NOT_AN_ID.into(),
                ..Default::default()
            })
            .await,
        "conversation_id",
    );
    server.shutdown().await;
}

#[tokio::test]
async fn mark_conversation_read() {
    let server = TestServer::start().await;
    let team = server.group(2).await;
    invalid(
        "read: zero",
        team.owner
            .client
            .conversations()
            .mark_conversation_read(MarkConversationReadRequest {
                conversation_id: team.conversation.conversation_id.clone(),
                seq: 0,
            })
            .await,
        "seq",
    );
    assert_group_unchanged(&team).await;
    server.shutdown().await;
}
