//! sea-orm entities: the relational schema shared by SQLite and PostgreSQL.
//! Times are UTC; sequence numbers are `i64` because SQL has no unsigned integers.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod users {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub email: String,
        #[sea_orm(unique)]
        pub username: String,
        pub display_name: String,
        /// Lowercased display name, for case-insensitive prefix search on any backend.
        pub search_name: String,
        pub avatar_url: String,
        pub password_hash: String,
        /// Latest position in this user's event feed.
        pub feed_seq: i64,
        pub create_time: DateTimeUtc,
        /// Set when the account was deleted; the row stays so old messages keep an author.
        pub delete_time: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod blocks {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "blocks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub blocker_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blocked_id: Uuid,
        pub create_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod sessions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub device_name: String,
        pub device_platform: String,
        pub create_time: DateTimeUtc,
        pub last_refresh_time: DateTimeUtc,
        pub revoke_time: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod refresh_tokens {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        /// SHA-256 of the token: a database leak does not leak usable tokens.
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: Vec<u8>,
        pub session_id: Uuid,
        pub expire_time: DateTimeUtc,
        pub used: bool,
    }
    no_relations!();
}

pub mod conversations {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "conversations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// 1 = direct, 2 = group.
        pub kind: i16,
        pub title: String,
        pub description: String,
        pub avatar_url: String,
        pub end_to_end_encrypted: bool,
        pub creator_id: Uuid,
        /// Client request id of the creating call. No longer written since migration
        /// m0003: request ids live in `request_ids`.
        pub request_id: Option<String>,
        /// `"<lower uuid>:<higher uuid>"` for direct conversations: one per pair.
        #[sea_orm(unique)]
        pub direct_key: Option<String>,
        pub create_time: DateTimeUtc,
        pub last_activity_time: DateTimeUtc,
        pub last_seq: i64,
        pub member_count: i32,
        /// Set once the conversation outgrew `database.fanout_on_read_members`: its events
        /// are stored once on the shared timeline instead of in every member's feed, from
        /// then on (it never goes back, so a stream reads its feed part first).
        pub fanout_on_read: bool,
    }
    no_relations!();
}

pub mod members {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub role: i16,
        pub read_seq: i64,
        pub join_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod messages {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub conversation_id: Uuid,
        pub seq: i64,
        pub sender_id: Uuid,
        pub request_id: String,
        /// The text; for a poll message, the poll's question; for a call message, its
        /// media.
        pub text: Option<String>,
        pub encrypted_payload: Option<Vec<u8>>,
        /// Set on a poll message.
        pub poll_id: Option<Uuid>,
        /// Set on a call message (whose `text` is `video` or `audio`; added by m0013).
        pub call_id: Option<Uuid>,
        /// JSON object of string to string.
        pub metadata: String,
        pub reply_to: Option<Uuid>,
        /// Author and time of the original, for forwarded copies.
        pub forwarded_sender_id: Option<Uuid>,
        pub forwarded_create_time: Option<DateTimeUtc>,
        /// `storage.v1.Attachments` in the versioned format; NULL: none (added by m0010).
        pub attachments: Option<Vec<u8>>,
        pub create_time: DateTimeUtc,
        pub edit_time: Option<DateTimeUtc>,
        pub delete_time: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod request_ids {
    use sea_orm::entity::prelude::*;

    /// Client request ids of creating calls (AIP-155), per user and kind: a retry finds
    /// what the first call created, and the primary key refuses a second creation even
    /// when retries race. Kept for `retention::IDEMPOTENCY_WINDOW`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "request_ids")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        /// `store::RequestKind` code: 1 = message, 2 = conversation.
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: i16,
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// SHA-256 of the first request's content; NULL for ids recorded before m0003.
        pub fingerprint: Option<Vec<u8>>,
        pub conversation_id: Uuid,
        /// The message or conversation created.
        pub result_id: Uuid,
        pub create_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod message_requests {
    use sea_orm::entity::prelude::*;

    /// Request ids of sent messages when their history lived in CQL, until migration m0003
    /// moved them to `request_ids` and dropped this table (kept for that migration).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "message_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub sender_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        pub message_id: Uuid,
        pub create_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub conversation_id: Option<Uuid>,
        pub seq: Option<i64>,
        /// The event as v0 JSON, for rows written before formats were versioned; empty
        /// since (see `body`).
        pub payload: String,
        /// The event in a versioned format (`crate::format`), since migration m0004.
        pub body: Option<Vec<u8>>,
        pub create_time: DateTimeUtc,
        /// Position on the shared timeline, for events of conversations fanned out on
        /// read (since m0014); `None` for events filed in feeds.
        pub position: Option<i64>,
    }
    no_relations!();
}

/// The shared timeline's one row: the last position taken, and how far retention has
/// trimmed it (a cursor behind that resumes with a gap).
pub mod timeline_head {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "timeline_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i16,
        pub position: i64,
        pub trimmed: i64,
    }
    no_relations!();
}

/// Who receives which timeline positions of a conversation fanned out on read: a member
/// receives its events in `(from_position, to_position]` (open-ended while a member).
pub mod member_ranges {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_ranges")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub from_position: i64,
        pub to_position: Option<i64>,
    }
    no_relations!();
}

