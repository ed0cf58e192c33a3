//! Accounts, profiles and blocks on SQL.

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
    sea_query::{Expr, LikeExpr},
};
use uuid::Uuid;

use crate::store::sql::{
    SqlStore, convert,
    entities::{blocks, contacts, members, users},
    paging::{self, Order},
};
use crate::{
    domain::{Time, User},
    error::{Error, Reason, Result},
    store::{NewUser, ProfileUpdate, UserStore},
};

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

/// Whether either user blocked the other (also used inside write transactions).
pub(in crate::store::sql) async fn blocked_between<C: ConnectionTrait>(
    db: &C,
    a: Uuid,
    b: Uuid,
) -> Result<bool> {
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
