//! Single-use emailed codes (password reset, email change) on SQL, stored as hashes.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
};

use crate::store::sql::{SqlStore, entities::one_time_codes};
use crate::{
    domain::Time,
    error::{Error, Result},
    store::{CodePurpose, OneTimeCode},
};

fn purpose_code(purpose: CodePurpose) -> i16 {
    match purpose {
        CodePurpose::PasswordReset => 1,
        CodePurpose::EmailChange => 2,
    }
}

pub(super) async fn create(store: &SqlStore, code: OneTimeCode) -> Result<()> {
    let _guard = store.write_guard().await;
    one_time_codes::ActiveModel {
        code_hash: Set(code.code_hash),
        purpose: Set(purpose_code(code.purpose)),
        user_id: Set(code.user_id),
        new_email: Set(code.new_email),
        expire_time: Set(code.expire_time),
        used: Set(false),
    }
    .insert(&store.db)
    .await?;
    Ok(())
}

pub(super) async fn consume(
    store: &SqlStore,
    code_hash: &[u8],
    purpose: CodePurpose,
    now: Time,
) -> Result<Option<OneTimeCode>> {
    let _guard = store.write_guard().await;
    let txn = store.db.begin().await?;
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
