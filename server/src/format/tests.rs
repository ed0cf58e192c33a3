//! Golden payloads pin the stored formats byte for byte (`golden/`): a change to the
//! domain types or the proto that alters what is stored fails here first. Regenerate only
//! for an intended, compatible change: `SC_UPDATE_GOLDEN=1 cargo test -p
//! secureconnect-server --lib format`.

use std::{collections::BTreeMap, path::PathBuf};

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::{
    Attachment, CallSignal, Change, ContactRequest, Content, ConversationKind, Details, Event,
    Forwarded, ImageSize, Member, Message, PollRef, Published, Role, Signal, TallySignal, Time,
    TypingSignal, User,
    call::{Call, CallRef, Ending, Participant, Presence},
    poll::Tally,
};

fn uid(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn at(second: u32) -> Time {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, second)
        .single()
        .expect("valid time")
        + chrono::Duration::microseconds(123_456)
}

fn message(seq: u64) -> Message {
    Message {
        id: uid(10),
        conversation_id: uid(1),
        seq,
        sender_id: uid(2),
        content: Some(Content::Text("héllo".into())),
        metadata: BTreeMap::from([("k".into(), "v".into()), ("a".into(), "b".into())]),
        reply_to: Some(uid(11)),
        create_time: at(1),
        edit_time: Some(at(2)),
        delete_time: None,
        forwarded_from: Some(Forwarded {
            sender_id: uid(3),
            create_time: at(0),
        }),
        attachments: Vec::new(),
    }
}

fn poll_message(seq: u64) -> Message {
    Message {
        id: uid(12),
        content: Some(Content::Poll(PollRef {
            poll_id: uid(20),
            question: "Lunch?".into(),
        })),
        metadata: BTreeMap::new(),
        reply_to: None,
        edit_time: None,
        forwarded_from: None,
        ..message(seq)
    }
}

fn attachment_message(seq: u64) -> Message {
    Message {
        id: uid(13),
        content: Some(Content::Text(String::new())),
        attachments: vec![
            Attachment {
                file_id: uid(30),
                name: "cat.jpg".into(),
                size: 123_456,
                content_type: "image/jpeg".into(),
                image: Some(ImageSize {
                    width: 4032,
                    height: 3024,
                }),
            },
            Attachment {
                file_id: uid(31),
                name: "notes.pdf".into(),
                size: 7,
                content_type: "application/pdf".into(),
                image: None,
            },
        ],
        ..message(seq)
    }
}

fn call_message(seq: u64) -> Message {
    Message {
        id: uid(14),
        content: Some(Content::Call(CallRef {
            call_id: uid(40),
            video: true,
        })),
        metadata: BTreeMap::new(),
        reply_to: None,
        edit_time: None,
        forwarded_from: None,
        ..message(seq)
    }
}

/// A group call that was answered and ended by its caller: one member left before the
/// end, one declined, one missed the ring.
fn ended_call() -> Call {
    let member = |presence, joined| Participant { presence, joined };
    Call {
        id: uid(40),
        conversation: uid(1),
        message: uid(14),
        caller: uid(2),
        video: true,
        started: at(20),
        answered: Some(at(25)),
        ended: Some((at(55), Ending::EndedBy(uid(2)))),
        members: BTreeMap::from([
            (uid(2), member(Presence::Left, Some(at(20)))),
            (uid(3), member(Presence::Left, Some(at(25)))),
            (uid(4), member(Presence::Declined, None)),
            (uid(5), member(Presence::Missed, None)),
        ]),
    }
}

/// Kinds added after v0: no v0 node ever wrote them.
const NEWER_THAN_V0: &[&str] = &[
    "poll_message_sent",
    "poll_closed",
    "attachment_message_sent",
    "call_message_sent",
    "call_ended",
];

fn user(n: u8) -> User {
    User {
        id: uid(n),
        email: format!("u{n}@example.com"),
        username: format!("u{n}"),
        display_name: format!("User {n}"),
        avatar_url: String::new(),
        create_time: at(0),
    }
}

fn member(n: u8, role: Role) -> Member {
    Member {
        user_id: uid(n),
        role,
        join_time: at(3),
    }
}

fn conversation(seq: u64, change: Change) -> Event {
    Event::Conversation {
        conversation_id: uid(1),
        seq,
        actor: uid(2),
        time: at(4),
        change,
    }
}

