//! TURN credentials for call participants, in the format of coturn's REST API
//! (`use-auth-secret` with `static-auth-secret`): the username is `<expiry>:<user id>`
//! (the expiry in Unix seconds) and the password is base64(HMAC-SHA1(secret, username)).
//! A TURN server sharing the secret checks them on its own, without calling us, and
//! refuses them after the expiry.

use base64::Engine;
use hmac::{KeyInit, Mac};

/// A TURN username and password, valid until `expires_unix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    pub username: String,
    pub password: String,
    pub expires_unix: u64,
}

/// Credentials for `user` that stop working at `expires_unix`.
pub fn turn_credentials(secret: &[u8], user: &str, expires_unix: u64) -> TurnCredentials {
    let username = format!("{expires_unix}:{user}");
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    TurnCredentials {
        username,
        password,
        expires_unix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_coturn_rest_algorithm() {
        // Expected value from Python's hmac module, independently of this code:
        // base64(hmac.new(b"north", b"1767225600:alice", hashlib.sha1).digest())
        let got = turn_credentials(b"north", "alice", 1_767_225_600);
        assert_eq!(got.username, "1767225600:alice");
        assert_eq!(got.password, "qnVCfmDqv+5N7tpxKH0liO/huIU=");
        assert_ne!(
            turn_credentials(b"north", "bob", 1_767_225_600).password,
            got.password
        );
        assert_ne!(
            turn_credentials(b"south", "alice", 1_767_225_600).password,
            got.password
        );
    }
}
