//! Request validation helpers: collect every field violation, then fail once.

use uuid::Uuid;

use crate::error::{Error, FieldViolation, Result};

/// The most violations one error lists. They travel in a trailer, and a request of a
/// thousand bad ids must not answer with a trailer too large for clients to read.
pub const MAX_VIOLATIONS: usize = 32;

/// Collects field violations so a client learns of all its mistakes at once (up to
/// [`MAX_VIOLATIONS`], then how many more there were).
#[derive(Debug, Default)]
pub struct Violations {
    listed: Vec<FieldViolation>,
    more: usize,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`.
    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        if self.listed.len() >= MAX_VIOLATIONS {
            self.more += 1;
            return;
        }
        self.listed.push(FieldViolation {
            field: field.to_owned(),
            description: description.into(),
        });
    }

    /// `INVALID_ARGUMENT` with every violation, or `Ok` when there is none.
    pub fn finish(mut self) -> Result<()> {
        if self.listed.is_empty() {
            return Ok(());
        }
        if self.more > 0
            && let Some(last) = self.listed.last_mut()
        {
            last.description = format!(
                "{} (and {} more violations not listed)",
                last.description, self.more
            );
        }
        Err(Error::InvalidArgument(self.listed))
    }

    /// Parses a required id; records a violation and returns `None` if absent or malformed.
    pub fn id(&mut self, field: &str, raw: &str) -> Option<Uuid> {
        if raw.is_empty() {
            self.add(field, "required");
            return None;
        }
        match Uuid::parse_str(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                self.add(field, "not a valid id");
                None
            }
        }
    }

    /// Parses an optional id (empty means none).
    pub fn optional_id(&mut self, field: &str, raw: &str) -> Option<Uuid> {
        if raw.is_empty() {
            None
        } else {
            self.id(field, raw)
        }
    }

    /// Checks a free-text field's length (in characters) and that it has no control
    /// characters other than newlines and tabs.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if len < min {
            self.add(
                field,
                if min == 1 {
                    "required".to_owned()
                } else {
                    format!("at least {min} characters")
                },
            );
        } else if len > max {
            self.add(field, format!("at most {max} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.add(field, "contains control characters");
        }
    }

    /// Validates a page size: 0 means `default`; otherwise 1..=`max`.
    pub fn page_size(&mut self, field: &str, raw: i32, default: u64, max: u64) -> u64 {
        match u64::try_from(raw) {
            Ok(0) => default,
            Ok(size) if size <= max => size,
            _ => {
                self.add(field, format!("must be between 0 and {max}"));
                default
            }
        }
    }
}

/// Normalises and checks an email address (lowercase, one `@`, a dotted domain).
pub fn email(v: &mut Violations, field: &str, raw: &str) -> String {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if email.is_empty() {
        v.add(field, "required");
    } else if !valid {
        v.add(field, "not a valid email address");
    }
    email
}

/// Checks a username: 3-32 of a-z, 0-9 and `_`, starting with a letter.
pub fn username(v: &mut Violations, field: &str, raw: &str) {
    let valid = (3..=32).contains(&raw.len())
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if raw.is_empty() {
        v.add(field, "required");
    } else if !valid {
        v.add(
            field,
            "3-32 characters of a-z, 0-9 and _, starting with a letter",
        );
    }
}

/// Checks a password's length.
pub fn password(v: &mut Violations, field: &str, raw: &str) {
    let len = raw.chars().count();
    if raw.is_empty() {
        v.add(field, "required");
    } else if !(8..=256).contains(&len) {
        v.add(field, "8 to 256 characters");
    }
}

/// Checks a client request id (idempotency key).
pub fn request_id(v: &mut Violations, field: &str, raw: &str, required: bool) {
    if raw.is_empty() {
        if required {
            v.add(field, "required");
        }
    } else if raw.len() > 64 || raw.chars().any(char::is_control) {
        v.add(field, "at most 64 characters, no control characters");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_violations_lists_a_few_and_counts_the_rest() {
        let mut v = Violations::new();
        for i in 0..1000 {
            v.add(&format!("ids[{i}]"), "not an id");
        }
        let Err(Error::InvalidArgument(listed)) = v.finish() else {
            panic!("expected INVALID_ARGUMENT");
        };
        assert_eq!(listed.len(), MAX_VIOLATIONS);
        assert_eq!(listed[0].field, "ids[0]");
        assert!(
            listed[MAX_VIOLATIONS - 1].description.contains("968 more"),
            "{:?}",
            listed.last()
        );
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        let mut v = Violations::new();
        assert_eq!(
            email(&mut v, "email", " Ann@Example.COM "),
            "ann@example.com"
        );
        assert!(v.finish().is_ok());
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@localhost",
            "a b@example.com",
            "a@b@c.com",
        ] {
            let mut v = Violations::new();
            email(&mut v, "email", bad);
            assert!(v.finish().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames_follow_the_documented_rule() {
        for good in ["ann", "a_1", "abcdefghijklmnopqrstuvwxyz012345"] {
            let mut v = Violations::new();
            username(&mut v, "username", good);
            assert!(v.finish().is_ok(), "{good:?} rejected");
        }
        for bad in [
            "",
            "an",
            "1ann",
            "Ann",
            "ann-b",
            "abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            let mut v = Violations::new();
            username(&mut v, "username", bad);
            assert!(v.finish().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn page_size_bounds() {
        let mut v = Violations::new();
        assert_eq!(v.page_size("page_size", 0, 50, 100), 50);
        assert_eq!(v.page_size("page_size", 100, 50, 100), 100);
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        v.page_size("page_size", 101, 50, 100);
        v.page_size("page_size", -1, 50, 100);
        assert!(matches!(v.finish(), Err(Error::InvalidArgument(list)) if list.len() == 2));
    }
}