/// One event of every kind and every change, named for their golden files.
fn samples() -> Vec<(&'static str, Event)> {
    let tombstone = Message {
        content: None,
        metadata: BTreeMap::new(),
        delete_time: Some(at(5)),
        ..message(3)
    };
    let encrypted = Message {
        content: Some(Content::Encrypted(vec![0, 1, 2, 255])),
        reply_to: None,
        edit_time: None,
        forwarded_from: None,
        ..message(4)
    };
    vec![
        (
            "created",
            conversation(
                1,
                Change::Created {
                    kind: ConversationKind::Group,
                    details: Details {
                        title: "Team".into(),
                        description: "d".into(),
                        avatar_url: "https://example.com/a.png".into(),
                    },
                    end_to_end_encrypted: false,
                    members: vec![member(2, Role::Owner), member(3, Role::Member)],
                },
            ),
        ),
        (
            "message_sent",
            conversation(2, Change::MessageSent(message(2))),
        ),
        (
            "message_sent_encrypted",
            conversation(4, Change::MessageSent(encrypted)),
        ),
        (
            "message_edited",
            conversation(5, Change::MessageEdited(message(2))),
        ),
        (
            "message_deleted",
            conversation(6, Change::MessageDeleted(tombstone)),
        ),
        (
            "updated",
            conversation(
                7,
                Change::Updated(Details {
                    title: "T2".into(),
                    ..Details::default()
                }),
            ),
        ),
        (
            "members_added",
            conversation(8, Change::MembersAdded(vec![member(4, Role::Member)])),
        ),
        (
            "member_removed",
            conversation(
                9,
                Change::MemberRemoved {
                    user_id: uid(4),
                    left: true,
                },
            ),
        ),
        (
            "role_updated",
            conversation(10, Change::RoleUpdated(member(3, Role::Admin))),
        ),
        ("deleted", conversation(11, Change::Deleted)),
        (
            "poll_message_sent",
            conversation(12, Change::MessageSent(poll_message(12))),
        ),
        (
            "attachment_message_sent",
            conversation(14, Change::MessageSent(attachment_message(14))),
        ),
        (
            "poll_closed",
            conversation(
                13,
                Change::PollClosed {
                    poll_id: uid(20),
                    message_id: uid(12),
                    tally: Tally {
                        counts: vec![(uid(21), 4), (uid(22), 0)],
                        total_voters: 4,
                        version: 9,
                    },
                },
            ),
        ),
        (
            "call_message_sent",
            conversation(15, Change::MessageSent(call_message(15))),
        ),
        (
            "call_ended",
            conversation(16, Change::CallEnded(Box::new(ended_call()))),
        ),
        (
            "read_state",
            Event::ReadState {
                conversation_id: uid(1),
                read_seq: 9,
                time: at(6),
            },
        ),
        (
            "contact_requested",
            Event::ContactRequested(ContactRequest {
                from: user(2),
                to: user(3),
                message: "hi".into(),
                time: at(7),
            }),
        ),
        (
            "contact_added",
            Event::ContactAdded {
                users: [user(2), user(3)],
                time: at(8),
            },
        ),
        (
            "contact_removed",
            Event::ContactRemoved {
                users: [uid(2), uid(3)],
                time: at(9),
            },
        ),
    ]
}

fn golden(name: &str) -> PathBuf {
    crate::crate_dir().join("src/format/golden").join(name)
}

