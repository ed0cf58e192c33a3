//! Typed configuration: defaults, then an optional TOML file, then `SECURECONNECT_*`
//! environment variables (nested keys use `__`, e.g. `SECURECONNECT_AUTH__ACCESS_TOKEN_TTL_SECS`).
//! Every field is documented in `deploy/config.example.toml`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Everything the server can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address for gRPC (HTTP/2) and gRPC-web (HTTP/1.1) on one port.
    pub listen: SocketAddr,
    /// Directory for the embedded database, the signing key and outgoing mail.
    pub data_dir: PathBuf,
    /// The relational database.
    pub database: DatabaseConfig,
    /// Redis, for cross-node event delivery in cluster mode.
    pub redis: RedisConfig,
    /// Where file contents are stored.
    pub blobs: BlobsConfig,
    /// ScyllaDB/Cassandra, for message history in cluster mode.
    pub cql: CqlConfig,
    /// Longest time a call may take to produce its response, in seconds (event streams
    /// respond at once and are not cut by it).
    pub request_timeout_secs: u64,
    /// Token lifetimes and login throttling.
    pub auth: AuthConfig,
    /// Message limits.
    pub limits: LimitsConfig,
    /// Real-time stream tuning.
    pub stream: StreamConfig,
    /// Outgoing mail (password reset, email change).
    pub mail: MailConfig,
}

/// Outgoing mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// SMTP server URL, e.g. `smtps://user:pass@smtp.example.com` or
    /// `smtp://localhost:25`; empty writes each mail to `data_dir/outbox` instead.
    pub smtp_url: String,
    /// The sender shown on mails.
    pub from: String,
    /// Base URL of the app, for links in mails (`{public_url}/reset?code=…`); empty
    /// sends the bare code.
    pub public_url: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: String::new(),
            from: "SecureConnect <no-reply@localhost>".to_owned(),
            public_url: String::new(),
        }
    }
}

/// The relational database: SQLite (embedded default) or PostgreSQL / CockroachDB.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`; empty means SQLite in `data_dir`.
    pub url: String,
    /// Most connections this node keeps open.
    pub max_connections: u32,
    /// Seconds to wait for a free connection before failing with `UNAVAILABLE`.
    pub acquire_timeout_secs: u64,
    /// Longest a single statement may run on PostgreSQL, in seconds, before it is
    /// cancelled and the call fails with `UNAVAILABLE`.
    pub statement_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 16,
            acquire_timeout_secs: 5,
            statement_timeout_secs: 10,
        }
    }
}

/// Redis, for cluster mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`; empty keeps event delivery in-process
    /// (one node).
    pub url: String,
    /// Start of every key and channel; deployments sharing one Redis need different ones
    /// (all nodes of one deployment the same).
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            key_prefix: "sc".to_owned(),
        }
    }
}

/// Blob storage: the local file system (embedded default) or an S3-compatible service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    /// S3 bucket; empty stores blobs under `data_dir/blobs`.
    pub s3_bucket: String,
    /// S3 endpoint for self-hosted services (`http://host:8333`); empty means AWS.
    pub s3_endpoint: String,
    /// S3 region.
    pub s3_region: String,
    /// S3 access key id.
    pub s3_access_key_id: String,
    /// S3 secret access key (secret: prefer the environment).
    pub s3_secret_access_key: String,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            s3_bucket: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
        }
    }
}

/// ScyllaDB or Cassandra, holding message history in cluster mode. Conversations,
/// members and the event feeds stay in the relational database, which also numbers
/// every timeline event (see `store::cql`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CqlConfig {
    /// Comma-separated `host:port` of some nodes to discover the cluster from; empty keeps
    /// message history in the relational database.
    pub contact_points: String,
    /// Keyspace of the message tables; created with the replication below if missing.
    pub keyspace: String,
    /// Replicas per datacenter: `"dc1:3,dc2:3"` (NetworkTopologyStrategy). Empty means
    /// SimpleStrategy with `replication_factor` (single-datacenter clusters).
    pub datacenter_replication: String,
    /// Replicas when `datacenter_replication` is empty.
    pub replication_factor: u32,
    /// Datacenter to send requests to first; empty means any.
    pub local_datacenter: String,
    /// Consistency of every read and write.
    pub consistency: CqlConsistency,
    /// Longest a single request may take, in seconds, before the call fails with
    /// `UNAVAILABLE`.
    pub request_timeout_secs: u64,
}