pub mod feed {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "feed")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub feed_seq: i64,
        pub event_id: i64,
    }
    no_relations!();
}

pub mod contact_requests {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub from_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub to_id: Uuid,
        pub message: String,
        pub create_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod contacts {
    use sea_orm::entity::prelude::*;

    /// Stored in both directions, so "my contacts" is one indexed range.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub contact_id: Uuid,
        pub create_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod one_time_codes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "one_time_codes")]
    pub struct Model {
        /// SHA-256 of the emailed code.
        #[sea_orm(primary_key, auto_increment = false)]
        pub code_hash: Vec<u8>,
        /// 1 = password reset, 2 = email change.
        pub purpose: i16,
        pub user_id: Uuid,
        pub new_email: Option<String>,
        pub expire_time: DateTimeUtc,
        pub used: bool,
    }
    no_relations!();
}

pub mod polls {
    use sea_orm::entity::prelude::*;

    /// A poll in a conversation, with its settings and tally total.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "polls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub conversation_id: Uuid,
        /// The timeline message that carries it.
        pub message_id: Uuid,
        pub creator_id: Uuid,
        pub question: String,
        pub multiple_choice: bool,
        /// NULL: no limit.
        pub max_selections: Option<i32>,
        pub allow_vote_changes: bool,
        pub anonymous: bool,
        /// 1 always, 2 after voting, 3 after close.
        pub results_visibility: i16,
        pub members_can_add_options: bool,
        /// When it closes by itself.
        pub close_time: Option<DateTimeUtc>,
        /// 1 open, 2 closed, 3 deleted.
        pub state: i16,
        pub create_time: DateTimeUtc,
        pub closed_time: Option<DateTimeUtc>,
        /// How many members voted (kept with the option counters, in the vote's write).
        pub total_voters: i32,
        /// Grows with every change of the tally (so streams can order tallies).
        pub tally_version: i64,
    }
    no_relations!();
}

pub mod poll_options {
    use sea_orm::entity::prelude::*;

    /// One answer of a poll and its vote count.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "poll_options")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub poll_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub option_id: Uuid,
        /// Display order.
        pub position: i32,
        pub text: String,
        /// `polls::rules::option_key` of `text`, unique per poll.
        pub key: String,
        pub added_by: Uuid,
        pub votes: i32,
    }
    no_relations!();
}

pub mod poll_votes {
    use sea_orm::entity::prelude::*;

    /// That a member voted, and — for public polls only — what they picked.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "poll_votes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub poll_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        /// Space-separated option ids; empty for anonymous polls (never stored).
        pub option_ids: String,
        pub vote_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod drive_files {
    use sea_orm::entity::prelude::*;

    /// A file or folder in a user's drive.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub owner_id: Uuid,
        /// NULL: the top folder.
        pub parent_id: Option<Uuid>,
        pub name: String,
        /// 1 file, 2 folder.
        pub kind: i16,
        pub size: i64,
        pub sha256: String,
        pub content_type: String,
        pub blob_key: Option<String>,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        /// Set on everything in the trash.
        pub trash_time: Option<DateTimeUtc>,
        /// On everything in the trash: the file or folder the user deleted (itself, or
        /// the folder it went with).
        pub trash_root: Option<Uuid>,
        /// Pixel size of images the server decoded, which have a `drive_thumbnails` row
        /// (added by m0010).
        pub image_width: Option<i32>,
        pub image_height: Option<i32>,
    }
    no_relations!();
}

