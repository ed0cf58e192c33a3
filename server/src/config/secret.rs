//! Settings that must never reach a log: their `Debug` hides the secret part, and code
//! that needs the value asks for it by name (`expose`), which is easy to review.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A secret value, such as an S3 secret key. `Debug` shows `[redacted]`, or `""` when
/// unset so that a missing secret is still visible in a dump of the configuration.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"[redacted]\"")
        }
    }
}

/// A URL that may carry credentials (`postgres://user:password@host/db`,
/// `redis://:password@host`, `smtps://user:password@host`). `Debug` keeps the scheme,
/// user, host and path, which is what one looks for when a connection fails, and masks
/// the password and credential-like query parameters (`?password=…`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match masked(&self.0) {
            Some(url) => write!(f, "{:?}", url.as_str()),
            // Not a URL we can take apart: it may hold a password anywhere.
            None => f.write_str("\"[redacted]\""),
        }
    }
}

const MASK: &str = "***";

fn masked(raw: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(raw).ok()?;
    // `user:password` parses too, as a scheme and an opaque path: nothing to keep there.
    if url.cannot_be_a_base() {
        return None;
    }
    if url.password().is_some() {
        url.set_password(Some(MASK)).ok()?;
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if is_credential(&key) {
                    MASK.to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Some(url)
}

fn is_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "secret", "token", "key"]
        .iter()
        .any(|word| key.contains(word))
}

/// Reads an optional setting where an empty (or blank) string also means "not set", so
/// that `url = ""` in existing files and `SECURECONNECT_REDIS__URL=` keep meaning "off".
pub(super) fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.trim().is_empty()).map(T::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debug(url: &str) -> String {
        format!("{:?}", SecretUrl::from(url))
    }

    #[test]
    fn url_passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            debug("postgres://app:hunter2@db.internal:5432/sc"),
            "\"postgres://app:***@db.internal:5432/sc\""
        );
        assert_eq!(
            debug("redis://:hunter2@redis:6379/0"),
            "\"redis://:***@redis:6379/0\""
        );
        assert_eq!(
            debug("postgres://db/sc?user=app&password=hunter2&sslmode=require"),
            "\"postgres://db/sc?user=app&password=***&sslmode=require\""
        );
        assert_eq!(debug("redis://redis:6379"), "\"redis://redis:6379\"");
    }

    #[test]
    fn what_is_not_a_url_is_hidden_whole() {
        assert_eq!(debug("app:hunter2 at db"), "\"[redacted]\"");
        assert_eq!(debug("app:hunter2@db"), "\"[redacted]\"");
        assert_eq!(
            debug("sqlite:///srv/sc/secureconnect.db?mode=rwc"),
            "\"sqlite:///srv/sc/secureconnect.db?mode=rwc\""
        );
        assert_eq!(format!("{:?}", Secret::from("hunter2")), "\"[redacted]\"");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }
}
