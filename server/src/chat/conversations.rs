//! Creating conversations and managing their members.

use uuid::Uuid;

use super::{Chat, request_ids::Fingerprint};
use crate::{
    auth::Principal,
    domain::{ConversationKind, ConversationView, Details, DetailsChanges, Member, Role},
    error::{Error, Reason, Result},
    paging,
    store::{NewConversation, RequestKind},
    users::check_url,
    validate::{self, Violations},
};

/// Most users one call may add to a group.
const MAX_MEMBERS_PER_CALL: usize = 256;

/// Input of `create_conversation`.
#[derive(Debug, Clone, Default)]
pub struct CreateConversation {
    pub kind: Option<ConversationKind>,
    pub member_user_ids: Vec<String>,
    pub title: String,
    pub description: String,
    pub end_to_end_encrypted: bool,
    pub request_id: String,
}

fn parse_user_ids(v: &mut Violations, field: &str, raw: &[String]) -> Vec<Uuid> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, id)| v.id(&format!("{field}[{i}]"), id))
        .collect()
}

impl Chat {
    pub async fn create_conversation(
        &self,
        who: &Principal,
        input: CreateConversation,
    ) -> Result<ConversationView> {
        let mut v = Violations::new();
        let mut others = parse_user_ids(&mut v, "member_user_ids", &input.member_user_ids);
        others.sort();
        others.dedup();
        others.retain(|id| *id != who.user_id);
        validate::request_id(&mut v, "request_id", &input.request_id, false);
        match input.kind {
            None => v.add("type", "required: direct or group"),
            Some(ConversationKind::Direct) => {
                if others.len() != 1 {
                    v.add(
                        "member_user_ids",
                        "a direct conversation needs exactly one other user",
                    );
                }
                if !input.title.is_empty() || !input.description.is_empty() {
                    v.add("title", "direct conversations have no title or description");
                }
            }
            Some(ConversationKind::Group) => {
                v.text("title", input.title.trim(), 1, 128);
                v.text("description", &input.description, 0, 1024);
                if others.len() > MAX_MEMBERS_PER_CALL - 1 {
                    v.add("member_user_ids", "at most 255 other users");
                }
            }
        }
        v.finish()?;
        let kind = input
            .kind
            .ok_or_else(|| Error::invalid("type", "required"))?;
        let request = (!input.request_id.is_empty()).then(|| {
            others
                .iter()
                .fold(
                    Fingerprint::of("create-conversation")
                        .part(&[u8::from(kind == ConversationKind::Group)])
                        .part(input.title.trim().as_bytes())
                        .part(input.description.as_bytes())
                        .part(&[u8::from(input.end_to_end_encrypted)]),
                    |print, id| print.id(*id),
                )
                .key(who.user_id, RequestKind::Conversation, input.request_id)
        });
        // A retry gets the conversation it created before anything else is checked.
        if let Some(request) = &request
            && let Some(first) = self.store.first_use(request).await?
        {
            first.check_retry_of(request)?;
            return self.view(who, first.result_id).await;
        }
        self.require_existing_users("member_user_ids", &others)
            .await?;

        let now = chrono::Utc::now();
        let (direct_key, creator_role) = if kind == ConversationKind::Direct {
            let peer = others[0];
            if self.users.is_blocked_between(who.user_id, peer).await? {
                return Err(Error::PermissionDenied {
                    reason: Reason::Blocked,
                    message: "you cannot start a conversation with this user",
                });
            }
            let (a, b) = if who.user_id < peer {
                (who.user_id, peer)
            } else {
                (peer, who.user_id)
            };
            (Some(format!("{a}:{b}")), Role::Member)
        } else {
            (None, Role::Owner)
        };
        let mut members = vec![Member {
            user_id: who.user_id,
            role: creator_role,
            join_time: now,
        }];
        members.extend(others.iter().map(|&user_id| Member {
            user_id,
            role: Role::Member,
            join_time: now,
        }));
        let new = NewConversation {
            kind,
            creator: who.user_id,
            details: Details {
                title: input.title.trim().to_owned(),
                description: input.description,
                avatar_url: String::new(),
            },
            end_to_end_encrypted: input.end_to_end_encrypted,
            members,
            direct_key,
            request,
        };
        let conversation = self.publish(self.store.create_conversation(new, now).await?);
        self.view(who, conversation.id).await
    }