/// CQL consistency levels a deployment may choose. Reads and writes use the same level,
/// so `*quorum` gives read-your-writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CqlConsistency {
    One,
    LocalOne,
    Quorum,
    LocalQuorum,
    All,
}

impl Default for CqlConfig {
    fn default() -> Self {
        Self {
            contact_points: String::new(),
            keyspace: "secureconnect".to_owned(),
            datacenter_replication: String::new(),
            replication_factor: 3,
            local_datacenter: String::new(),
            consistency: CqlConsistency::LocalQuorum,
            request_timeout_secs: 5,
        }
    }
}

/// Token lifetimes and login throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of an access token, in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token (and so of an idle session), in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Login attempts allowed per email address per minute.
    pub login_attempts_per_minute: u32,
    /// PEM file of the Ed25519 key that signs access tokens; empty means
    /// `data_dir/biscuit-root-key.pem`. Created on first start if missing. Every node of a
    /// cluster must use the same key, or tokens from one node fail on the others.
    pub root_key_file: String,
    /// Password hashes (argon2id, ~19 MiB and tens of ms each) computed at once; 0 means
    /// one per CPU core.
    pub password_hashing_concurrency: usize,
    /// Sign-ins that may wait for a hash beyond those running; more at once are refused
    /// with `RESOURCE_EXHAUSTED` (reason `SERVER_BUSY`) and a retry delay.
    pub password_hashing_queue: usize,
}

/// Message limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest text message, in bytes.
    pub max_text_bytes: usize,
    /// Largest encrypted payload, in bytes.
    pub max_encrypted_payload_bytes: usize,
    /// Messages (sent or forwarded) one user may post per second, across all nodes.
    pub messages_per_second: u32,
    /// Largest request message a call may carry, in bytes; larger ones are refused with
    /// `RESOURCE_EXHAUSTED` before they are read into memory.
    pub max_request_bytes: usize,
    /// Largest request metadata (HTTP header list, counted as HTTP/2 does), in bytes;
    /// larger gets `RESOURCE_EXHAUSTED`. HTTP/2 refuses header lists over 4× this outright.
    pub max_header_bytes: usize,
}

/// Real-time stream tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Seconds between heartbeats on an idle stream.
    pub heartbeat_secs: u64,
    /// Events buffered per stream before a slow reader is cut off.
    pub buffer_events: usize,
    /// Most events replayed on resume; a larger backlog yields a `Gap`.
    pub max_replay_events: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("data"),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            blobs: BlobsConfig::default(),
            cql: CqlConfig::default(),
            request_timeout_secs: 30,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            stream: StreamConfig::default(),
            mail: MailConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            login_attempts_per_minute: 10,
            root_key_file: String::new(),
            password_hashing_concurrency: 0,
            password_hashing_queue: 16,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_text_bytes: 16 * 1024,
            max_encrypted_payload_bytes: 64 * 1024,
            messages_per_second: 20,
            max_request_bytes: 4 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            heartbeat_secs: 15,
            buffer_events: 1024,
            max_replay_events: 10_000,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then `SECURECONNECT_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(
                Env::prefixed("SECURECONNECT_")
                    .ignore(&["config"])
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)
    }

    /// Where the token signing key lives.
    pub fn root_key_path(&self) -> PathBuf {
        if self.auth.root_key_file.is_empty() {
            self.data_dir.join("biscuit-root-key.pem")
        } else {
            PathBuf::from(&self.auth.root_key_file)
        }
    }

    /// The database URL actually used: the configured one or SQLite in `data_dir`.
    pub fn effective_database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("secureconnect.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config.example.toml");
        let example = Config::load(Some(&path)).expect("example config parses");
        assert_eq!(
            format!("{example:?}"),
            format!("{:?}", Config::default()),
            "deploy/config.example.toml drifted from Config::default()"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_port = 5\n").expect("write");
        assert!(Config::load(Some(&path)).is_err());
    }
}
