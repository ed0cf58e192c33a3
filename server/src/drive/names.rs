//! What a file or folder may be called. Names are checked, not silently rewritten: a
//! client that sent `../x` learns so instead of finding a file it did not name.

use unicode_normalization::UnicodeNormalization;

use crate::validate::Violations;

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// Checks `raw` as a file or folder name, recording problems in `v` under `field`;
/// returns the name to store (trimmed, Unicode NFC).
pub fn check_name(v: &mut Violations, field: &str, raw: &str) -> String {
    let name: String = raw.trim().nfc().collect();
    if name.is_empty() {
        v.add(field, "required");
    } else if name.chars().count() > MAX_NAME_CHARS {
        v.add(field, format!("at most {MAX_NAME_CHARS} characters"));
    } else if name == "." || name == ".." {
        v.add(field, "`.` and `..` are not names");
    } else if name.contains(['/', '\\']) {
        v.add(field, "no path separators (`/`, `\\`)");
    } else if name.chars().any(char::is_control) {
        v.add(field, "no control characters");
    } else if name.chars().any(is_bidi_control) {
        // An override (U+202E) makes `evil<U+202E>gpj.exe` display as `evilexe.jpg`.
        v.add(field, "no bidirectional control characters");
    }
    name
}

/// Unicode's bidirectional embedding, override and isolate controls.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// The `n`th candidate for `name` when it is taken: `report (2).pdf`, `report (3).pdf`…
/// (a folder, or a name without an extension, gets the number at the end).
pub fn numbered(name: &str, n: u32, is_folder: bool) -> String {
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if !is_folder && dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    format!("{stem} ({n}){extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(raw: &str) -> bool {
        let mut v = Violations::new();
        check_name(&mut v, "name", raw);
        v.finish().is_err()
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            "   ",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "line\nbreak",
            "nul\0byte",
            "evil\u{202E}gpj.exe",
            "iso\u{2067}late",
        ] {
            assert!(problem(bad), "{bad:?} accepted");
        }
        assert!(problem(&"x".repeat(256)));
    }

    #[test]
    fn ordinary_names_pass_trimmed_and_normalized() {
        let mut v = Violations::new();
        assert_eq!(check_name(&mut v, "name", "  Café.txt "), "Café.txt");
        // "e" + combining acute becomes the single precomposed character.
        assert_eq!(check_name(&mut v, "name", "Cafe\u{301}"), "Caf\u{e9}");
        assert_eq!(check_name(&mut v, "name", ".bashrc"), ".bashrc");
        assert_eq!(
            check_name(&mut v, "name", &"é".repeat(255)).chars().count(),
            255
        );
        assert!(v.finish().is_ok());
    }

    #[test]
    fn taken_names_are_numbered_before_the_extension() {
        assert_eq!(numbered("report.pdf", 2, false), "report (2).pdf");
        assert_eq!(numbered("archive.tar.gz", 3, false), "archive.tar (3).gz");
        assert_eq!(numbered("README", 2, false), "README (2)");
        assert_eq!(numbered(".bashrc", 2, false), ".bashrc (2)");
        assert_eq!(numbered("photos.2024", 2, true), "photos.2024 (2)");
    }
}
