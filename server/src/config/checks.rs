//! What loading checks after parsing: secrets given as files are read into their
//! settings, and every number is held to a range that can work. Each problem is one line
//! naming its key, and all are collected so an operator fixes them in one go.

use std::{fmt::Display, path::Path};

use super::Config;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

impl Config {
    /// Replaces each `*_file` secret by the file's contents (without its trailing newline);
    /// returns what went wrong.
    pub(super) fn read_secret_files(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let database = &mut self.database;
        if let Some(url) = read_secret(
            "database.url",
            database.url.is_some(),
            database.url_file.as_deref(),
            &mut problems,
        ) {
            database.url = Some(url.into());
        }
        let redis = &mut self.redis;
        if let Some(url) = read_secret(
            "redis.url",
            redis.url.is_some(),
            redis.url_file.as_deref(),
            &mut problems,
        ) {
            redis.url = Some(url.into());
        }
        let mail = &mut self.mail;
        if let Some(url) = read_secret(
            "mail.smtp_url",
            mail.smtp_url.is_some(),
            mail.smtp_url_file.as_deref(),
            &mut problems,
        ) {
            mail.smtp_url = Some(url.into());
        }
        let blobs = &mut self.blobs;
        if let Some(key) = read_secret(
            "blobs.s3_secret_access_key",
            !blobs.s3_secret_access_key.is_empty(),
            blobs.s3_secret_access_key_file.as_deref(),
            &mut problems,
        ) {
            blobs.s3_secret_access_key = key.into();
        }
        let calls = &mut self.calls;
        if let Some(secret) = read_secret(
            "calls.turn_secret",
            !calls.turn_secret.is_empty(),
            calls.turn_secret_file.as_deref(),
            &mut problems,
        ) {
            calls.turn_secret = secret.into();
        }
        problems
    }

    /// Every setting outside the range it can work in.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut p = Problems::default();
        p.range("request_timeout_secs", self.request_timeout_secs, 1, HOUR);

        let database = &self.database;
        p.range(
            "database.max_connections",
            database.max_connections,
            1,
            1000,
        );
        let acquire = database.acquire_timeout_secs;
        p.range("database.acquire_timeout_secs", acquire, 1, 5 * MINUTE);
        let statement = database.statement_timeout_secs;
        p.range("database.statement_timeout_secs", statement, 1, HOUR);

        p.range(
            "cql.replication_factor",
            self.cql.replication_factor,
            1,
            100,
        );
        let cql_timeout = self.cql.request_timeout_secs;
        p.range("cql.request_timeout_secs", cql_timeout, 1, 5 * MINUTE);

        let auth = &self.auth;
        p.range(
            "auth.access_token_ttl_secs",
            auth.access_token_ttl_secs,
            1,
            DAY,
        );
        let refresh = auth.refresh_token_ttl_secs;
        p.range("auth.refresh_token_ttl_secs", refresh, 1, 365 * DAY);
        let attempts = auth.login_attempts_per_minute;
        p.range("auth.login_attempts_per_minute", attempts, 1, 100_000);
        let hashing = auth.password_hashing_concurrency;
        p.range("auth.password_hashing_concurrency", hashing, 0, 1024);
        let queue = auth.password_hashing_queue;
        p.range("auth.password_hashing_queue", queue, 0, 100_000);

        let limits = &self.limits;
        p.range("limits.max_text_bytes", limits.max_text_bytes, 1, 16 * MIB);
        let payload = limits.max_encrypted_payload_bytes;
        p.range("limits.max_encrypted_payload_bytes", payload, 1, 64 * MIB);
        let rate = limits.messages_per_second;
        p.range("limits.messages_per_second", rate, 1, 10_000_000);
        let request = limits.max_request_bytes;
        p.range("limits.max_request_bytes", request, 4 * KIB, 64 * MIB);
        let header = limits.max_header_bytes;
        p.range("limits.max_header_bytes", header, 4 * KIB, MIB);
        // A request carries a whole message: one at the message limits must fit.
        for (key, limit) in [
            ("limits.max_text_bytes", limits.max_text_bytes),
            ("limits.max_encrypted_payload_bytes", payload),
        ] {
            if request < limit {
                p.0.push(format!(
                    "limits.max_request_bytes = {request}: must be at least {key} ({limit}), \
                     or messages that size could never be sent"
                ));
            }
        }

        let drive = &self.drive;
        p.range("drive.quota_bytes", drive.quota_bytes, 0, 1 << 50);
        p.range("drive.max_file_bytes", drive.max_file_bytes, 1, 1 << 40);
        p.range("drive.upload_ttl_secs", drive.upload_ttl_secs, 60, 30 * DAY);
        let uploads = drive.uploads_per_minute;
        p.range("drive.uploads_per_minute", uploads, 1, 1_000_000);

        let stream = &self.stream;
        p.range("stream.heartbeat_secs", stream.heartbeat_secs, 1, HOUR);
        p.range("stream.buffer_events", stream.buffer_events, 1, 1_000_000);
        let replay = stream.max_replay_events;
        p.range("stream.max_replay_events", replay, 1, 10_000_000);

        let calls = &self.calls;
        let most = calls.max_participants;
        p.range("calls.max_participants", most, 2, 1000);
        p.range("calls.ring_timeout_secs", calls.ring_timeout_secs, 5, HOUR);
        p.range("calls.turn_ttl_secs", calls.turn_ttl_secs, MINUTE, 7 * DAY);
        if let Some(ip) = &calls.public_ip
            && calls.public_ip().is_none()
        {
            p.0.push(format!("calls.public_ip = {ip:?}: not an IP address"));
        }
        if calls.media_bind.ip().is_unspecified() && calls.public_ip.is_none() {
            p.0.push(format!(
                "calls.media_bind = {}: a wildcard address needs calls.public_ip, the \
                 address participants reach this node at",
                calls.media_bind
            ));
        }
        if self.redis.url.is_some() && calls.node_url.is_none() && self.listen.ip().is_unspecified()
        {
            p.0.push(format!(
                "listen = {}: in a cluster (redis.url set) a wildcard address needs \
                 calls.node_url, the URL other nodes reach this one at",
                self.listen
            ));
        }
        if !calls.turn_urls.is_empty() && calls.turn_secret.is_empty() {
            p.0.push(
                "calls.turn_urls is set without calls.turn_secret: TURN credentials are made \
                 from the secret the TURN server shares"
                    .to_owned(),
            );
        }
        p.0
    }
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn range<T: PartialOrd + Display>(&mut self, key: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.0
                .push(format!("{key} = {value}: must be from {min} to {max}"));
        }
    }
}

/// The secret in `file`, when `key` is given as a file; `None` (with the reason in
/// `problems` when there is one) otherwise.
fn read_secret(
    key: &str,
    set_directly: bool,
    file: Option<&Path>,
    problems: &mut Vec<String>,
) -> Option<String> {
    let file = file?;
    if set_directly {
        problems.push(format!(
            "{key} and {key}_file are both set: give the secret one way only"
        ));
        return None;
    }
    let shown = file.display();
    match std::fs::read_to_string(file) {
        // Files written by `echo` or an editor end with a newline that is no part of it.
        Ok(text) => match text.trim_end_matches(['\r', '\n']) {
            "" => {
                problems.push(format!("{key}_file = {shown}: the file is empty"));
                None
            }
            secret => Some(secret.to_owned()),
        },
        Err(err) => {
            problems.push(format!("{key}_file = {shown}: cannot read it: {err}"));
            None
        }
    }
}
