//! Who may change what in a conversation. Pure functions over facts the store reads
//! *inside* the write, after it has locked the conversation: a check made before the
//! transaction could be overtaken by a removal or demotion committing in between.

use uuid::Uuid;

use super::{Content, Role};
use crate::error::{Error, Reason, Result};

/// A change a member asks for, with what the rule needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    EditDetails,
    DeleteGroup,
    AddMembers,
    /// Removing someone else, whose role is `target`.
    Remove {
        target: Role,
    },
    /// Leaving, with the group's current owner and member counts.
    Leave {
        owners: usize,
        members: usize,
    },
    /// Changing the role of a member who has role `target` now to `to`.
    SetRole {
        target: Role,
        to: Role,
        owners: usize,
    },
    /// Editing a message written by `author`.
    EditMessage {
        author: Uuid,
    },
    /// Deleting a message written by `author`.
    DeleteMessage {
        author: Uuid,
    },
    /// Closing a poll created by `creator`.
    ClosePoll {
        creator: Uuid,
    },
}

/// The first rule: only members act in a conversation (`role` is `None` for anyone
/// else). Non-members get `NOT_FOUND`: to them the conversation does not exist, and
/// nothing about it (members, messages) may be looked up for them before this check.
pub fn member(role: Option<Role>) -> Result<Role> {
    role.ok_or(Error::NotFound("conversation"))
}

/// Whether `actor`, a member with `role`, may do `act`.
pub fn authorize(actor: Uuid, role: Role, act: Act) -> Result<()> {
    match act {
        Act::EditDetails if role < Role::Admin => Err(insufficient_role(
            "only owners and admins can edit the group",
        )),
        Act::DeleteGroup if role != Role::Owner => {
            Err(insufficient_role("only owners can delete the group"))
        }
        Act::AddMembers if role < Role::Admin => {
            Err(insufficient_role("only owners and admins can add members"))
        }
        Act::Remove { target }
            if !(role == Role::Owner || (role == Role::Admin && target == Role::Member)) =>
        {
            Err(insufficient_role(
                "owners remove anyone; admins remove plain members",
            ))
        }
        Act::Leave { owners, members } if role == Role::Owner && members > 1 => {
            keeps_an_owner(owners.saturating_sub(1))
        }
        Act::SetRole { .. } if role != Role::Owner => {
            Err(insufficient_role("only owners can change roles"))
        }
        Act::SetRole { target, to, owners } if target == Role::Owner && to != Role::Owner => {
            keeps_an_owner(owners.saturating_sub(1))
        }
        Act::EditMessage { author } if author != actor => Err(Error::PermissionDenied {
            reason: Reason::NotAuthor,
            message: "only the author can edit a message",
        }),
        Act::DeleteMessage { author } if author != actor && role < Role::Admin => {
            Err(Error::PermissionDenied {
                reason: Reason::NotAuthor,
                message: "only the author or a group admin can delete a message",
            })
        }
        Act::ClosePoll { creator } if creator != actor && role < Role::Admin => {
            Err(Error::PermissionDenied {
                reason: Reason::NotAuthor,
                message: "only the poll's creator or a group admin can close it",
            })
        }
        _ => Ok(()),
    }
}

/// Whether `content` (with files attached or not) may be posted in a conversation that is
/// end-to-end encrypted or not: ciphertext only where it is, plain text only where it is
/// not, and the server attaches files only where it can read them. A poll or a call is
/// never encrypted (the server counts the votes and runs the call), in any conversation.
pub fn fits_encryption(
    end_to_end_encrypted: bool,
    content: &Content,
    attaching: bool,
) -> Result<()> {
    match (end_to_end_encrypted, content) {
        (true, Content::Text(_)) => {
            return Err(encryption_mismatch(
                "this conversation is end-to-end encrypted: send encrypted_payload",
            ));
        }
        (false, Content::Encrypted(_)) => {
            return Err(encryption_mismatch(
                "encrypted_payload is only allowed in end-to-end encrypted conversations",
            ));
        }
        _ => {}
    }
    if attaching && end_to_end_encrypted {
        return Err(encryption_mismatch(
            "the server does not attach files in end-to-end encrypted conversations: upload ciphertext and share it",
        ));
    }
    Ok(())
}

fn encryption_mismatch(message: &'static str) -> Error {
    Error::FailedPrecondition {
        reason: Reason::EncryptionMismatch,
        message,
    }
}

/// A group always has an owner: refuses a change that would leave `owners_after` at 0.
fn keeps_an_owner(owners_after: usize) -> Result<()> {
    if owners_after == 0 {
        return Err(Error::FailedPrecondition {
            reason: Reason::LastOwner,
            message: "a group needs an owner: make someone else owner first",
        });
    }
    Ok(())
}

