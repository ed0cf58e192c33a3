//! Client request ids (AIP-155): what makes a retry a retry.
//!
//! A request id is unique per user and kind of creation (messages — sent or forwarded —
//! and conversations). Its first use is recorded with a fingerprint of what the request
//! asked for; a later request with the same id gets the first one's result if it asks for
//! the same thing, and `ALREADY_EXISTS` (`REQUEST_ID_REUSED`) if it asks for anything else.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{RequestKey, RequestKind};

/// Builds a request fingerprint: SHA-256 over each part, length-prefixed so that no two
/// different sequences of parts hash the same input.
pub struct Fingerprint(Sha256);

impl Fingerprint {
    /// Starts a fingerprint for an operation (so a send and a forward never match).
    pub fn of(operation: &str) -> Self {
        Self(Sha256::new()).part(operation.as_bytes())
    }

    pub fn part(mut self, bytes: &[u8]) -> Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// A map, entry by entry in key order (so equal maps hash the same), after its size.
    pub fn map(self, map: &std::collections::BTreeMap<String, String>) -> Self {
        map.iter().fold(
            self.part(&(map.len() as u64).to_le_bytes()),
            |print, (key, value)| print.part(key.as_bytes()).part(value.as_bytes()),
        )
    }

    pub fn id(self, id: Uuid) -> Self {
        self.part(id.as_bytes())
    }

    pub fn optional_id(self, id: Option<Uuid>) -> Self {
        match id {
            Some(id) => self.part(b"some").id(id),
            None => self.part(b"none"),
        }
    }

    /// A list of ids, after its length; nothing at all for none, so that fingerprints
    /// made before a request had such a list stay the same.
    pub fn ids(self, ids: &[Uuid]) -> Self {
        if ids.is_empty() {
            return self;
        }
        ids.iter()
            .fold(self.part(&(ids.len() as u64).to_le_bytes()), |f, id| {
                f.id(*id)
            })
    }

    /// The key for `user`'s request `id` of this kind.
    pub fn key(self, user: Uuid, kind: RequestKind, id: String) -> RequestKey {
        RequestKey {
            user,
            kind,
            id,
            fingerprint: self.0.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed_so_boundaries_matter() {
        let user = Uuid::nil();
        let a = Fingerprint::of("send").part(b"ab").part(b"c");
        let b = Fingerprint::of("send").part(b"a").part(b"bc");
        assert_ne!(
            a.key(user, RequestKind::Message, "r".into()).fingerprint,
            b.key(user, RequestKind::Message, "r".into()).fingerprint
        );
    }

    #[test]
    fn the_same_request_has_the_same_fingerprint() {
        let user = Uuid::nil();
        let make = || Fingerprint::of("send").part(b"hello").optional_id(None);
        assert_eq!(
            make().key(user, RequestKind::Message, "r".into()),
            make().key(user, RequestKind::Message, "r".into())
        );
    }
}
