//! `UserStore`, `SessionStore` and `ContactStore`: accounts, blocks, sessions and their
//! refresh tokens, emailed codes, contacts.

use chrono::{Duration, Utc};
use secureconnect_server::{
    domain::Session,
    error::{Error, Reason},
    store::{CodePurpose, ContactOutcome, NewUser, OneTimeCode, RefreshOutcome, RefreshRecord},
};
use uuid::Uuid;

use super::{Stores, fixtures::user};

fn new_user(email: &str, username: &str) -> NewUser {
    NewUser {
        email: email.into(),
        username: username.into(),
        display_name: username.into(),
        password_hash: "not-a-real-hash".into(),
    }
}

fn taken_reason(result: &Result<secureconnect_server::domain::User, Error>) -> Option<Reason> {
    match result {
        Err(Error::AlreadyExists { reason, .. }) => Some(*reason),
        _ => None,
    }
}

pub async fn emails_and_usernames_are_unique(stores: &Stores) {
    let now = Utc::now();
    stores
        .users
        .create_user(new_user("ann@example.com", "ann"), now)
        .await
        .expect("first");
    let same_email = stores
        .users
        .create_user(new_user("ann@example.com", "ann2"), now)
        .await;
    assert_eq!(
        taken_reason(&same_email),
        Some(Reason::EmailTaken),
        "{same_email:?}"
    );
    let same_name = stores
        .users
        .create_user(new_user("other@example.com", "ann"), now)
        .await;
    assert_eq!(
        taken_reason(&same_name),
        Some(Reason::UsernameTaken),
        "{same_name:?}"
    );
}

pub async fn blocks_count_both_ways_and_hide_from_search(stores: &Stores) {
    let (ann, bob) = (user(stores, "ann").await, user(stores, "bob").await);
    let searching = |viewer| stores.users.search_users(viewer, "b", None, 10);
    assert_eq!(
        searching(ann).await.expect("search").len(),
        1,
        "bob is found"
    );
    stores
        .users
        .block(bob, ann, Utc::now())
        .await
        .expect("block");
    assert!(
        stores
            .users
            .is_blocked_between(ann, bob)
            .await
            .expect("check")
    );
    assert!(
        stores
            .users
            .is_blocked_between(bob, ann)
            .await
            .expect("check")
    );
    assert!(
        searching(ann).await.expect("search").is_empty(),
        "bob blocked ann"
    );
    let blocked = stores
        .users
        .blocked_users(bob, None, 10)
        .await
        .expect("list");
    assert_eq!(
        blocked.iter().map(|(u, _)| u.id).collect::<Vec<_>>(),
        vec![ann]
    );
    stores.users.unblock(bob, ann).await.expect("unblock");
    assert!(
        !stores
            .users
            .is_blocked_between(ann, bob)
            .await
            .expect("check")
    );
}

pub async fn a_deleted_user_frees_email_and_username(stores: &Stores) {
    let ann = user(stores, "ann").await;
    stores
        .users
        .delete_user(ann, Utc::now())
        .await
        .expect("delete");
    assert!(stores.users.user(ann).await.expect("read").is_none());
    assert!(
        stores
            .users
            .user_by_email("ann@example.com")
            .await
            .expect("read")
            .is_none()
    );
    stores
        .users
        .create_user(new_user("ann@example.com", "ann"), Utc::now())
        .await
        .expect("the email and username are free again");
}

fn session(user_id: Uuid) -> Session {
    let now = Utc::now();
    Session {
        id: Uuid::now_v7(),
        user_id,
        device_name: "suite".into(),
        device_platform: "test".into(),
        create_time: now,
        last_refresh_time: now,
    }
}

fn refresh(hash: &str) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.as_bytes().to_vec(),
        expire_time: Utc::now() + Duration::days(30),
    }
}

pub async fn a_refresh_token_rotates_once_and_its_reuse_is_reported(stores: &Stores) {
    let ann = user(stores, "ann").await;
    let first = session(ann);
    stores
        .sessions
        .create_session(first.clone(), refresh("t1"))
        .await
        .expect("session");
    let rotated = stores
        .sessions
        .rotate_refresh(b"t1", refresh("t2"), Utc::now())
        .await
        .expect("rotate");
    assert!(
        matches!(rotated, RefreshOutcome::Rotated(ref s) if s.id == first.id),
        "{rotated:?}"
    );
    // Presenting t1 again is reuse: the session is revoked, t2 stops working.
    let reused = stores
        .sessions
        .rotate_refresh(b"t1", refresh("t3"), Utc::now())
        .await
        .expect("reuse");
    assert!(matches!(reused, RefreshOutcome::Reused { session_id } if session_id == first.id));
    let after = stores
        .sessions
        .rotate_refresh(b"t2", refresh("t4"), Utc::now())
        .await
        .expect("after");
    assert!(matches!(after, RefreshOutcome::Invalid), "{after:?}");
    let unknown = stores
        .sessions
        .rotate_refresh(b"never", refresh("t5"), Utc::now())
        .await
        .expect("unknown");
    assert!(matches!(unknown, RefreshOutcome::Invalid));
}