fn insufficient_role(message: &'static str) -> Error {
    Error::PermissionDenied {
        reason: Reason::InsufficientRole,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "ok", "not found", or the refusal's reason.
    fn outcome(actor: Uuid, role: Option<Role>, act: Act) -> String {
        match member(role).and_then(|role| authorize(actor, role, act)) {
            Ok(()) => "ok".into(),
            Err(Error::NotFound(_)) => "not found".into(),
            Err(
                Error::PermissionDenied { reason, .. } | Error::FailedPrecondition { reason, .. },
            ) => {
                format!("{reason:?}")
            }
            Err(other) => format!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ciphertext_only_where_encrypted_and_files_only_where_readable() {
        let text = Content::Text("hi".into());
        let sealed = Content::Encrypted(vec![1, 2, 3]);
        let reason = |result: Result<()>| match result {
            Ok(()) => "ok".to_owned(),
            Err(Error::FailedPrecondition { reason, .. }) => format!("{reason:?}"),
            Err(other) => format!("unexpected {other:?}"),
        };
        assert_eq!(reason(fits_encryption(false, &text, true)), "ok");
        assert_eq!(reason(fits_encryption(true, &sealed, false)), "ok");
        assert_eq!(
            reason(fits_encryption(true, &text, false)),
            "EncryptionMismatch"
        );
        assert_eq!(
            reason(fits_encryption(false, &sealed, false)),
            "EncryptionMismatch"
        );
        assert_eq!(
            reason(fits_encryption(true, &sealed, true)),
            "EncryptionMismatch"
        );
    }

    #[test]
    fn non_members_see_nothing() {
        let me = Uuid::now_v7();
        for act in [
            Act::EditDetails,
            Act::Leave {
                owners: 1,
                members: 1,
            },
            Act::EditMessage { author: me },
        ] {
            assert_eq!(outcome(me, None, act), "not found");
        }
    }

    #[test]
    fn roles_gate_group_management() {
        let me = Uuid::now_v7();
        let (member, admin, owner) = (Some(Role::Member), Some(Role::Admin), Some(Role::Owner));
        assert_eq!(outcome(me, member, Act::EditDetails), "InsufficientRole");
        assert_eq!(outcome(me, admin, Act::EditDetails), "ok");
        assert_eq!(outcome(me, admin, Act::DeleteGroup), "InsufficientRole");
        assert_eq!(outcome(me, owner, Act::DeleteGroup), "ok");
        assert_eq!(outcome(me, member, Act::AddMembers), "InsufficientRole");
        assert_eq!(outcome(me, admin, Act::AddMembers), "ok");
        let remove_admin = Act::Remove {
            target: Role::Admin,
        };
        assert_eq!(outcome(me, admin, remove_admin), "InsufficientRole");
        assert_eq!(outcome(me, owner, remove_admin), "ok");
        let remove_member = Act::Remove {
            target: Role::Member,
        };
        assert_eq!(outcome(me, member, remove_member), "InsufficientRole");
        assert_eq!(outcome(me, admin, remove_member), "ok");
        let promote = Act::SetRole {
            target: Role::Member,
            to: Role::Admin,
            owners: 1,
        };
        assert_eq!(outcome(me, admin, promote), "InsufficientRole");
        assert_eq!(outcome(me, owner, promote), "ok");
    }

    #[test]
    fn the_last_owner_stays() {
        let me = Uuid::now_v7();
        let owner = Some(Role::Owner);
        let leave = |owners, members| Act::Leave { owners, members };
        assert_eq!(outcome(me, owner, leave(1, 2)), "LastOwner");
        assert_eq!(outcome(me, owner, leave(2, 2)), "ok");
        // Alone in the group: nobody is left without an owner.
        assert_eq!(outcome(me, owner, leave(1, 1)), "ok");
        let demote = |owners| Act::SetRole {
            target: Role::Owner,
            to: Role::Admin,
            owners,
        };
        assert_eq!(outcome(me, owner, demote(1)), "LastOwner");
        assert_eq!(outcome(me, owner, demote(2)), "ok");
    }

    #[test]
    fn authors_edit_and_admins_moderate() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (member, admin, owner) = (Some(Role::Member), Some(Role::Admin), Some(Role::Owner));
        assert_eq!(outcome(me, member, Act::EditMessage { author: me }), "ok");
        assert_eq!(
            outcome(me, owner, Act::EditMessage { author: other }),
            "NotAuthor"
        );
        assert_eq!(outcome(me, member, Act::DeleteMessage { author: me }), "ok");
        assert_eq!(
            outcome(me, member, Act::DeleteMessage { author: other }),
            "NotAuthor"
        );
        assert_eq!(
            outcome(me, admin, Act::DeleteMessage { author: other }),
            "ok"
        );
    }
}