    pub async fn get_conversation(&self, who: &Principal, id: &str) -> Result<ConversationView> {
        let id = parse_conversation_id(id)?;
        self.view(who, id).await
    }

    pub async fn list_conversations(
        &self,
        who: &Principal,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<ConversationView>, String)> {
        let mut v = Violations::new();
        let size = v.page_size("page_size", page_size, 50, 100);
        v.finish()?;
        let before = paging::decode_time_key("page_token", page_token)?;
        let views = self
            .store
            .conversation_views(who.user_id, before, size)
            .await?;
        let next = paging::next_token(&views, size, |last| {
            paging::encode_time_key(last.conversation.last_activity_time, last.conversation.id)
        });
        Ok((views, next))
    }

    pub async fn update_conversation(
        &self,
        who: &Principal,
        id: &str,
        changes: DetailsChanges,
    ) -> Result<ConversationView> {
        let mut v = Violations::new();
        let id = v.id("conversation.conversation_id", id);
        if let Some(title) = &changes.title {
            v.text("conversation.title", title.trim(), 1, 128);
        }
        if let Some(description) = &changes.description {
            v.text("conversation.description", description, 0, 1024);
        }
        if let Some(url) = &changes.avatar_url {
            check_url(&mut v, "conversation.avatar_url", url);
        }
        v.finish()?;
        let id = id.ok_or(Error::NotFound("conversation"))?;
        self.require_group(who, id).await?;
        let changes = DetailsChanges {
            title: changes.title.map(|title| title.trim().to_owned()),
            ..changes
        };
        let committed = self
            .store
            .update_details(id, who.user_id, changes, chrono::Utc::now())
            .await?;
        self.publish(committed);
        self.view(who, id).await
    }

    pub async fn delete_conversation(&self, who: &Principal, id: &str) -> Result<()> {
        let id = parse_conversation_id(id)?;
        self.require_group(who, id).await?;
        let committed = self
            .store
            .delete_conversation(id, who.user_id, chrono::Utc::now())
            .await?;
        self.publish(committed);
        Ok(())
    }

    pub async fn add_members(
        &self,
        who: &Principal,
        id: &str,
        user_ids: &[String],
    ) -> Result<Vec<Member>> {
        let mut v = Violations::new();
        let id = v.id("conversation_id", id);
        let users = parse_user_ids(&mut v, "user_ids", user_ids);
        if user_ids.is_empty() {
            v.add("user_ids", "required");
        } else if user_ids.len() > MAX_MEMBERS_PER_CALL {
            v.add("user_ids", "at most 256 users per call");
        }
        v.finish()?;
        let id = id.ok_or(Error::NotFound("conversation"))?;
        self.require_group(who, id).await?;
        self.require_existing_users("user_ids", &users).await?;
        let committed = self
            .store
            .add_members(id, who.user_id, &users, chrono::Utc::now())
            .await?;
        Ok(self.publish(committed))
    }

    pub async fn remove_member(&self, who: &Principal, id: &str, user_id: &str) -> Result<()> {
        let mut v = Violations::new();
        let id = v.id("conversation_id", id);
        let target = v.id("user_id", user_id);
        if target == Some(who.user_id) {
            v.add("user_id", "use LeaveConversation to leave");
        }
        v.finish()?;
        let (Some(id), Some(target)) = (id, target) else {
            return Err(Error::NotFound("conversation"));
        };
        self.require_group(who, id).await?;
        let committed = self
            .store
            .remove_member(id, who.user_id, target, chrono::Utc::now())
            .await?;
        self.publish(committed);
        Ok(())
    }

    pub async fn leave_conversation(&self, who: &Principal, id: &str) -> Result<()> {
        let id = parse_conversation_id(id)?;
        self.require_group(who, id).await?;
        let committed = self
            .store
            .remove_member(id, who.user_id, who.user_id, chrono::Utc::now())
            .await?;
        self.publish(committed);
        Ok(())
    }

