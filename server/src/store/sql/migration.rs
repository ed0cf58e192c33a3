//! Versioned schema migrations, run at start-up. Tables come from the entities so the
//! schema cannot drift from the code; indexes are listed here. Only SQL that SQLite,
//! PostgreSQL and CockroachDB all accept.

use sea_orm::{ConnectionTrait, EntityTrait, Schema};
use sea_orm_migration::{
    MigrationName, MigrationTrait, MigratorTrait, SchemaManager, async_trait, sea_query::Index,
};

use super::entities::{
    active_calls, blocks, call_members, calls, contact_requests, contacts, conversations,
    drive_attachments, drive_files, drive_links, drive_shares, drive_thumbnails,
    drive_upload_parts, drive_uploads, drive_usage, events, feed, member_ranges, members,
    message_requests, messages, one_time_codes, poll_options, poll_votes, polls, refresh_tokens,
    request_ids, sessions, timeline_head, users,
};

/// All migrations, oldest first. Never edit a released one: add a new one.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(InitialSchema),
            Box::new(CqlMessageHistory),
            Box::new(RequestIdsPerUser),
            Box::new(VersionedEventFormat),
            Box::new(Polls),
            Box::new(PollsInTimeline),
            Box::new(Drive),
            Box::new(DriveShares),
            Box::new(DriveLinks),
            Box::new(Attachments),
            Box::new(DirectUploads),
            Box::new(ShareRoles),
            Box::new(Calls),
            Box::new(FanoutOnRead),
        ]
    }
}

struct InitialSchema;

