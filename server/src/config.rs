//! Typed configuration: defaults, then an optional TOML file, then `SECURECONNECT_*`
//! environment variables (nested keys use `__`, e.g. `SECURECONNECT_AUTH__ACCESS_TOKEN_TTL_SECS`).
//! Every field is documented in `deploy/config.example.toml`.
//!
//! Loading also reads secrets given as files (`*_file`, for mounted secrets) and checks
//! every setting, so that a bad one stops the server at start-up with a message naming
//! it instead of failing later, or silently, at first use.

mod checks;
mod secret;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use self::secret::empty_as_none;
pub use self::secret::{Secret, SecretUrl};

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
    /// The drive: quotas and upload limits.
    pub drive: DriveConfig,
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
    /// A web app served on the same port (the built demo, or your own).
    pub web: WebConfig,
    /// Calls: the SFU's media socket, ICE servers, limits.
    pub calls: CallsConfig,
}

/// Calls and their SFU.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// The UDP socket every call participant's media goes through on this node (port 0:
    /// any free port). A wildcard address (`0.0.0.0:…`) needs `public_ip`.
    pub media_bind: SocketAddr,
    /// The address participants reach this node's media socket at (behind NAT, or with
    /// a wildcard `media_bind`); unset: `media_bind`'s.
    #[serde(deserialize_with = "empty_as_none")]
    pub public_ip: Option<String>,
    /// Most participants in one call at once.
    pub max_participants: u32,
    /// Seconds a call rings before those who did not answer missed it.
    pub ring_timeout_secs: u64,
    /// STUN server URLs handed to clients (`stun:host:port`).
    pub stun_urls: Vec<String>,
    /// TURN server URLs handed to clients (`turn:host:port?transport=udp`, `turns:…`),
    /// with credentials made from `turn_secret`.
    pub turn_urls: Vec<String>,
    /// The TURN server's shared secret (coturn `static-auth-secret`); required with
    /// `turn_urls`.
    pub turn_secret: Secret,
    /// A file holding `turn_secret` (a mounted secret); set this or `turn_secret`.
    #[serde(deserialize_with = "empty_as_none")]
    pub turn_secret_file: Option<PathBuf>,
    /// How long TURN credentials work, in seconds.
    pub turn_ttl_secs: u64,
    /// This node's gRPC URL as the other nodes of a cluster reach it (they forward the
    /// RPCs of the calls it carries there); unset: `http://` and the address it listens
    /// on, which in a cluster must then not be a wildcard.
    #[serde(deserialize_with = "empty_as_none")]
    pub node_url: Option<String>,
}

impl CallsConfig {
    /// `public_ip` as an address (`None` when unset or not an IP: loading refuses that).
    pub fn public_ip(&self) -> Option<std::net::IpAddr> {
        self.public_ip
            .as_deref()
            .and_then(|ip| ip.trim().parse().ok())
    }
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            media_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_ip: None,
            max_participants: 50,
            ring_timeout_secs: 45,
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: Secret::default(),
            turn_secret_file: None,
            turn_ttl_secs: 12 * 3600,
            node_url: None,
        }
    }
}

/// Static files served beside the API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// A directory of static files (`index.html` at its root) served for every request
    /// that is not a gRPC or gRPC-web call; unset serves none.
    #[serde(deserialize_with = "empty_as_none")]
    pub dir: Option<PathBuf>,
}

/// Outgoing mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// SMTP server URL, e.g. `smtps://user:pass@smtp.example.com` or
    /// `smtp://localhost:25`; unset writes each mail to `data_dir/outbox` instead.
    #[serde(deserialize_with = "empty_as_none")]
    pub smtp_url: Option<SecretUrl>,
    /// A file holding `smtp_url` (a mounted secret); set this or `smtp_url`, not both.
    #[serde(deserialize_with = "empty_as_none")]
    pub smtp_url_file: Option<PathBuf>,
    /// The sender shown on mails.
    pub from: String,
    /// Base URL of the app, for links in mails (`{public_url}/reset?code=…`); unset
    /// sends the bare code.
    #[serde(deserialize_with = "empty_as_none")]
    pub public_url: Option<String>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            smtp_url_file: None,
            from: "SecureConnect <no-reply@localhost>".to_owned(),
            public_url: None,
        }
    }
}

