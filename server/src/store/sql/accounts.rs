//! Users, blocks and sessions on SQL.

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
    sea_query::{Expr, LikeExpr},
};
use uuid::Uuid;

use super::{
    SqlStore, convert,
    entities::{blocks, contacts, members, one_time_codes, refresh_tokens, sessions, users},
    paging::{self, Order},
};
use crate::{
    domain::{Session, Time, User},
    error::{Error, Reason, Result},
    store::{
        CodePurpose, NewUser, OneTimeCode, ProfileUpdate, RefreshOutcome, RefreshRecord,
        SessionStore, UserStore,
    },
};

fn purpose_code(purpose: CodePurpose) -> i16 {
    match purpose {
        CodePurpose::PasswordReset => 1,
        CodePurpose::EmailChange => 2,
    }
}

fn taken(reason: Reason) -> Error {
    let message = match reason {
        Reason::EmailTaken => "this email address is already registered",
        _ => "this username is taken",
    };
    Error::AlreadyExists { reason, message }
}

impl SqlStore {
    /// Maps a unique violation on users to the field that clashed.
    async fn user_conflict(&self, email: Option<&str>, username: Option<&str>) -> Result<Error> {
        if let Some(email) = email {
            let hits = users::Entity::find()
                .filter(users::Column::Email.eq(email))
                .count(&self.db)
                .await?;
            if hits > 0 {
                return Ok(taken(Reason::EmailTaken));
            }
        }
        if let Some(username) = username {
            let hits = users::Entity::find()
                .filter(users::Column::Username.eq(username))
                .count(&self.db)
                .await?;
            if hits > 0 {
                return Ok(taken(Reason::UsernameTaken));
            }
        }
        Ok(Error::internal(
            "unique violation on users with no clashing row",
        ))
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, new: NewUser, now: Time) -> Result<User> {
        let _guard = self.write_guard().await;
        let row = users::ActiveModel {
            id: Set(Uuid::now_v7()),
            search_name: Set(new.display_name.to_lowercase()),
            email: Set(new.email.clone()),
            username: Set(new.username.clone()),
            display_name: Set(new.display_name),
            avatar_url: Set(String::new()),
            password_hash: Set(new.password_hash),
            feed_seq: Set(0),
            create_time: Set(now),
            delete_time: Set(None),
        };
        match row.insert(&self.db).await {
            Ok(row) => Ok(convert::user(row)),
            Err(err) if convert::is_unique_violation(&err) => Err(self
                .user_conflict(Some(&new.email), Some(&new.username))
                .await?),
            Err(err) => Err(err.into()),
        }
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>> {
        Ok(users::Entity::find_by_id(id)
            .filter(users::Column::DeleteTime.is_null())
            .one(&self.db)
            .await?
            .map(convert::user))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        let row = users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(&self.db)
            .await?;
        Ok(row.map(|row| {
            let hash = row.password_hash.clone();
            (convert::user(row), hash)
        }))
    }

    async fn password_hash(&self, id: Uuid) -> Result<Option<String>> {
        Ok(users::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(|row| row.password_hash))
    }

    async fn set_password_hash(&self, id: Uuid, hash: String) -> Result<()> {
        let _guard = self.write_guard().await;
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, hash.into())
            .filter(users::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn set_email(&self, id: Uuid, email: &str) -> Result<()> {
        let _guard = self.write_guard().await;
        let result = users::Entity::update_many()
            .col_expr(users::Column::Email, email.into())
            .filter(users::Column::Id.eq(id))
            .filter(users::Column::DeleteTime.is_null())
            .exec(&self.db)
            .await;
        match result {
            Ok(r) if r.rows_affected == 0 => Err(Error::NotFound("user")),
            Ok(_) => Ok(()),
            Err(err) if convert::is_unique_violation(&err) => Err(taken(Reason::EmailTaken)),
            Err(err) => Err(err.into()),
        }
    }

    async fn update_profile(&self, id: Uuid, update: ProfileUpdate) -> Result<User> {
        let _guard = self.write_guard().await;
        let row = users::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let mut active = row.into_active_model();
        if let Some(username) = &update.username {
            active.username = Set(username.clone());
        }
        if let Some(name) = update.display_name {
            active.search_name = Set(name.to_lowercase());
            active.display_name = Set(name);
        }
        if let Some(url) = update.avatar_url {
            active.avatar_url = Set(url);
        }
        match active.update(&self.db).await {
            Ok(row) => Ok(convert::user(row)),
            Err(err) if convert::is_unique_violation(&err) => {
                Err(self.user_conflict(None, update.username.as_deref()).await?)
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn search_users(
        &self,
        viewer: Uuid,
        prefix: &str,
        after_username: Option<&str>,
        limit: u64,
    ) -> Result<Vec<User>> {
        // Escape LIKE wildcards so a query of "_" matches a literal underscore.
        let escaped: String = prefix
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("{escaped}%");
        let blockers: Vec<Uuid> = blocks::Entity::find()
            .select_only()
            .column(blocks::Column::BlockerId)
            .filter(blocks::Column::BlockedId.eq(viewer))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut query = users::Entity::find()
            .filter(
                Condition::any()
                    .add(
                        Expr::col(users::Column::Username)
                            .like(LikeExpr::new(pattern.clone()).escape('\\')),
                    )
                    .add(
                        Expr::col(users::Column::SearchName)
                            .like(LikeExpr::new(pattern).escape('\\')),
                    ),
            )
            .filter(users::Column::Id.is_not_in(blockers))
            .filter(users::Column::DeleteTime.is_null())
            .order_by_asc(users::Column::Username)
            .limit(limit);
        if let Some(after) = after_username {
            query = query.filter(users::Column::Username.gt(after));
        }
        Ok(query
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::user)
            .collect())
    }

    async fn existing_users(&self, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        Ok(users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::Id.is_in(ids.iter().copied()))
            .filter(users::Column::DeleteTime.is_null())
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    async fn block(&self, blocker: Uuid, blocked: Uuid, now: Time) -> Result<()> {
        let _guard = self.write_guard().await;
        blocks::Entity::insert(blocks::ActiveModel {
            blocker_id: Set(blocker),
            blocked_id: Set(blocked),
            create_time: Set(now),
        })
        .on_conflict_do_nothing_on([blocks::Column::BlockerId, blocks::Column::BlockedId])
        .exec(&self.db)
        .await?;
        Ok(())
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<()> {
        let _guard = self.write_guard().await;
        blocks::Entity::delete_many()
            .filter(blocks::Column::BlockerId.eq(blocker))
            .filter(blocks::Column::BlockedId.eq(blocked))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn blocked_users(
        &self,
        blocker: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<(User, Time)>> {
        let rows = paging::page(
            blocks::Entity::find().filter(blocks::Column::BlockerId.eq(blocker)),
            (blocks::Column::CreateTime, blocks::Column::BlockedId),
            Order::NewestFirst,
            before,
            limit,
        )
        .all(&self.db)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(user) = self.user(row.blocked_id).await? {
                out.push((user, row.create_time));
            }
        }
        Ok(out)
    }

    async fn delete_user(&self, id: Uuid, now: Time) -> Result<()> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        // Placeholders that can never clash with, or be signed into as, a real account.
        users::Entity::update_many()
            .col_expr(users::Column::Email, format!("deleted:{id}").into())
            .col_expr(users::Column::Username, format!("deleted:{id}").into())
            .col_expr(users::Column::DisplayName, "Deleted user".into())
            .col_expr(users::Column::SearchName, String::new().into())
            .col_expr(users::Column::AvatarUrl, String::new().into())
            .col_expr(users::Column::PasswordHash, String::new().into())
            .col_expr(users::Column::DeleteTime, Some(now).into())
            .filter(users::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        blocks::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(blocks::Column::BlockerId.eq(id))
                    .add(blocks::Column::BlockedId.eq(id)),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn is_blocked_between(&self, a: Uuid, b: Uuid) -> Result<bool> {
        blocked_between(&self.db, a, b).await
    }

    async fn related_users(&self, viewer: Uuid, candidates: &[Uuid]) -> Result<Vec<Uuid>> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let viewer_conversations = members::Entity::find()
            .select_only()
            .column(members::Column::ConversationId)
            .filter(members::Column::UserId.eq(viewer))
            .into_query();
        let mut related: Vec<Uuid> = members::Entity::find()
            .select_only()
            .column(members::Column::UserId)
            .distinct()
            .filter(members::Column::UserId.is_in(candidates.iter().copied()))
            .filter(members::Column::ConversationId.in_subquery(viewer_conversations))
            .into_tuple()
            .all(&self.db)
            .await?;
        let contacts: Vec<Uuid> = contacts::Entity::find()
            .select_only()
            .column(contacts::Column::ContactId)
            .filter(contacts::Column::UserId.eq(viewer))
            .filter(contacts::Column::ContactId.is_in(candidates.iter().copied()))
            .into_tuple()
            .all(&self.db)
            .await?;
        related.extend(contacts);
        let blocked: Vec<(Uuid, Uuid)> = blocks::Entity::find()
            .select_only()
            .column(blocks::Column::BlockerId)
            .column(blocks::Column::BlockedId)
            .filter(
                Condition::any()
                    .add(blocks::Column::BlockerId.eq(viewer))
                    .add(blocks::Column::BlockedId.eq(viewer)),
            )
            .into_tuple()
            .all(&self.db)
            .await?;
        related.retain(|id| !blocked.iter().any(|&(a, b)| a == *id || b == *id));
        related.sort_unstable();
        related.dedup();
        Ok(related)
    }
}

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
        let _guard = self.write_guard().await;
        one_time_codes::ActiveModel {
            code_hash: Set(code.code_hash),
            purpose: Set(purpose_code(code.purpose)),
            user_id: Set(code.user_id),
            new_email: Set(code.new_email),
            expire_time: Set(code.expire_time),
            used: Set(false),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    async fn consume_code(
        &self,
        code_hash: &[u8],
        purpose: CodePurpose,
        now: Time,
    ) -> Result<Option<OneTimeCode>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        // Flipping `used` with all conditions in the WHERE makes the use single and atomic.
        let used = one_time_codes::Entity::update_many()
            .col_expr(one_time_codes::Column::Used, true.into())
            .filter(one_time_codes::Column::CodeHash.eq(code_hash.to_vec()))
            .filter(one_time_codes::Column::Purpose.eq(purpose_code(purpose)))
            .filter(one_time_codes::Column::Used.eq(false))
            .filter(one_time_codes::Column::ExpireTime.gt(now))
            .exec(&txn)
            .await?
            .rows_affected;
        if used == 0 {
            return Ok(None);
        }
        let row = one_time_codes::Entity::find_by_id(code_hash.to_vec())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::internal("consumed code vanished"))?;
        txn.commit().await?;
        Ok(Some(OneTimeCode {
            code_hash: row.code_hash,
            purpose,
            user_id: row.user_id,
            new_email: row.new_email,
            expire_time: row.expire_time,
        }))
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

/// Whether either user blocked the other (also used inside write transactions).
pub(super) async fn blocked_between<C: ConnectionTrait>(db: &C, a: Uuid, b: Uuid) -> Result<bool> {
    let hits = blocks::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(blocks::Column::BlockerId.eq(a))
                        .add(blocks::Column::BlockedId.eq(b)),
                )
                .add(
                    Condition::all()
                        .add(blocks::Column::BlockerId.eq(b))
                        .add(blocks::Column::BlockedId.eq(a)),
                ),
        )
        .count(db)
        .await?;
    Ok(hits > 0)
}
