//! Sessions, their rotating refresh tokens, and revocations on SQL.

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use crate::store::sql::{
    SqlStore, convert,
    entities::{refresh_tokens, sessions},
    paging::{self, Order},
};
use crate::{
    domain::{Session, Time},
    error::Result,
    store::{CodePurpose, OneTimeCode, RefreshOutcome, RefreshRecord, SessionStore},
};

use super::codes;

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(&self, session: Session, refresh: RefreshRecord) -> Result<()> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        sessions::ActiveModel {
            id: Set(session.id),
            user_id: Set(session.user_id),
            device_name: Set(session.device_name),
            device_platform: Set(session.device_platform),
            create_time: Set(session.create_time),
            last_refresh_time: Set(session.last_refresh_time),
            revoke_time: Set(None),
        }
        .insert(&txn)
        .await?;
        refresh_tokens::ActiveModel {
            token_hash: Set(refresh.token_hash),
            session_id: Set(session.id),
            expire_time: Set(refresh.expire_time),
            used: Set(false),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: RefreshRecord,
        now: Time,
    ) -> Result<RefreshOutcome> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let Some(token) = refresh_tokens::Entity::find_by_id(old_hash.to_vec())
            .one(&txn)
            .await?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        let Some(session) = sessions::Entity::find_by_id(token.session_id)
            .one(&txn)
            .await?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        if session.revoke_time.is_some() || token.expire_time <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        // Only one caller can flip `used`; a second presentation is reuse.
        let flipped = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::Used, true.into())
            .filter(refresh_tokens::Column::TokenHash.eq(old_hash.to_vec()))
            .filter(refresh_tokens::Column::Used.eq(false))
            .exec(&txn)
            .await?
            .rows_affected;
        if flipped == 0 {
            let mut active = session.into_active_model();
            active.revoke_time = Set(Some(now));
            let session = active.update(&txn).await?;
            txn.commit().await?;
            return Ok(RefreshOutcome::Reused {
                session_id: session.id,
            });
        }
        refresh_tokens::ActiveModel {
            token_hash: Set(new.token_hash),
            session_id: Set(session.id),
            expire_time: Set(new.expire_time),
            used: Set(false),
        }
        .insert(&txn)
        .await?;
        let mut active = session.into_active_model();
        active.last_refresh_time = Set(now);
        let session = active.update(&txn).await?;
        txn.commit().await?;
        Ok(RefreshOutcome::Rotated(convert::session(session)))
    }

    async fn revoke_session(&self, user: Uuid, session: Uuid, now: Time) -> Result<bool> {
        let _guard = self.write_guard().await;
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokeTime, Some(now).into())
            .filter(sessions::Column::Id.eq(session))
            .filter(sessions::Column::UserId.eq(user))
            .filter(sessions::Column::RevokeTime.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    async fn revoke_other_sessions(
        &self,
        user: Uuid,
        keep: Option<Uuid>,
        now: Time,
    ) -> Result<Vec<Uuid>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let mut query = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(sessions::Column::UserId.eq(user));
        if let Some(keep) = keep {
            query = query.filter(sessions::Column::Id.ne(keep));
        }
        let ids: Vec<Uuid> = query
            .filter(sessions::Column::RevokeTime.is_null())
            .into_tuple()
            .all(&txn)
            .await?;
        sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokeTime, Some(now).into())
            .filter(sessions::Column::Id.is_in(ids.iter().copied()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(ids)
    }

    async fn sessions(
        &self,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Session>> {
        let query = paging::page(
            sessions::Entity::find()
                .filter(sessions::Column::UserId.eq(user))
                .filter(sessions::Column::RevokeTime.is_null()),
            (sessions::Column::CreateTime, sessions::Column::Id),
            Order::NewestFirst,
            before,
            limit,
        );
        Ok(query
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::session)
            .collect())
    }

    async fn create_code(&self, code: OneTimeCode) -> Result<()> {
        codes::create(self, code).await
    }

    async fn consume_code(
        &self,
        code_hash: &[u8],
        purpose: CodePurpose,
        now: Time,
    ) -> Result<Option<OneTimeCode>> {
        codes::consume(self, code_hash, purpose, now).await
    }

    async fn revoked_since(&self, since: Time) -> Result<Vec<Uuid>> {
        Ok(sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(sessions::Column::RevokeTime.gte(since))
            .into_tuple()
            .all(&self.db)
            .await?)
    }
}