/// The relational database: SQLite (embedded default) or PostgreSQL / CockroachDB.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`; unset means SQLite in `data_dir`.
    #[serde(deserialize_with = "empty_as_none")]
    pub url: Option<SecretUrl>,
    /// A file holding `url` (a mounted secret); set this or `url`, not both.
    #[serde(deserialize_with = "empty_as_none")]
    pub url_file: Option<PathBuf>,
    /// Most connections this node keeps open.
    pub max_connections: u32,
    /// Seconds to wait for a free connection before failing with `UNAVAILABLE`.
    pub acquire_timeout_secs: u64,
    /// Longest a single statement may run on PostgreSQL, in seconds, before it is
    /// cancelled and the call fails with `UNAVAILABLE`.
    pub statement_timeout_secs: u64,
    /// When SQLite makes a commit durable (the embedded default only).
    pub sqlite_sync: SqliteSync,
    /// Conversations whose membership grows past this many members are fanned out on
    /// read from then on: each event is stored once on a shared timeline that members'
    /// streams read, instead of once in every member's feed (a write per member per
    /// event). Smaller conversations keep per-member feeds.
    pub fanout_on_read_members: u32,
}

/// When a SQLite commit is made durable: what an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// The WAL is synced before each commit returns: an acknowledged write survives a crash
    /// of the server and a power loss. Concurrent writes share one sync (group commit).
    #[default]
    Full,
    /// No sync per commit (only when the WAL is copied back): an acknowledged write
    /// survives a crash of the server, but a power loss or kernel crash may lose the last
    /// moments of writes (the database stays consistent). Less work per commit; the WAL is
    /// still synced when it is copied back into the database file.
    Normal,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            max_connections: 16,
            acquire_timeout_secs: 5,
            statement_timeout_secs: 10,
            sqlite_sync: SqliteSync::Full,
            fanout_on_read_members: 100,
        }
    }
}

/// Redis, for cluster mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`; unset keeps event delivery in-process
    /// (one node).
    #[serde(deserialize_with = "empty_as_none")]
    pub url: Option<SecretUrl>,
    /// A file holding `url` (a mounted secret); set this or `url`, not both.
    #[serde(deserialize_with = "empty_as_none")]
    pub url_file: Option<PathBuf>,
    /// Start of every key and channel; deployments sharing one Redis need different ones
    /// (all nodes of one deployment the same).
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            key_prefix: "sc".to_owned(),
        }
    }
}

/// The drive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriveConfig {
    /// Each user's storage, in bytes (files and trash).
    pub quota_bytes: u64,
    /// The largest file, in bytes.
    pub max_file_bytes: u64,
    /// How long an upload lasts without receiving a chunk before it expires and its
    /// reservation is released, in seconds.
    pub upload_ttl_secs: u64,
    /// Uploads one user may start per minute, across all nodes.
    pub uploads_per_minute: u32,
}

impl Default for DriveConfig {
    fn default() -> Self {
        Self {
            quota_bytes: 10 << 30,
            max_file_bytes: 2 << 30,
            upload_ttl_secs: 24 * 60 * 60,
            uploads_per_minute: 120,
        }
    }
}

/// Blob storage: the local file system (embedded default) or an S3-compatible service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    /// S3 bucket; unset stores blobs under `data_dir/blobs`.
    #[serde(deserialize_with = "empty_as_none")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint for self-hosted services (`http://host:8333`); unset means AWS.
    #[serde(deserialize_with = "empty_as_none")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: String,
    /// S3 access key id. (A plain string, not an `Option`: it is always handed to the S3
    /// client, which treats "given empty" and "not given" differently.)
    pub s3_access_key_id: String,
    /// S3 secret access key (secret: prefer the environment or `s3_secret_access_key_file`).
    pub s3_secret_access_key: Secret,
    /// A file holding `s3_secret_access_key` (a mounted secret); set this or
    /// `s3_secret_access_key`, not both.
    #[serde(deserialize_with = "empty_as_none")]
    pub s3_secret_access_key_file: Option<PathBuf>,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_secret_access_key_file: None,
        }
    }
}

