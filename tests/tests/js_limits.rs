//! The JavaScript SDK and overlay keep copies of their limits; `limits.rs` is where they
//! are written down. A copy that drifts, or a new numeric constant at the top of a shipped
//! JavaScript file that `JS_LIMITS` does not list, fails here.

use ovation_proto::limits::JS_LIMITS;
use std::collections::BTreeMap;

/// The shipped JavaScript: the npm package's sources and the overlay.
const JS_DIRS: [&str; 2] = ["npm/src", "player-overlay"];

/// `const NAME = 1_000;` or `export const NAME = 1_000;` at the start of a line (top
/// level): (name, value).
fn numeric_constants(source: &str) -> Vec<(String, u64)> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let rest = line.strip_prefix("const ")?;
            let (name, value) = rest.split_once(" = ")?;
            let value = value.trim_end().strip_suffix(';')?;
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let value: u64 = value.replace('_', "").parse().ok()?;
            is_name.then(|| (name.to_owned(), value))
        })
        .collect()
}

#[test]
fn the_reader_finds_top_level_numeric_constants_only() {
    let source = "const A_MAX = 1_000;\nconst B = \"x\";\n  const C_MAX = 3;\nconst lower = 4;\nconst D_MS = 5;\n";
    assert_eq!(
        numeric_constants(source),
        vec![("A_MAX".to_owned(), 1000), ("D_MS".to_owned(), 5)]
    );
}

#[test]
fn the_reader_finds_exported_constants_too() {
    let source = "export const A_MAX = 7;\nexport const lower = 1;\n  export const B_MAX = 2;\nexport function f() {}\n";
    assert_eq!(numeric_constants(source), vec![("A_MAX".to_owned(), 7)]);
}

#[test]
fn javascript_limits_match_limits_rs_and_none_is_unlisted() {
    let root = ovation_tests::root();
    let mut found: BTreeMap<(String, String), u64> = BTreeMap::new();
    for dir in JS_DIRS {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("js") {
                continue;
            }
            let file = format!("{dir}/{}", path.file_name().unwrap().to_str().unwrap());
            let source = std::fs::read_to_string(&path).unwrap();
            for (name, value) in numeric_constants(&source) {
                found.insert((file.clone(), name), value);
            }
        }
    }
    let listed: BTreeMap<(String, String), u64> = JS_LIMITS
        .iter()
        .map(|(file, name, value)| (((*file).to_owned(), (*name).to_owned()), *value))
        .collect();
    assert_eq!(
        found, listed,
        "JavaScript constants (left) and JS_LIMITS in crates/proto/src/limits.rs (right) differ"
    );
}
