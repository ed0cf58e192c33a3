//! Client request ids (AIP-155): one table for every creating call, unique per user and
//! kind, so a retry finds what its first attempt created and a reused id is recognised.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::{SqlStore, entities::request_ids};
use crate::{
    domain::Time,
    error::Result,
    store::{FirstUse, RequestKey},
};

/// Records `key` as having created `result_id`, in the caller's transaction. Fails with a
/// unique-key violation when the id was used already (possibly by a racing retry).
pub(super) async fn record<C: ConnectionTrait>(
    txn: &C,
    key: &RequestKey,
    conversation_id: Uuid,
    result_id: Uuid,
    now: Time,
) -> std::result::Result<(), sea_orm::DbErr> {
    request_ids::ActiveModel {
        user_id: Set(key.user),
        kind: Set(key.kind.code()),
        request_id: Set(key.id.clone()),
        fingerprint: Set(Some(key.fingerprint.clone())),
        conversation_id: Set(conversation_id),
        result_id: Set(result_id),
        create_time: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(())
}

impl SqlStore {
    pub(super) async fn find_first_use(&self, key: &RequestKey) -> Result<Option<FirstUse>> {
        Ok(
            request_ids::Entity::find_by_id((key.user, key.kind.code(), key.id.clone()))
                .one(&self.db)
                .await?
                .map(|row| FirstUse {
                    fingerprint: row.fingerprint,
                    conversation_id: row.conversation_id,
                    result_id: row.result_id,
                }),
        )
    }
}