/// ScyllaDB or Cassandra, holding message history in cluster mode. Conversations,
/// members and the event feeds stay in the relational database, which also numbers
/// every timeline event (see `store::cql`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CqlConfig {
    /// Comma-separated `host:port` of some nodes to discover the cluster from; unset keeps
    /// message history in the relational database.
    #[serde(deserialize_with = "empty_as_none")]
    pub contact_points: Option<String>,
    /// Keyspace of the message tables; created with the replication below if missing.
    pub keyspace: String,
    /// Replicas per datacenter: `"dc1:3,dc2:3"` (NetworkTopologyStrategy). Unset means
    /// SimpleStrategy with `replication_factor` (single-datacenter clusters).
    #[serde(deserialize_with = "empty_as_none")]
    pub datacenter_replication: Option<String>,
    /// Replicas when `datacenter_replication` is unset.
    pub replication_factor: u32,
    /// Datacenter to send requests to first; unset means any.
    #[serde(deserialize_with = "empty_as_none")]
    pub local_datacenter: Option<String>,
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
            contact_points: None,
            keyspace: "secureconnect".to_owned(),
            datacenter_replication: None,
            replication_factor: 3,
            local_datacenter: None,
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
    /// PEM file of the Ed25519 key that signs access tokens; unset means
    /// `data_dir/biscuit-root-key.pem`. Created on first start if missing. Every node of a
    /// cluster must use the same key, or tokens from one node fail on the others.
    #[serde(deserialize_with = "empty_as_none")]
    pub root_key_file: Option<PathBuf>,
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
            drive: DriveConfig::default(),
            cql: CqlConfig::default(),
            request_timeout_secs: 30,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            stream: StreamConfig::default(),
            mail: MailConfig::default(),
            web: WebConfig::default(),
            calls: CallsConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            login_attempts_per_minute: 10,
            root_key_file: None,
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
            // A 4 MiB upload chunk and the rest of its request.
            max_request_bytes: 4 * 1024 * 1024 + 64 * 1024,
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
    /// Loads defaults, then `file` (if given), then `SECURECONNECT_*` variables; then reads
    /// the secrets given as files and checks every setting (see [`Config::validate`]).
    /// Every problem found is reported at once.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut config: Config = figment
            .merge(
                Env::prefixed("SECURECONNECT_")
                    .ignore(&["config"])
                    .split("__"),
            )
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        let mut problems = config.read_secret_files();
        problems.extend(config.problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Checks that every setting is within its range, listing every one that is not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Where the token signing key lives.
    pub fn root_key_path(&self) -> PathBuf {
        match &self.auth.root_key_file {
            Some(file) => file.clone(),
            None => self.data_dir.join("biscuit-root-key.pem"),
        }
    }

    /// The database URL actually used: the configured one or SQLite in `data_dir`.
    pub fn effective_database_url(&self) -> SecretUrl {
        match &self.database.url {
            Some(url) => url.clone(),
            None => SecretUrl::from(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("secureconnect.db").display()
            )),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment does not parse (figment's message names the key).
    #[error(transparent)]
    Parse(Box<figment::Error>),
    /// Settings that parse but cannot work: one line per problem, each naming its key.
    #[error("{} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_the_defaults() {
        let path = crate::crate_dir().join("../deploy/config.example.toml");
        let example = Config::load(Some(&path)).expect("example config parses");
        assert_eq!(
            format!("{example:?}"),
            format!("{:?}", Config::default()),
            "deploy/config.example.toml drifted from Config::default()"
        );
    }

    #[test]
    fn sqlite_sync_is_full_unless_normal_is_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let normal = load_toml(dir.path(), "[database]\nsqlite_sync = \"normal\"\n");
        assert_eq!(
            normal.expect("valid").database.sqlite_sync,
            SqliteSync::Normal
        );
        let unknown = load_toml(dir.path(), "[database]\nsqlite_sync = \"off\"\n");
        assert!(unknown.is_err(), "{unknown:?}");
        assert_eq!(Config::default().database.sqlite_sync, SqliteSync::Full);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_port = 5\n").expect("write");
        assert!(Config::load(Some(&path)).is_err());
    }

    /// Writes `toml` to a config file in `dir` and loads it.
    fn load_toml(dir: &Path, toml: &str) -> Result<Config, ConfigError> {
        let path = dir.join("config.toml");
        std::fs::write(&path, toml).expect("write config");
        Config::load(Some(&path))
    }

    fn problems(result: Result<Config, ConfigError>) -> Vec<String> {
        match result {
            Err(ConfigError::Invalid(problems)) => problems,
            other => panic!("expected invalid settings, got {other:?}"),
        }
    }

    #[test]
    fn secrets_are_read_from_files_without_their_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = [
            ("db", "postgres://app:pw@db/sc\n"),
            ("redis", "redis://:pw@redis\r\n"),
            ("smtp", "smtps://me:pw@smtp.example.com"),
            ("s3", "s3-secret\n\n"),
        ];
        for (name, contents) in secrets {
            std::fs::write(dir.path().join(name), contents).expect("write secret");
        }
        let d = dir.path().display();
        let config = load_toml(
            dir.path(),
            &format!(
                "[database]\nurl_file = \"{d}/db\"\n[redis]\nurl_file = \"{d}/redis\"\n\
                 [mail]\nsmtp_url_file = \"{d}/smtp\"\n\
                 [blobs]\ns3_secret_access_key_file = \"{d}/s3\"\n"
            ),
        )
        .expect("loads");
        let expose = |url: &Option<SecretUrl>| url.as_ref().map(|u| u.expose().to_owned());
        assert_eq!(
            expose(&config.database.url).as_deref(),
            Some("postgres://app:pw@db/sc")
        );
        assert_eq!(
            expose(&config.redis.url).as_deref(),
            Some("redis://:pw@redis")
        );
        assert_eq!(
            expose(&config.mail.smtp_url).as_deref(),
            Some("smtps://me:pw@smtp.example.com")
        );
        assert_eq!(config.blobs.s3_secret_access_key.expose(), "s3-secret");
        assert_eq!(
            config.effective_database_url().expose(),
            "postgres://app:pw@db/sc"
        );
    }

    #[test]
    fn a_secret_given_both_directly_and_as_a_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("redis"), "redis://other").expect("write secret");
        let d = dir.path().display();
        let found = problems(load_toml(
            dir.path(),
            &format!("[redis]\nurl = \"redis://one\"\nurl_file = \"{d}/redis\"\n"),
        ));
        assert_eq!(
            found,
            ["redis.url and redis.url_file are both set: give the secret one way only"]
        );
    }

    #[test]
    fn a_missing_secret_file_names_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let found = problems(load_toml(
            dir.path(),
            "[database]\nurl_file = \"/nonexistent/sc-db-url\"\n",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("database.url_file = /nonexistent/sc-db-url: cannot read it"),
            "{found:?}"
        );
    }

    #[test]
    fn every_setting_out_of_range_is_listed_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = load_toml(
            dir.path(),
            "request_timeout_secs = 0\n\
             [database]\nmax_connections = 0\n\
             [limits]\nmax_header_bytes = 10\nmax_request_bytes = 100000000\n\
             [stream]\nheartbeat_secs = 0\n",
        );
        let message = result
            .as_ref()
            .map(|_| ())
            .expect_err("invalid")
            .to_string();
        assert_eq!(
            problems(result),
            [
                "request_timeout_secs = 0: must be from 1 to 3600",
                "database.max_connections = 0: must be from 1 to 1000",
                "limits.max_request_bytes = 100000000: must be from 4096 to 67108864",
                "limits.max_header_bytes = 10: must be from 4096 to 1048576",
                "stream.heartbeat_secs = 0: must be from 1 to 3600",
            ]
        );
        assert!(
            message.starts_with("5 problem(s):\n  - request_timeout_secs"),
            "{message}"
        );
    }

    #[test]
    fn a_request_limit_below_the_message_limits_is_refused() {
        let mut config = Config::default();
        config.limits.max_request_bytes = 8 * 1024;
        let Err(ConfigError::Invalid(found)) = config.validate() else {
            panic!("expected invalid settings")
        };
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("at least limits.max_text_bytes (16384)"));
        assert!(found[1].contains("at least limits.max_encrypted_payload_bytes (65536)"));
        Config::default()
            .validate()
            .expect("the defaults are valid");
    }

    #[test]
    fn empty_strings_still_mean_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = load_toml(
            dir.path(),
            "[database]\nurl = \"\"\nurl_file = \"\"\n[cql]\ncontact_points = \" \"\n",
        )
        .expect("loads");
        assert!(config.database.url.is_none() && config.database.url_file.is_none());
        assert!(config.cql.contact_points.is_none());
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let mut config = Config::default();
        config.database.url = Some("postgres://app:db-pw@db:5432/sc".into());
        config.redis.url = Some("redis://:redis-pw@redis:6379".into());
        config.mail.smtp_url = Some("smtps://me:smtp-pw@smtp.example.com".into());
        config.blobs.s3_secret_access_key = "s3-pw".into();
        let shown = format!("{config:?} {:?}", config.effective_database_url());
        for secret in ["db-pw", "redis-pw", "smtp-pw", "s3-pw"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        // What one needs to tell a connection problem apart is still there.
        assert!(shown.contains("postgres://app:***@db:5432/sc"), "{shown}");
        assert!(shown.contains("redis://:***@redis:6379"), "{shown}");
    }
}
