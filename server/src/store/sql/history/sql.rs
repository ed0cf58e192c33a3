//! History in the `messages` table, written in the same transaction as the event.

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::MessageHistory;
use crate::{
    domain::{Message, Published},
    error::{Error, Result},
    store::{
        Direction,
        sql::{convert, entities::messages},
    },
};

pub(in crate::store::sql) struct SqlHistory {
    db: DatabaseConnection,
}

impl SqlHistory {
    pub(in crate::store::sql) fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

async fn find<C: ConnectionTrait>(db: &C, conversation: Uuid, id: Uuid) -> Result<Option<Message>> {
    messages::Entity::find_by_id(id)
        .filter(messages::Column::ConversationId.eq(conversation))
        .one(db)
        .await?
        .map(convert::message)
        .transpose()
}

#[async_trait]
impl MessageHistory for SqlHistory {
    async fn insert(
        &self,
        txn: &DatabaseTransaction,
        message: &Message,
        request_id: &str,
    ) -> Result<()> {
        let columns = convert::content_columns(message.content.as_ref());
        let metadata = serde_json::to_string(&message.metadata).map_err(Error::internal)?;
        messages::ActiveModel {
            id: Set(message.id),
            conversation_id: Set(message.conversation_id),
            seq: Set(convert::seq_to_db(message.seq)),
            sender_id: Set(message.sender_id),
            request_id: Set(request_id.to_owned()),
            text: Set(columns.text),
            encrypted_payload: Set(columns.encrypted_payload),
            poll_id: Set(columns.poll_id),
            call_id: Set(columns.call_id),
            metadata: Set(metadata),
            reply_to: Set(message.reply_to),
            forwarded_sender_id: Set(message.forwarded_from.map(|f| f.sender_id)),
            forwarded_create_time: Set(message.forwarded_from.map(|f| f.create_time)),
            attachments: Set(stored_attachments(&message.attachments)),
            create_time: Set(message.create_time),
            edit_time: Set(message.edit_time),
            delete_time: Set(message.delete_time),
        }
        .insert(txn)
        .await?;
        Ok(())
    }

    async fn update(&self, txn: &DatabaseTransaction, message: &Message) -> Result<()> {
        let row = messages::Entity::find_by_id(message.id)
            .one(txn)
            .await?
            .ok_or(Error::NotFound("message"))?;
        let columns = convert::content_columns(message.content.as_ref());
        let mut active = row.into_active_model();
        active.text = Set(columns.text);
        active.encrypted_payload = Set(columns.encrypted_payload);
        active.poll_id = Set(columns.poll_id);
        active.call_id = Set(columns.call_id);
        active.metadata = Set(serde_json::to_string(&message.metadata).map_err(Error::internal)?);
        active.attachments = Set(stored_attachments(&message.attachments));
        active.edit_time = Set(message.edit_time);
        active.delete_time = Set(message.delete_time);
        active.update(txn).await?;
        Ok(())
    }

    async fn forget(&self, txn: &DatabaseTransaction, conversation: Uuid) -> Result<()> {
        messages::Entity::delete_many()
            .filter(messages::Column::ConversationId.eq(conversation))
            .exec(txn)
            .await?;
        Ok(())
    }

    async fn committed(&self, _published: &Published) {}

    async fn message_in(
        &self,
        txn: &DatabaseTransaction,
        conversation: Uuid,
        id: Uuid,
        _last_seq: u64,
    ) -> Result<Option<Message>> {
        find(txn, conversation, id).await
    }

    async fn message(
        &self,
        conversation: Uuid,
        id: Uuid,
        _last_seq: u64,
    ) -> Result<Option<Message>> {
        find(&self.db, conversation, id).await
    }

    async fn messages(
        &self,
        conversation: Uuid,
        direction: Direction,
        anchor_seq: u64,
        limit: u64,
        _last_seq: u64,
    ) -> Result<Vec<Message>> {
        let query = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation))
            .limit(limit);
        let anchor = convert::seq_to_db(anchor_seq);
        let query = match direction {
            Direction::Backward if anchor_seq == 0 => query.order_by_desc(messages::Column::Seq),
            Direction::Backward => query
                .order_by_desc(messages::Column::Seq)
                .filter(messages::Column::Seq.lt(anchor)),
            Direction::Forward => query
                .order_by_asc(messages::Column::Seq)
                .filter(messages::Column::Seq.gt(anchor)),
        };
        query
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::message)
            .collect()
    }

    async fn last_and_unread(
        &self,
        conversation: Uuid,
        user: Uuid,
        read_seq: u64,
        _last_seq: u64,
    ) -> Result<(Option<Message>, u32)> {
        let last = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation))
            .filter(messages::Column::DeleteTime.is_null())
            .order_by_desc(messages::Column::Seq)
            .one(&self.db)
            .await?
            .map(convert::message)
            .transpose()?;
        let unread = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conversation))
            .filter(messages::Column::Seq.gt(convert::seq_to_db(read_seq)))
            .filter(messages::Column::SenderId.ne(user))
            .filter(messages::Column::DeleteTime.is_null())
            .count(&self.db)
            .await?;
        Ok((last, u32::try_from(unread).unwrap_or(u32::MAX)))
    }

    fn is_projection(&self) -> bool {
        false
    }

    async fn applied_seq(&self, _conversation: Uuid) -> Result<u64> {
        Ok(u64::MAX)
    }
}

/// The `attachments` column: NULL for none, which most messages have.
fn stored_attachments(attachments: &[crate::domain::Attachment]) -> Option<Vec<u8>> {
    (!attachments.is_empty()).then(|| crate::format::encode_attachments(attachments))
}
