//! Architecture invariants stated as absences (ARCHITECTURE.md), checked on the source:
//! only the composer names mail-builder, only the parse module (and its quote stripper) names
//! mail-parser, only the store names redb.

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
            if allowed.iter().any(|a| rel.starts_with(a)) {
                return None;
            }
            let text = std::fs::read_to_string(&f).ok()?;
            let names = text
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
fn only_the_store_names_redb() {
    assert_eq!(offenders("redb", &["store/"]), Vec::<String>::new());
}
