//! The newcomer's documents link only inside the repository, and every relative link
//! resolves: README.md, ARCHITECTURE.md and docs/*.md. A `#fragment` into a Markdown file
//! must name one of its headings (GitHub's anchor rule).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .canonicalize()
        .expect("the repository root exists")
}

fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("docs/ is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The text outside fenced code blocks and inline code spans, where links are links.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (i, piece) in line.split('`').enumerate() {
            if i % 2 == 0 {
                out.push_str(piece);
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of `[text](target)` links.
fn link_targets(prose: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = prose;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        targets.push(after[..end].trim().to_string());
        rest = &after[end..];
    }
    targets
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces become hyphens.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut set = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let slug: String = heading
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                '-' | '_' => Some(c),
                c if c.is_alphanumeric() => Some(c.to_lowercase().next().unwrap_or(c)),
                _ => None,
            })
            .collect();
        set.insert(slug);
    }
    set
}

#[test]
fn relative_links_in_the_docs_resolve_inside_the_repository() {
    let root = repo_root();
    let mut broken = Vec::new();
    for file in documents(&root) {
        let text = fs::read_to_string(&file).expect("a document is readable");
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        if text.contains("../shared") {
            broken.push(format!(
                "{name}: mentions ../shared, outside the repository"
            ));
        }
        for target in link_targets(&prose(&text)) {
            if target.starts_with("https://") || target.starts_with("http://") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            if path.starts_with('/') || path.contains(':') {
                broken.push(format!("{name}: {target} is not a relative link"));
                continue;
            }
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a file has a directory").join(path)
            };
            let Ok(resolved) = resolved.canonicalize() else {
                broken.push(format!("{name}: {target} does not exist"));
                continue;
            };
            if !resolved.starts_with(&root) {
                broken.push(format!("{name}: {target} leaves the repository"));
                continue;
            }
            if let Some(fragment) = fragment {
                let is_markdown = resolved.extension().is_some_and(|ext| ext == "md");
                let headings = fs::read_to_string(&resolved).map(|t| anchors(&t));
                if is_markdown && !headings.is_ok_and(|set| set.contains(fragment)) {
                    broken.push(format!("{name}: {target} names no heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_reader_finds_links_and_anchors_as_github_does() {
    let text = "See [a](docs/a.md#b-c) and `[not](code)`.\n```\n[nor](fence)\n```\n";
    assert_eq!(
        link_targets(&prose(text)),
        vec!["docs/a.md#b-c".to_string()]
    );
    let headings = anchors("# Tokens (a contract)\n## 2026-12-04 — fan-out: `x`\n");
    assert!(headings.contains("tokens-a-contract"));
    assert!(headings.contains("2026-12-04--fan-out-x"));
}
