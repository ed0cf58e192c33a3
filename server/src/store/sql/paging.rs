//! Keyset paging on a (time, id) pair: the one way every list in the SQL store pages, so
//! the order and the "strictly after the last row" condition cannot disagree.

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use uuid::Uuid;

use crate::domain::Time;

/// Which way a list runs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Order {
    NewestFirst,
    OldestFirst,
}

/// `query` ordered by (`time`, `id`) in `order`, limited to `limit` rows strictly past
/// `after` (the key of the previous page's last row; `None` for the first page).
pub(super) fn page<E: EntityTrait>(
    query: Select<E>,
    (time, id): (E::Column, E::Column),
    order: Order,
    after: Option<(Time, Uuid)>,
    limit: u64,
) -> Select<E> {
    let query = match order {
        Order::NewestFirst => query.order_by_desc(time).order_by_desc(id),
        Order::OldestFirst => query.order_by_asc(time).order_by_asc(id),
    }
    .limit(limit);
    let Some((last_time, last_id)) = after else {
        return query;
    };
    let (past_time, past_id) = match order {
        Order::NewestFirst => (time.lt(last_time), id.lt(last_id)),
        Order::OldestFirst => (time.gt(last_time), id.gt(last_id)),
    };
    query.filter(
        Condition::any()
            .add(past_time)
            .add(Condition::all().add(time.eq(last_time)).add(past_id)),
    )
}
