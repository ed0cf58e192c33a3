//! The CQL keyspace: versioned migrations, applied at start-up. Every statement is
//! idempotent (`IF NOT EXISTS`), so nodes starting together cannot trip over each other;
//! the `migrations` table records what ran. Never edit a released migration: add one.

use scylla::client::session::Session;

use super::cql_error;
use crate::{config::CqlConfig, error::Result};

/// Migrations, oldest first: (version, statements). `{ks}` is the keyspace.
const MIGRATIONS: &[(i32, &[&str])] = &[
    (
        1,
        &[
            // Message state, newest first inside a partition. `bucket` = seq / BUCKET_SEQS
            // keeps a busy conversation from growing one unbounded partition. `body` is the
            // domain message as JSON (the same form the event feed uses); `sender_id` and
            // `deleted` are columns because unread counting reads only them.
            "CREATE TABLE IF NOT EXISTS {ks}.messages (
            conversation_id uuid,
            bucket bigint,
            seq bigint,
            id uuid,
            sender_id uuid,
            deleted boolean,
            body text,
            PRIMARY KEY ((conversation_id, bucket), seq)
        ) WITH CLUSTERING ORDER BY (seq DESC)",
            // Message id → seq, for edits, deletes, replies and forwards.
            "CREATE TABLE IF NOT EXISTS {ks}.message_ids (
            conversation_id uuid,
            id uuid,
            seq bigint,
            PRIMARY KEY ((conversation_id, id))
        )",
            // How far the conversation's timeline has been applied here: every seq up to
            // `applied_seq` is in `messages` (or was not a message event).
            "CREATE TABLE IF NOT EXISTS {ks}.conversation_progress (
            conversation_id uuid PRIMARY KEY,
            applied_seq bigint
        )",
        ],
    ),
    // Message state in a versioned format (`crate::format`) in `data`; rows written
    // before keep their v0 JSON in `body`.
    (2, &["ALTER TABLE {ks}.messages ADD data blob"]),
];

/// The replication clause for a new keyspace.
fn replication(config: &CqlConfig) -> Result<String> {
    let Some(per_datacenter) = &config.datacenter_replication else {
        return Ok(format!(
            "{{'class': 'SimpleStrategy', 'replication_factor': {}}}",
            config.replication_factor.max(1)
        ));
    };
    let mut clause = String::from("{'class': 'NetworkTopologyStrategy'");
    for entry in per_datacenter.split(',') {
        let parsed = entry
            .split_once(':')
            .and_then(|(dc, n)| Some((dc.trim(), n.trim().parse::<u32>().ok()?)))
            .filter(|(dc, _)| is_identifier_like(dc));
        let Some((dc, replicas)) = parsed else {
            return Err(crate::error::Error::internal(format!(
                "cql.datacenter_replication: expected \"dc:replicas,…\", got {entry:?}"
            )));
        };
        clause.push_str(&format!(", '{dc}': {replicas}"));
    }
    clause.push('}');
    Ok(clause)
}

/// Names we splice into CQL text (keyspace, datacenters) must not carry quotes or spaces.
/// Whether an ALTER TABLE … ADD failed because the column is there already (Cassandra's
/// and ScyllaDB's wordings).
fn column_exists(error: &str) -> bool {
    error.contains("already exists") || error.contains("conflicts with an existing column")
}

pub(super) fn is_identifier_like(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Creates the keyspace if missing and applies pending migrations.
pub(super) async fn migrate(session: &Session, config: &CqlConfig) -> Result<()> {
    let ks = &config.keyspace;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
                replication(config)?
            ),
            (),
        )
        .await
        .map_err(cql_error)?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.migrations (version int PRIMARY KEY, applied_at timestamp)"
            ),
            (),
        )
        .await
        .map_err(cql_error)?;
    let applied: Vec<i32> = session
        .query_unpaged(format!("SELECT version FROM {ks}.migrations"), ())
        .await
        .map_err(cql_error)?
        .into_rows_result()
        .map_err(crate::error::Error::internal)?
        .rows::<(i32,)>()
        .map_err(crate::error::Error::internal)?
        .map(|row| row.map(|(version,)| version))
        .collect::<Result<_, _>>()
        .map_err(crate::error::Error::internal)?;
    for (version, statements) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        for statement in *statements {
            let applied = session
                .query_unpaged(statement.replace("{ks}", ks), ())
                .await;
            // Another node starting at the same moment, or one that died between the ALTER
            // and recording it, added the column already: the goal is reached.
            if let Err(err) = applied
                && !(statement.starts_with("ALTER TABLE") && column_exists(&err.to_string()))
            {
                return Err(cql_error(err));
            }
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.migrations (version, applied_at) VALUES (?, toTimestamp(now()))"
                ),
                (*version,),
            )
            .await
            .map_err(cql_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_follows_the_config() {
        let mut config = CqlConfig {
            replication_factor: 1,
            ..CqlConfig::default()
        };
        assert_eq!(
            replication(&config).expect("simple"),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        config.datacenter_replication = Some("dc1:3, dc-2:2".into());
        assert_eq!(
            replication(&config).expect("per dc"),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc-2': 2}"
        );
        config.datacenter_replication = Some("dc1'--:3".into());
        assert!(replication(&config).is_err(), "quotes are refused");
    }
}