/// The golden file's bytes; with `SC_UPDATE_GOLDEN=1`, (re)writes it from `fresh` first.
fn pinned(name: &str, fresh: &[u8]) -> Vec<u8> {
    let path = golden(name);
    if std::env::var_os("SC_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, fresh).expect("write golden");
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn v1_events_match_their_golden_bytes_and_decode_back() {
    for (name, event) in samples() {
        let bytes = encode_event(&event);
        assert_eq!(bytes[0], V1);
        let golden = pinned(&format!("event_v1_{name}.bin"), &bytes);
        assert_eq!(bytes, golden, "{name}: v1 encoding changed");
        assert_eq!(decode_event(&golden).expect(name), event, "{name}");
    }
}

#[test]
fn v0_json_events_written_before_formats_were_versioned_still_decode() {
    for (name, event) in samples() {
        if NEWER_THAN_V0.contains(&name) {
            continue;
        }
        // What v0 nodes wrote: serde_json of the domain types, then.
        let fresh = serde_json::to_vec(&event).expect("json");
        let golden = pinned(&format!("event_v0_{name}.json"), &fresh);
        assert_eq!(decode_event(&golden).expect(name), event, "{name}");
    }
}

#[test]
fn messages_match_their_golden_bytes_and_v0_json_still_decodes() {
    let sample = message(2);
    let bytes = encode_message(&sample);
    assert_eq!(bytes, pinned("message_v1.bin", &bytes));
    assert_eq!(decode_message(&bytes).expect("v1"), sample);
    let v0 = pinned(
        "message_v0.json",
        &serde_json::to_vec(&sample).expect("json"),
    );
    assert_eq!(decode_message(&v0).expect("v0"), sample);
}

#[test]
fn call_records_match_their_golden_bytes() {
    let call = ended_call();
    let bytes = encode_call(&call);
    let golden = pinned("call_v1.bin", &bytes);
    assert_eq!(bytes, golden, "call encoding changed");
    assert_eq!(decode_call(&golden).expect("call"), call);
}

#[test]
fn attachments_match_their_golden_bytes() {
    let sample = attachment_message(14).attachments;
    let bytes = encode_attachments(&sample);
    assert_eq!(bytes, pinned("attachments_v1.bin", &bytes));
    assert_eq!(decode_attachments(&bytes).expect("v1"), sample);
    assert!(
        decode_attachments(b"{}").is_err(),
        "no JSON was ever written"
    );
}

/// A field a newer node adds (number 1000, a string), appended to a v1 message: what
/// protobuf puts on the wire for a field this node does not know.
fn with_unknown_field(mut v1_bytes: Vec<u8>) -> Vec<u8> {
    // Tag: field 1000, wire type 2 (length-delimited) = (1000 << 3) | 2 = 8002, as a varint.
    v1_bytes.extend_from_slice(&[0xC2, 0x3E]);
    v1_bytes.extend_from_slice(&[3, b'n', b'e', b'w']);
    v1_bytes
}

#[test]
fn a_node_reads_what_a_node_one_version_newer_writes() {
    // Within v1 fields are only added, so an older node skips what it does not know.
    for (name, event) in samples() {
        let newer = with_unknown_field(encode_event(&event));
        assert_eq!(decode_event(&newer).expect(name), event, "{name}");
    }
    let newer = with_unknown_field(encode_message(&message(2)));
    assert_eq!(decode_message(&newer).expect("message"), message(2));
}

#[test]
fn a_format_newer_than_this_node_is_refused_with_a_clear_error() {
    let mut bytes = encode_event(&samples()[0].1);
    bytes[0] = 2;
    let err = decode_event(&bytes).expect_err("format 2");
    assert!(
        err.to_string().contains("newer than this node reads"),
        "{err}"
    );
    assert!(decode_event(&[]).is_err());
}

#[test]
fn bus_messages_round_trip_and_v0_json_envelopes_still_decode() {
    let node = uid(42);
    let payloads = [
        BusPayload::Event(Published {
            event: std::sync::Arc::new(samples()[1].1.clone()),
            recipients: [(uid(2), 7), (uid(3), 9)].into_iter().collect(),
            timeline: None,
        }),
        BusPayload::Event(Published {
            event: std::sync::Arc::new(samples()[1].1.clone()),
            recipients: [(uid(2), 0), (uid(3), 0)].into_iter().collect(),
            timeline: Some(crate::domain::TimelineSpot {
                position: 41,
                opens: true,
            }),
        }),
        BusPayload::SessionRevoked(uid(5)),
        BusPayload::Signal(Signal::Typing(TypingSignal {
            conversation_id: uid(1),
            user_id: uid(2),
            typing: true,
            expire_time: Some(at(10)),
            recipients: vec![uid(3)],
        })),
        BusPayload::Signal(Signal::PollTally(TallySignal {
            conversation_id: uid(1),
            poll_id: uid(6),
            tally: Tally {
                counts: vec![(uid(7), 3), (uid(8), 0)],
                total_voters: 3,
                version: 11,
            },
            recipients: vec![uid(2), uid(3)],
        })),
    ];
    let call_updated = BusPayload::Signal(Signal::CallUpdated(Box::new(CallSignal {
        call: Call {
            answered: None,
            ended: None,
            ..ended_call()
        },
        recipients: vec![uid(2), uid(3), uid(4), uid(5)],
    })));
    for payload in payloads.iter().chain([&call_updated]) {
        let bytes = encode_bus(node, payload);
        let (from, decoded) = decode_bus(&bytes).expect("v1");
        assert_eq!((from, &decoded), (node, payload));
    }
    // What v0 nodes published.
    let v0 = format!(
        r#"{{"node":"{node}","body":{{"type":"session_revoked","session":"{}"}}}}"#,
        uid(5)
    );
    let (from, decoded) = decode_bus(v0.as_bytes()).expect("v0");
    assert_eq!((from, decoded), (node, BusPayload::SessionRevoked(uid(5))));
}
