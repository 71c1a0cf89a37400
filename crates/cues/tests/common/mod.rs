//! Reads the hand-written fixtures of `tests/fixtures` (format in its README).

use std::path::PathBuf;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The bytes of fixture `name` (without `.hex`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex(&text)
}

/// Hex pairs, `"ascii"` strings and `#` comments to bytes. Panics on anything else, so a
/// typo in a fixture fails the test rather than changing the bytes.
pub fn hex(text: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chars = text.chars().peekable();
    let mut high_nibble: Option<u8> = None;
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                assert!(high_nibble.is_none(), "half a byte before a string");
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    assert!(
                        c.is_ascii() && !c.is_ascii_control(),
                        "fixture strings are printable ASCII"
                    );
                    bytes.push(c as u8);
                }
            }
            c if c.is_whitespace() => {
                assert!(high_nibble.is_none(), "half a byte before whitespace")
            }
            c => {
                let nibble = c
                    .to_digit(16)
                    .unwrap_or_else(|| panic!("unexpected {c:?} in fixture"))
                    as u8;
                match high_nibble.take() {
                    Some(high) => bytes.push(high << 4 | nibble),
                    None => high_nibble = Some(nibble),
                }
            }
        }
    }
    assert!(high_nibble.is_none(), "odd number of hex digits");
    bytes
}