pub mod drive_thumbnails {
    use sea_orm::entity::prelude::*;

    /// The JPEG thumbnail of an image file: apart from `drive_files` so that listings
    /// do not read it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_thumbnails")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: Uuid,
        pub width: i32,
        pub height: i32,
        pub data: Vec<u8>,
    }
    no_relations!();
}

pub mod drive_attachments {
    use sea_orm::entity::prelude::*;

    /// A drive file attached to a message: the members of `conversation_id` may read it
    /// while the row exists (written with the message, removed when it is deleted).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_attachments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: Uuid,
        pub conversation_id: Uuid,
        pub create_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod drive_uploads {
    use sea_orm::entity::prelude::*;

    /// An upload in progress; its bytes are parts in the blob store until it completes.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_uploads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub owner_id: Uuid,
        pub parent_id: Option<Uuid>,
        pub name: String,
        pub size: i64,
        pub sha256: Option<String>,
        pub received: i64,
        pub expire_time: DateTimeUtc,
        pub create_time: DateTimeUtc,
        /// A direct upload's blob key, multipart upload id and part size (all set or
        /// none; added by m0011).
        pub direct_key: Option<String>,
        pub direct_id: Option<String>,
        pub direct_part_size: Option<i64>,
        /// Who sends the bytes when not the owner: an editor replacing a file's
        /// contents (m0012).
        pub uploader_id: Option<Uuid>,
        /// The file whose contents the upload replaces (m0012).
        pub replace_id: Option<Uuid>,
    }
    no_relations!();
}

pub mod drive_upload_parts {
    use sea_orm::entity::prelude::*;

    /// One received chunk of an upload.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_upload_parts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub upload_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub offset: i64,
        pub size: i64,
    }
    no_relations!();
}

pub mod drive_usage {
    use sea_orm::entity::prelude::*;

    /// A user's storage: every drive write locks this row first, so one user's writes
    /// queue and the quota check cannot race.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_usage")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub used: i64,
        pub reserved: i64,
    }
    no_relations!();
}

pub mod drive_shares {
    use sea_orm::entity::prelude::*;

    /// A file or folder shared with a user or with a conversation's members.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_shares")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub file_id: Uuid,
        pub owner_id: Uuid,
        /// Exactly one of `user_id` and `conversation_id` is set.
        pub user_id: Option<Uuid>,
        pub conversation_id: Option<Uuid>,
        pub create_time: DateTimeUtc,
        /// 1 for editors; viewers are 0, or absent in rows from before m0012.
        pub role: Option<i16>,
    }
    no_relations!();
}

pub mod drive_links {
    use sea_orm::entity::prelude::*;

    /// A share link to a drive file (its token is not kept: it names this row's id).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drive_links")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub file_id: Uuid,
        pub owner_id: Uuid,
        pub expire_time: DateTimeUtc,
        /// argon2id of the password, when it has one.
        pub password_hash: Option<String>,
        /// 0: no limit.
        pub max_downloads: i32,
        pub downloads: i32,
        pub revoked: bool,
        pub create_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod calls {
    use sea_orm::entity::prelude::*;

    /// A call in a conversation: its record (who rang, joined, left; how it ended) in the
    /// versioned format of `storage.v1.Call`, and the columns the store queries by.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub conversation_id: Uuid,
        pub start_time: DateTimeUtc,
        /// When the ring times out; NULL once that was handled or the call ended.
        pub ring_due: Option<DateTimeUtc>,
        /// NULL while the call is on.
        pub end_time: Option<DateTimeUtc>,
        pub record: Vec<u8>,
    }
    no_relations!();
}

pub mod call_members {
    use sea_orm::entity::prelude::*;

    /// Who a call concerns (rung, or joined later): each user's call history.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "call_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub call_id: Uuid,
        /// The call's start, for listing newest first.
        pub start_time: DateTimeUtc,
    }
    no_relations!();
}

pub mod active_calls {
    use sea_orm::entity::prelude::*;

    /// The call going on in a conversation: at most one (the primary key says so).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "active_calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: Uuid,
        pub call_id: Uuid,
    }
    no_relations!();
}
