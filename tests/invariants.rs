//! Architecture invariants stated as absences (ARCHITECTURE.md), checked on the source:
//! only the composer names mail-builder, only the parse module (and its quote stripper) names
//! mail-parser, only the store names redb, only the clock reads the time of day, and modules
//! depend one way.
//! mail-parser, only the store names redb, only password.rs names argon2, only the web
//! view's mail frame names ammonia.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files under src/ whose code (comments aside) names `crate_path`, outside `allowed` prefixes.
fn offenders(crate_path: &str, allowed: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    files
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&src).ok()?.to_string_lossy().into_owned();
            if allowed.iter().any(|a| rel.starts_with(a))
                || rel.ends_with("tests.rs")
                || rel.contains("/tests/")
            {
                return None;
            }
            let text = std::fs::read_to_string(&f).ok()?;
            // Test modules may do as they like.
            let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
            let names = code
                .lines()
                .map(str::trim_start)
                .filter(|l| !l.starts_with("//"))
                .any(|l| l.contains(&format!("{crate_path}::")));
            names.then_some(rel)
        })
        .collect()
}

#[test]
fn only_the_composer_names_mail_builder() {
    assert_eq!(
        offenders("mail_builder", &["outbound/compose.rs"]),
        Vec::<String>::new()
    );
}

#[test]
fn only_the_parse_module_names_mail_parser() {
    assert_eq!(
        offenders("mail_parser", &["process/parse.rs", "process/quote"]),
        Vec::<String>::new()
    );
}

#[test]
fn only_the_clock_reads_the_time_of_day() {
    assert_eq!(offenders("SystemTime", &["clock.rs"]), Vec::<String>::new());
}

#[test]
fn only_the_store_names_redb() {
    assert_eq!(offenders("redb", &["store/"]), Vec::<String>::new());
}

#[test]
fn only_the_search_index_names_tantivy() {
    assert_eq!(
        offenders("tantivy", &["search_index/"]),
        Vec::<String>::new()
    );
}

/// The top-level module a file under src/ belongs to (`process/mod.rs` → `process`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    first
        .unwrap_or_default()
        .trim_end_matches(".rs")
        .to_string()
}

/// `crate::NAME` references in code (not comments, not test modules).
fn references(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = Vec::new();
    for line in code
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
    {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn modules_depend_one_way() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files
        .iter()
        .filter(|f| !f.ends_with("tests.rs") && !f.to_string_lossy().contains("/tests/"))
    {
        let from = top_module(&src, f);
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for to in references(&text) {
            if to != from {
                deps.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(deps.len() > 10, "found only {} modules", deps.len());
    // Depth-first search for a cycle; report the first one found.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        if let Some(cycle) = visit(m, &deps, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn only_the_password_module_names_argon2() {
    assert_eq!(offenders("argon2", &["password.rs"]), Vec::<String>::new());
}

#[test]
fn only_the_mail_frame_names_ammonia() {
    assert_eq!(
        offenders("ammonia", &["web/mail_html.rs"]),
        Vec::<String>::new()
    );
}
