//! Opaque page tokens. Clients must treat them as opaque; they are base64url so they
//! survive any transport, and malformed ones are an `INVALID_ARGUMENT`, not a panic.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::{domain::Time, error::Error};

/// The token for the page after `items`: empty when the page came back short (the last
/// one), else `key` of the last item.
pub fn next_token<T>(items: &[T], page_size: u64, key: impl FnOnce(&T) -> String) -> String {
    match items.last() {
        Some(last) if items.len() as u64 == page_size => key(last),
        _ => String::new(),
    }
}

/// Encodes a (time, id) keyset position. Nanoseconds, because SQLite keeps them: a
/// coarser key would skip rows stored within the same microsecond as a page's last row.
pub fn encode_time_key(time: Time, id: Uuid) -> String {
    let nanos = time
        .timestamp_nanos_opt()
        .unwrap_or(time.timestamp_micros().saturating_mul(1000));
    URL_SAFE_NO_PAD.encode(format!("t:{nanos}:{id}"))
}

/// Decodes a (time, id) keyset position; empty means the first page.
pub fn decode_time_key(field: &str, token: &str) -> Result<Option<(Time, Uuid)>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid(field, "not a page token from this server");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ':');
    let (Some("t"), Some(nanos), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let nanos: i64 = nanos.parse().map_err(|_| bad())?;
    let time = chrono::DateTime::from_timestamp_nanos(nanos);
    Ok(Some((time, Uuid::parse_str(id).map_err(|_| bad())?)))
}

/// Encodes a text keyset position (e.g. a username).
pub fn encode_text_key(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("s:{key}"))
}

/// Decodes a text keyset position; empty means the first page.
pub fn decode_text_key(field: &str, token: &str) -> Result<Option<String>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid(field, "not a page token from this server");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix("s:")
        .map(|k| Some(k.to_owned()))
        .ok_or_else(bad)
}

/// Encodes a sequence position with a direction flag.
pub fn encode_seq_key(forward: bool, seq: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{seq}", if forward { "f" } else { "b" }))
}

/// Decodes a sequence position: `(forward, seq)`.
pub fn decode_seq_key(field: &str, token: &str) -> Result<Option<(bool, u64)>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid(field, "not a page token from this server");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (dir, seq) = text.split_once(':').ok_or_else(bad)?;
    let forward = match dir {
        "f" => true,
        "b" => false,
        _ => return Err(bad()),
    };
    Ok(Some((forward, seq.parse().map_err(|_| bad())?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        let now = chrono::DateTime::from_timestamp_nanos(1_700_000_000_123_456_789);
        let id = Uuid::now_v7();
        let token = encode_time_key(now, id);
        assert_eq!(
            decode_time_key("page_token", &token).expect("decode"),
            Some((now, id))
        );
        assert_eq!(
            decode_seq_key("t", &encode_seq_key(true, 42)).expect("seq"),
            Some((true, 42))
        );
        assert_eq!(
            decode_text_key("t", &encode_text_key("ann")).expect("text"),
            Some("ann".into())
        );
        for garbage in ["!!!", "dDox", "eDp5", &encode_text_key("x")] {
            assert!(decode_time_key("page_token", garbage).is_err(), "{garbage}");
        }
        assert!(decode_seq_key("t", &encode_time_key(now, id)).is_err());
    }
}