pub async fn revoking_sessions_keeps_the_current_one(stores: &Stores) {
    let ann = user(stores, "ann").await;
    let sessions: Vec<Session> = (0..3).map(|_| session(ann)).collect();
    for (i, s) in sessions.iter().enumerate() {
        stores
            .sessions
            .create_session(s.clone(), refresh(&format!("r{i}")))
            .await
            .expect("session");
    }
    let since = Utc::now() - Duration::seconds(1);
    let revoked = stores
        .sessions
        .revoke_other_sessions(ann, Some(sessions[0].id), Utc::now())
        .await
        .expect("revoke");
    assert_eq!(revoked.len(), 2);
    assert!(!revoked.contains(&sessions[0].id));
    let active = stores.sessions.sessions(ann, None, 10).await.expect("list");
    assert_eq!(
        active.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![sessions[0].id]
    );
    let recent = stores.sessions.revoked_since(since).await.expect("revoked");
    assert!(revoked.iter().all(|id| recent.contains(id)));
    assert!(
        !stores
            .sessions
            .revoke_session(ann, sessions[1].id, Utc::now())
            .await
            .expect("again"),
        "already revoked"
    );
}

pub async fn one_time_codes_are_single_use_and_purpose_bound(stores: &Stores) {
    let ann = user(stores, "ann").await;
    let code = |hash: &str, expire_in: Duration| OneTimeCode {
        code_hash: hash.as_bytes().to_vec(),
        purpose: CodePurpose::PasswordReset,
        user_id: ann,
        new_email: None,
        expire_time: Utc::now() + expire_in,
    };
    stores
        .sessions
        .create_code(code("c1", Duration::minutes(10)))
        .await
        .expect("code");
    stores
        .sessions
        .create_code(code("old", Duration::minutes(-1)))
        .await
        .expect("code");
    let consume = |hash: &'static str, purpose| {
        stores
            .sessions
            .consume_code(hash.as_bytes(), purpose, Utc::now())
    };
    assert!(
        consume("c1", CodePurpose::EmailChange)
            .await
            .expect("other purpose")
            .is_none()
    );
    let used = consume("c1", CodePurpose::PasswordReset)
        .await
        .expect("use");
    assert_eq!(used.map(|c| c.user_id), Some(ann));
    assert!(
        consume("c1", CodePurpose::PasswordReset)
            .await
            .expect("twice")
            .is_none()
    );
    assert!(
        consume("old", CodePurpose::PasswordReset)
            .await
            .expect("expired")
            .is_none()
    );
}

pub async fn crossed_contact_requests_connect(stores: &Stores) {
    let (ann, bob) = (user(stores, "ann").await, user(stores, "bob").await);
    let asked = stores
        .contacts
        .request_contact(ann, bob, "hi".into(), Utc::now())
        .await
        .expect("ask");
    assert!(matches!(asked.value, ContactOutcome::Pending(_)));
    assert!(
        asked
            .published
            .expect("event")
            .recipients
            .contains_key(&bob)
    );
    let incoming = stores
        .contacts
        .contact_requests(bob, true, None, 10)
        .await
        .expect("list");
    assert_eq!(incoming.len(), 1);
    // Bob asks Ann too: that is a yes.
    let crossed = stores
        .contacts
        .request_contact(bob, ann, String::new(), Utc::now())
        .await
        .expect("cross");
    assert!(
        matches!(crossed.value, ContactOutcome::Connected(_)),
        "{:?}",
        crossed.value
    );
    for (user, other) in [(ann, bob), (bob, ann)] {
        let contacts = stores
            .contacts
            .contacts(user, None, 10)
            .await
            .expect("contacts");
        assert_eq!(contacts.len(), 1, "{contacts:?}");
        assert_eq!(contacts[0].user.id, other);
    }
    assert!(
        stores
            .contacts
            .contact_requests(bob, true, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    let again = stores
        .contacts
        .request_contact(ann, bob, String::new(), Utc::now())
        .await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
}

pub async fn removing_a_contact_removes_it_both_ways(stores: &Stores) {
    let (ann, bob) = (user(stores, "ann").await, user(stores, "bob").await);
    stores
        .contacts
        .request_contact(ann, bob, String::new(), Utc::now())
        .await
        .expect("ask");
    let accepted = stores
        .contacts
        .respond_contact(bob, ann, true, Utc::now())
        .await
        .expect("accept");
    assert!(accepted.value.is_some());
    stores
        .contacts
        .remove_contact(bob, ann, Utc::now())
        .await
        .expect("remove");
    for user in [ann, bob] {
        assert!(
            stores
                .contacts
                .contacts(user, None, 10)
                .await
                .expect("contacts")
                .is_empty()
        );
    }
}
