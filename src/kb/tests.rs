use super::*;

/// A fresh directory for one test's articles.
fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pd-kb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn article(title: &str, visibility: &str, body: &str) -> String {
    format!("+++\ntitle = {title:?}\nvisibility = {visibility:?}\n+++\n{body}\n")
}

#[test]
fn shipped_articles_load() {
    let kb = Kb::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("kb")).unwrap();
    assert!(kb.articles.len() >= 2);
    assert!(kb.articles.iter().any(|a| !a.is_public()));
}

#[test]
fn broken_articles_are_reported_at_their_line() {
    let dir = temp("broken");
    write(
        &dir,
        "a.md",
        &article("A", "public", "Line one.\nSee [b](kb:missing)."),
    );
    write(&dir, "b.md", "---\ntitle: B\nvisibility: secret\n---\nx\n");
    write(&dir, "c.md", "no front matter\n");
    let diags = Kb::load(&dir).unwrap_err();
    let shown: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    let joined = shown.join("\n");
    assert!(
        shown
            .iter()
            .any(|d| d.contains("a.md:6:") && d.contains("\"missing\"")),
        "{joined}"
    );
    assert!(
        shown
            .iter()
            .any(|d| d.contains("b.md:3:") && d.contains("visibility")),
        "{joined}"
    );
    assert!(
        shown
            .iter()
            .any(|d| d.contains("c.md:1:") && d.contains("front matter")),
        "{joined}"
    );
}

#[test]
fn search_suggest_and_visibility() {
    let dir = temp("search");
    write(
        &dir,
        "printer.md",
        &article(
            "Printer paper jam",
            "public",
            "Open the tray and remove the jammed paper.",
        ),
    );
    write(
        &dir,
        "secret.md",
        &article("Printer escalation", "internal", "Call the printer vendor."),
    );
    let kb = Kb::load(&dir).unwrap();
    let q = crate::search::Query::parse("printer").unwrap();
    assert_eq!(
        crate::search_index::articles::search(&kb, &q, false, 10).len(),
        2
    );
    let public: Vec<_> = crate::search_index::articles::search(&kb, &q, true, 10)
        .iter()
        .map(|a| a.slug.clone())
        .collect();
    assert_eq!(public, ["printer"]);
    let q = crate::search::Query::parse("jam*").unwrap();
    assert_eq!(
        crate::search_index::articles::search(&kb, &q, true, 10).len(),
        1
    );
    let s = crate::search_index::articles::suggest(
        &kb,
        "My printer has a paper jam again, the tray is stuck",
        3,
    );
    assert_eq!(
        s.iter().map(|a| a.slug.as_str()).collect::<Vec<_>>(),
        ["printer"]
    );
    assert!(
        crate::search_index::articles::suggest(&kb, "Where is my parcel? It did not arrive.", 3)
            .is_empty()
    );
}