    pub async fn update_member_role(
        &self,
        who: &Principal,
        id: &str,
        user_id: &str,
        role: Option<Role>,
    ) -> Result<Member> {
        let mut v = Violations::new();
        let id = v.id("conversation_id", id);
        let target = v.id("user_id", user_id);
        if role.is_none() {
            v.add("role", "required: member, admin or owner");
        }
        v.finish()?;
        let (Some(id), Some(target), Some(role)) = (id, target, role) else {
            return Err(Error::NotFound("conversation"));
        };
        self.require_group(who, id).await?;
        let committed = self
            .store
            .set_role(id, who.user_id, target, role, chrono::Utc::now())
            .await?;
        Ok(self.publish(committed))
    }

    pub async fn list_members(
        &self,
        who: &Principal,
        id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Member>, String)> {
        let mut v = Violations::new();
        let id = v.id("conversation_id", id);
        let size = v.page_size("page_size", page_size, 100, 500);
        v.finish()?;
        let id = id.ok_or(Error::NotFound("conversation"))?;
        let after = paging::decode_time_key("page_token", page_token)?;
        self.membership(id, who.user_id).await?;
        let members = self.store.members(id, after, size).await?;
        let next = paging::next_token(&members, size, |last| {
            paging::encode_time_key(last.join_time, last.user_id)
        });
        Ok((members, next))
    }

    pub async fn mark_read(&self, who: &Principal, id: &str, seq: u64) -> Result<u64> {
        let mut v = Violations::new();
        let id = v.id("conversation_id", id);
        if seq == 0 {
            v.add("seq", "required (> 0)");
        }
        v.finish()?;
        let id = id.ok_or(Error::NotFound("conversation"))?;
        self.membership(id, who.user_id).await?;
        let committed = self
            .store
            .mark_read(id, who.user_id, seq, chrono::Utc::now())
            .await?;
        Ok(self.publish(committed))
    }

    async fn view(&self, who: &Principal, id: Uuid) -> Result<ConversationView> {
        self.store
            .conversation_view(who.user_id, id)
            .await?
            .ok_or(Error::NotFound("conversation"))
    }

    /// Refuses direct conversations (`NOT_FOUND` for non-members, as everywhere). A
    /// conversation's kind never changes, so checking it ahead of the write is safe; the
    /// caller's role can change, so the store checks it in the write (`domain::rules`).
    async fn require_group(&self, who: &Principal, id: Uuid) -> Result<()> {
        let (conversation, _) = self.as_member(id, who.user_id).await?;
        if conversation.kind != ConversationKind::Group {
            return Err(Error::invalid(
                "conversation_id",
                "only groups have members to manage",
            ));
        }
        Ok(())
    }

    async fn require_existing_users(&self, field: &str, ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let existing = self.users.existing_users(ids).await?;
        let mut v = Violations::new();
        for (i, id) in ids.iter().enumerate() {
            if !existing.contains(id) {
                v.add(&format!("{field}[{i}]"), "no such user");
            }
        }
        v.finish()
    }
}

fn parse_conversation_id(raw: &str) -> Result<Uuid> {
    let mut v = Violations::new();
    let id = v.id("conversation_id", raw);
    v.finish()?;
    id.ok_or(Error::NotFound("conversation"))
}

impl Chat {
    /// Takes `user` out of every conversation (account deletion). A group the user alone
    /// owned passes to its longest-standing remaining member, so it is never left ownerless.
    pub async fn leave_all(&self, user: Uuid) -> Result<()> {
        let views = self
            .store
            .conversation_views(user, None, u64::from(u32::MAX))
            .await?;
        for view in views {
            let id = view.conversation.id;
            let now = chrono::Utc::now();
            if view.conversation.kind == ConversationKind::Group
                && view.membership.role == Role::Owner
            {
                let members = self.store.members(id, None, u64::from(u32::MAX)).await?;
                let other_owner = members
                    .iter()
                    .any(|m| m.role == Role::Owner && m.user_id != user);
                if let Some(heir) = members.iter().find(|m| m.user_id != user)
                    && !other_owner
                {
                    let committed = self
                        .store
                        .set_role(id, user, heir.user_id, Role::Owner, now)
                        .await?;
                    self.publish(committed);
                }
            }
            let committed = self.store.remove_member(id, user, user, now).await?;
            self.publish(committed);
        }
        Ok(())
    }
}