impl MigrationName for InitialSchema {
    fn name(&self) -> &str {
        "m0001_initial_schema"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for InitialSchema {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, users::Entity).await?;
        create(manager, &schema, blocks::Entity).await?;
        create(manager, &schema, sessions::Entity).await?;
        create(manager, &schema, refresh_tokens::Entity).await?;
        create(manager, &schema, conversations::Entity).await?;
        create(manager, &schema, members::Entity).await?;
        create(manager, &schema, messages::Entity).await?;
        create(manager, &schema, events::Entity).await?;
        create(manager, &schema, feed::Entity).await?;
        create(manager, &schema, contact_requests::Entity).await?;
        create(manager, &schema, contacts::Entity).await?;
        create(manager, &schema, one_time_codes::Entity).await?;

        // Paging a user's sessions and looking up a session's refresh tokens.
        index(
            manager,
            "idx_sessions_user",
            sessions::Entity,
            &["user_id", "create_time"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_refresh_session",
            refresh_tokens::Entity,
            &["session_id"],
            false,
        )
        .await?;
        // Idempotent conversation creation.
        index(
            manager,
            "idx_conversations_request",
            conversations::Entity,
            &["creator_id", "request_id"],
            true,
        )
        .await?;
        // A user's conversations.
        index(
            manager,
            "idx_members_user",
            members::Entity,
            &["user_id"],
            false,
        )
        .await?;
        // Timeline order, and idempotent sends.
        index(
            manager,
            "idx_messages_seq",
            messages::Entity,
            &["conversation_id", "seq"],
            true,
        )
        .await?;
        index(
            manager,
            "idx_messages_request",
            messages::Entity,
            &["conversation_id", "sender_id", "request_id"],
            true,
        )
        .await?;
        // Incoming contact requests.
        index(
            manager,
            "idx_contact_requests_to",
            contact_requests::Entity,
            &["to_id", "create_time"],
            false,
        )
        .await?;
        // Search by username / display-name prefix.
        index(
            manager,
            "idx_users_search_name",
            users::Entity,
            &["search_name"],
            false,
        )
        .await?;
        Ok(())
    }
}

/// For message history in CQL: request ids of sent messages, and an index to read a
/// conversation's committed events in order (to catch the CQL projection up). For
/// retention: an index to find events no feed refers to any more.
struct CqlMessageHistory;

impl MigrationName for CqlMessageHistory {
    fn name(&self) -> &str {
        "m0002_message_history_and_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CqlMessageHistory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, message_requests::Entity).await?;
        index(
            manager,
            "idx_events_conversation_seq",
            events::Entity,
            &["conversation_id", "seq"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_feed_event",
            feed::Entity,
            &["event_id"],
            false,
        )
        .await
    }
}

/// Request ids become unique per user (and kind), not per conversation, and remember a
/// fingerprint of their request, in one table for every creating call. The ids already
/// recorded (in `messages`, `message_requests` or `conversations`) are carried over
/// without a fingerprint, so their retries still find what they created.
struct RequestIdsPerUser;

impl MigrationName for RequestIdsPerUser {
    fn name(&self) -> &str {
        "m0003_request_ids_per_user"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RequestIdsPerUser {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, request_ids::Entity).await?;
        let db = manager.get_connection();
        // Kind codes: 1 = message, 2 = conversation (`store::RequestKind`). Where the same
        // id was used in several conversations, the first row copied wins. (`WHERE true`:
        // without a WHERE, SQLite reads `ON CONFLICT` as a join constraint.)
        for copy in [
            "INSERT INTO request_ids (user_id, kind, request_id, fingerprint, conversation_id, result_id, create_time) \
             SELECT sender_id, 1, request_id, NULL, conversation_id, id, create_time FROM messages \
             WHERE true ON CONFLICT DO NOTHING",
            "INSERT INTO request_ids (user_id, kind, request_id, fingerprint, conversation_id, result_id, create_time) \
             SELECT sender_id, 1, request_id, NULL, conversation_id, message_id, create_time FROM message_requests \
             WHERE true ON CONFLICT DO NOTHING",
            "INSERT INTO request_ids (user_id, kind, request_id, fingerprint, conversation_id, result_id, create_time) \
             SELECT creator_id, 2, request_id, NULL, id, id, create_time FROM conversations \
             WHERE request_id IS NOT NULL ON CONFLICT DO NOTHING",
        ] {
            db.execute_unprepared(copy).await?;
        }
        // Uniqueness is `request_ids`' job now (and only within the idempotency window).
        manager
            .drop_index(
                Index::drop()
                    .name("idx_messages_request")
                    .table(messages::Entity)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                sea_orm_migration::sea_query::Table::drop()
                    .table(message_requests::Entity)
                    .to_owned(),
            )
            .await?;
        // Retention trims by age.
        index(
            manager,
            "idx_request_ids_time",
            request_ids::Entity,
            &["create_time"],
            false,
        )
        .await
    }
}

/// Events are stored in a versioned format (`crate::format`) in a new `body` column; old
/// rows keep their v0 JSON in `payload`. (A database created after this migration was
/// written already has the column, from the entity: hence the check.)
struct VersionedEventFormat;

impl MigrationName for VersionedEventFormat {
    fn name(&self) -> &str {
        "m0004_versioned_event_format"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for VersionedEventFormat {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        if manager.has_column("events", "body").await? {
            return Ok(());
        }
        manager
            .alter_table(
                sea_orm_migration::sea_query::Table::alter()
                    .table(events::Entity)
                    .add_column(
                        sea_orm_migration::sea_query::ColumnDef::new("body")
                            .blob()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }
}

/// Polls, their options and their votes (see `store::sql::polls`).
struct Polls;

impl MigrationName for Polls {
    fn name(&self) -> &str {
        "m0005_polls"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Polls {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        create_poll_tables(manager).await
    }
}

/// Polls join the timeline: a poll message (`messages.poll_id`), the poll's message and
/// a tally version (`polls.message_id`, `polls.tally_version`). Before this migration no
/// RPC could create a poll, so poll tables made by m0005 are empty and are made again.
/// (A database created after this was written already has the columns: hence the checks.)
struct PollsInTimeline;

impl MigrationName for PollsInTimeline {
    fn name(&self) -> &str {
        "m0006_polls_in_timeline"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PollsInTimeline {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        if !manager.has_column("messages", "poll_id").await? {
            manager
                .alter_table(
                    sea_orm_migration::sea_query::Table::alter()
                        .table(messages::Entity)
                        .add_column(
                            sea_orm_migration::sea_query::ColumnDef::new("poll_id")
                                .uuid()
                                .null(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        if !manager.has_column("polls", "message_id").await? {
            for table in ["poll_votes", "poll_options", "polls"] {
                manager
                    .drop_table(
                        sea_orm_migration::sea_query::Table::drop()
                            .table(sea_orm_migration::sea_query::Alias::new(table))
                            .to_owned(),
                    )
                    .await?;
            }
            create_poll_tables(manager).await?;
        }
        Ok(())
    }
}

/// The drive: files and folders, uploads in progress and their parts, and each user's
/// storage (see `store::sql::drive`).
struct Drive;

impl MigrationName for Drive {
    fn name(&self) -> &str {
        "m0007_drive"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Drive {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, drive_files::Entity).await?;
        create(manager, &schema, drive_uploads::Entity).await?;
        create(manager, &schema, drive_upload_parts::Entity).await?;
        create(manager, &schema, drive_usage::Entity).await?;
        // A folder's listing, and the names taken in it.
        index(
            manager,
            "idx_drive_files_folder",
            drive_files::Entity,
            &["owner_id", "parent_id", "name"],
            false,
        )
        .await?;
        // The trash, and what a trashed folder took with it.
        index(
            manager,
            "idx_drive_files_trash",
            drive_files::Entity,
            &["owner_id", "trash_root"],
            false,
        )
        .await?;
        // Uploads that expired.
        index(
            manager,
            "idx_drive_uploads_expiry",
            drive_uploads::Entity,
            &["expire_time"],
            false,
        )
        .await
    }
}

/// Drive files shared for reading (see `store::sql::drive`).
struct DriveShares;

impl MigrationName for DriveShares {
    fn name(&self) -> &str {
        "m0008_drive_shares"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DriveShares {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, drive_shares::Entity).await?;
        // A file's shares (and the check on each read).
        index(
            manager,
            "idx_drive_shares_file",
            drive_shares::Entity,
            &["file_id"],
            false,
        )
        .await?;
        // What was shared with a user, and with a conversation.
        index(
            manager,
            "idx_drive_shares_user",
            drive_shares::Entity,
            &["user_id", "create_time"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_drive_shares_conversation",
            drive_shares::Entity,
            &["conversation_id", "create_time"],
            false,
        )
        .await
    }
}

/// Drive share links (see `store::sql::drive`).
struct DriveLinks;

impl MigrationName for DriveLinks {
    fn name(&self) -> &str {
        "m0009_drive_links"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DriveLinks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, drive_links::Entity).await?;
        index(
            manager,
            "idx_drive_links_file",
            drive_links::Entity,
            &["file_id"],
            false,
        )
        .await
    }
}

/// Message attachments: which conversations may read which drive files, the snapshot a
/// message shows, and image thumbnails (see `store::sql::drive`). A database created
/// after this was written has the new columns already, from the entities.
struct Attachments;

impl MigrationName for Attachments {
    fn name(&self) -> &str {
        "m0010_attachments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Attachments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        use sea_orm_migration::sea_query::ColumnDef;
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, drive_attachments::Entity).await?;
        create(manager, &schema, drive_thumbnails::Entity).await?;
        // A deleted message's attachments.
        index(
            manager,
            "idx_drive_attachments_message",
            drive_attachments::Entity,
            &["message_id"],
            false,
        )
        .await?;
        add_column(
            manager,
            messages::Entity,
            ColumnDef::new("attachments").blob().null().to_owned(),
        )
        .await?;
        for name in ["image_width", "image_height"] {
            add_column(
                manager,
                drive_files::Entity,
                ColumnDef::new(name).integer().null().to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Direct uploads: their parts go straight to S3 (see `drive`).
struct DirectUploads;

impl MigrationName for DirectUploads {
    fn name(&self) -> &str {
        "m0011_direct_uploads"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DirectUploads {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        use sea_orm_migration::sea_query::ColumnDef;
        for column in [
            ColumnDef::new("direct_key").string().null().to_owned(),
            ColumnDef::new("direct_id").string().null().to_owned(),
            ColumnDef::new("direct_part_size")
                .big_integer()
                .null()
                .to_owned(),
        ] {
            add_column(manager, drive_uploads::Entity, column).await?;
        }
        Ok(())
    }
}

/// Editors: a share's role, and uploads that replace a file's contents (see `drive`).
struct ShareRoles;

impl MigrationName for ShareRoles {
    fn name(&self) -> &str {
        "m0012_share_roles"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ShareRoles {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        use sea_orm_migration::sea_query::ColumnDef;
        add_column(
            manager,
            drive_shares::Entity,
            ColumnDef::new("role").small_integer().null().to_owned(),
        )
        .await?;
        for name in ["uploader_id", "replace_id"] {
            add_column(
                manager,
                drive_uploads::Entity,
                ColumnDef::new(name).uuid().null().to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Calls: their records, who each concerns, the one going on per conversation, and the
/// call a call message carries (see `store::sql::calls`).
struct Calls;

impl MigrationName for Calls {
    fn name(&self) -> &str {
        "m0013_calls"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Calls {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        use sea_orm_migration::sea_query::ColumnDef;
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, calls::Entity).await?;
        create(manager, &schema, call_members::Entity).await?;
        create(manager, &schema, active_calls::Entity).await?;
        index(
            manager,
            "idx_calls_conversation",
            calls::Entity,
            &["conversation_id", "start_time"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_calls_ring_due",
            calls::Entity,
            &["ring_due"],
            false,
        )
        .await?;
        index(
            manager,
            "idx_call_members_user",
            call_members::Entity,
            &["user_id", "start_time"],
            false,
        )
        .await?;
        add_column(
            manager,
            messages::Entity,
            ColumnDef::new("call_id").uuid().null().to_owned(),
        )
        .await
    }
}

/// Fan-out on read for large conversations: the shared timeline's head, the members'
/// ranges on it, each event's position, and which conversations use it (see
/// `store::sql::timeline`).
struct FanoutOnRead;

impl MigrationName for FanoutOnRead {
    fn name(&self) -> &str {
        "m0014_fanout_on_read"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for FanoutOnRead {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        use sea_orm_migration::sea_query::ColumnDef;
        let schema = Schema::new(manager.get_database_backend());
        create(manager, &schema, timeline_head::Entity).await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO timeline_head (id, position, trimmed) VALUES (1, 0, 0)",
            )
            .await?;
        create(manager, &schema, member_ranges::Entity).await?;
        // Closing the ranges of those who left finds a conversation's open ranges.
        index(
            manager,
            "idx_member_ranges_conversation",
            member_ranges::Entity,
            &["conversation_id", "to_position"],
            false,
        )
        .await?;
        add_column(
            manager,
            conversations::Entity,
            ColumnDef::new("fanout_on_read")
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        )
        .await?;
        add_column(
            manager,
            events::Entity,
            ColumnDef::new("position").big_integer().null().to_owned(),
        )
        .await?;
        // A member's replay reads their conversations' events by position.
        index(
            manager,
            "idx_events_timeline",
            events::Entity,
            &["conversation_id", "position"],
            false,
        )
        .await
    }
}

/// Adds a column, unless the table has it (created from a newer entity).
async fn add_column<E: EntityTrait>(
    manager: &SchemaManager<'_>,
    entity: E,
    mut column: sea_orm_migration::sea_query::ColumnDef,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm_migration::sea_query::Table;
    let name = column.get_column_name();
    if manager.has_column(entity.table_name(), &name).await? {
        return Ok(());
    }
    manager
        .alter_table(
            Table::alter()
                .table(entity)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

async fn create_poll_tables(manager: &SchemaManager<'_>) -> Result<(), sea_orm::DbErr> {
    let schema = Schema::new(manager.get_database_backend());
    create(manager, &schema, polls::Entity).await?;
    create(manager, &schema, poll_options::Entity).await?;
    create(manager, &schema, poll_votes::Entity).await?;
    index(
        manager,
        "idx_polls_conversation",
        polls::Entity,
        &["conversation_id", "create_time"],
        false,
    )
    .await?;
    index(
        manager,
        "idx_polls_due",
        polls::Entity,
        &["state", "close_time"],
        false,
    )
    .await?;
    index(
        manager,
        "idx_poll_options_key",
        poll_options::Entity,
        &["poll_id", "key"],
        true,
    )
    .await
}

async fn create<E: EntityTrait>(
    manager: &SchemaManager<'_>,
    schema: &Schema,
    entity: E,
) -> Result<(), sea_orm::DbErr> {
    manager
        .create_table(schema.create_table_from_entity(entity))
        .await
}

async fn index<E: EntityTrait>(
    manager: &SchemaManager<'_>,
    name: &str,
    entity: E,
    columns: &[&'static str],
    unique: bool,
) -> Result<(), sea_orm::DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(entity);
    for column in columns {
        stmt.col(*column);
    }
    if unique {
        stmt.unique();
    }
    manager.create_index(stmt).await
}
