//! Contacts and contact requests on SQL. Every change lands in both users' feeds.

use async_trait::async_trait;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait,
    QueryFilter, TransactionTrait,
};
use uuid::Uuid;

use super::{
    SqlStore, append_event, convert,
    entities::{contact_requests, contacts, users},
    paging::{self, Order},
};
use crate::{
    domain::{Contact, ContactRequest, Event, Time, User},
    error::{Error, Reason, Result},
    store::{Committed, ContactOutcome, ContactStore},
};

/// Rows linking `a` and `b` in either direction.
fn between(a: Uuid, b: Uuid) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(contacts::Column::UserId.eq(a))
                .add(contacts::Column::ContactId.eq(b)),
        )
        .add(
            Condition::all()
                .add(contacts::Column::UserId.eq(b))
                .add(contacts::Column::ContactId.eq(a)),
        )
}

fn requests_between(a: Uuid, b: Uuid) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(contact_requests::Column::FromId.eq(a))
                .add(contact_requests::Column::ToId.eq(b)),
        )
        .add(
            Condition::all()
                .add(contact_requests::Column::FromId.eq(b))
                .add(contact_requests::Column::ToId.eq(a)),
        )
}

impl SqlStore {
    async fn live_user<C: sea_orm::ConnectionTrait>(&self, db: &C, id: Uuid) -> Result<User> {
        users::Entity::find_by_id(id)
            .filter(users::Column::DeleteTime.is_null())
            .one(db)
            .await?
            .map(convert::user)
            .ok_or(Error::NotFound("user"))
    }

    /// Links the two users both ways and announces it to both.
    async fn link_contacts<C: sea_orm::ConnectionTrait>(
        &self,
        txn: &C,
        a: &User,
        b: &User,
        now: Time,
    ) -> Result<crate::domain::Published> {
        contact_requests::Entity::delete_many()
            .filter(requests_between(a.id, b.id))
            .exec(txn)
            .await?;
        contacts::Entity::insert_many([(a.id, b.id), (b.id, a.id)].map(|(user, contact)| {
            contacts::ActiveModel {
                user_id: Set(user),
                contact_id: Set(contact),
                create_time: Set(now),
            }
        }))
        .exec(txn)
        .await?;
        let event = Event::ContactAdded {
            users: [a.clone(), b.clone()],
            time: now,
        };
        append_event(txn, event, &[a.id, b.id], now).await
    }
}

#[async_trait]
impl ContactStore for SqlStore {
    async fn request_contact(
        &self,
        from: Uuid,
        to: Uuid,
        message: String,
        now: Time,
    ) -> Result<Committed<ContactOutcome>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        let from_user = self.live_user(&txn, from).await?;
        let to_user = self.live_user(&txn, to).await?;
        let linked = contacts::Entity::find()
            .filter(between(from, to))
            .count(&txn)
            .await?;
        if linked > 0 {
            return Err(Error::AlreadyExists {
                reason: Reason::AlreadyContacts,
                message: "you are contacts already",
            });
        }
        let reverse = contact_requests::Entity::find_by_id((to, from))
            .one(&txn)
            .await?;
        if reverse.is_some() {
            let published = self.link_contacts(&txn, &from_user, &to_user, now).await?;
            txn.commit().await?;
            let contact = Contact {
                user: to_user,
                since: now,
            };
            return Ok(Committed {
                value: ContactOutcome::Connected(contact),
                published: Some(published),
            });
        }
        if let Some(existing) = contact_requests::Entity::find_by_id((from, to))
            .one(&txn)
            .await?
        {
            let request = ContactRequest {
                from: from_user,
                to: to_user,
                message: existing.message,
                time: existing.create_time,
            };
            return Ok(Committed::unchanged(ContactOutcome::Pending(request)));
        }
        contact_requests::ActiveModel {
            from_id: Set(from),
            to_id: Set(to),
            message: Set(message.clone()),
            create_time: Set(now),
        }
        .insert(&txn)
        .await?;
        let request = ContactRequest {
            from: from_user,
            to: to_user,
            message,
            time: now,
        };
        let published =
            append_event(&txn, Event::ContactRequested(request.clone()), &[to], now).await?;
        txn.commit().await?;
        Ok(Committed {
            value: ContactOutcome::Pending(request),
            published: Some(published),
        })
    }

    async fn respond_contact(
        &self,
        to: Uuid,
        from: Uuid,
        accept: bool,
        now: Time,
    ) -> Result<Committed<Option<Contact>>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        contact_requests::Entity::find_by_id((from, to))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("contact request"))?;
        if !accept {
            contact_requests::Entity::delete_by_id((from, to))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            return Ok(Committed::unchanged(None));
        }
        let to_user = self.live_user(&txn, to).await?;
        let from_user = self.live_user(&txn, from).await?;
        let published = self.link_contacts(&txn, &to_user, &from_user, now).await?;
        txn.commit().await?;
        Ok(Committed {
            value: Some(Contact {
                user: from_user,
                since: now,
            }),
            published: Some(published),
        })
    }

    async fn contact_requests(
        &self,
        user: Uuid,
        incoming: bool,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<ContactRequest>> {
        let (mine, other) = if incoming {
            (
                contact_requests::Column::ToId,
                contact_requests::Column::FromId,
            )
        } else {
            (
                contact_requests::Column::FromId,
                contact_requests::Column::ToId,
            )
        };
        let rows = paging::page(
            contact_requests::Entity::find().filter(mine.eq(user)),
            (contact_requests::Column::CreateTime, other),
            Order::NewestFirst,
            before,
            limit,
        )
        .all(&self.db)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (Ok(from), Ok(to)) = (
                self.live_user(&self.db, row.from_id).await,
                self.live_user(&self.db, row.to_id).await,
            ) else {
                continue;
            };
            out.push(ContactRequest {
                from,
                to,
                message: row.message,
                time: row.create_time,
            });
        }
        Ok(out)
    }

    async fn contacts(
        &self,
        user: Uuid,
        before: Option<(Time, Uuid)>,
        limit: u64,
    ) -> Result<Vec<Contact>> {
        let rows = paging::page(
            contacts::Entity::find().filter(contacts::Column::UserId.eq(user)),
            (contacts::Column::CreateTime, contacts::Column::ContactId),
            Order::NewestFirst,
            before,
            limit,
        )
        .all(&self.db)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Ok(user) = self.live_user(&self.db, row.contact_id).await {
                out.push(Contact {
                    user,
                    since: row.create_time,
                });
            }
        }
        Ok(out)
    }

    async fn remove_contact(&self, user: Uuid, other: Uuid, now: Time) -> Result<Committed<()>> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        contact_requests::Entity::delete_many()
            .filter(requests_between(user, other))
            .exec(&txn)
            .await?;
        let removed = contacts::Entity::delete_many()
            .filter(between(user, other))
            .exec(&txn)
            .await?
            .rows_affected;
        let published = if removed > 0 {
            let event = Event::ContactRemoved {
                users: [user, other],
                time: now,
            };
            Some(append_event(&txn, event, &[user, other], now).await?)
        } else {
            None
        };
        txn.commit().await?;
        Ok(Committed {
            value: (),
            published,
        })
    }

    async fn remove_all_contacts(&self, user: Uuid) -> Result<()> {
        let _guard = self.write_guard().await;
        let txn = self.db.begin().await?;
        contact_requests::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(contact_requests::Column::FromId.eq(user))
                    .add(contact_requests::Column::ToId.eq(user)),
            )
            .exec(&txn)
            .await?;
        contacts::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(contacts::Column::UserId.eq(user))
                    .add(contacts::Column::ContactId.eq(user)),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}
