//! `postdesk rules test` on real and hand-written messages, with the
//! repository's example rules, compared with golden files.
//! Set UPDATE_GOLDEN=1 to rewrite the expected files (then review the diff).

use std::path::Path;
use std::process::Command;

/// Evaluation time per message: most on a Tuesday morning in business hours
/// (Europe/Berlin), the after-hours case on a Saturday night.
fn at_for(name: &str) -> &'static str {
    match name {
        "printer-after-hours" => "2026-12-05T21:00:00Z",
        _ => "2026-12-01T08:30:00Z",
    }
}

#[test]
fn rules_test_output_matches_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("fixtures/rules-golden");
    let mut names: Vec<String> = std::fs::read_dir(dir.join("messages"))
        .expect("fixtures/rules-golden/messages")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".eml"))
                .map(String::from)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 5, "golden messages missing: {names:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for name in &names {
        let out = Command::new(env!("CARGO_BIN_EXE_postdesk"))
            .current_dir(root)
            .args(["rules", "test", "-c", "config.toml", "--at", at_for(name)])
            .arg(format!("fixtures/rules-golden/messages/{name}.eml"))
            .output()
            .expect("run postdesk rules test");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected_path = dir.join("expected").join(format!("{name}.txt"));
        if update {
            std::fs::write(&expected_path, &got).expect("write golden file");
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!("--- {name}: expected\n{want}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_rejects_bad_rules_with_positions_and_touches_no_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(format!("postdesk-rules-check-{}", std::process::id()));
    let rules = tmp.join("rules");
    std::fs::create_dir_all(rules.join("templates")).unwrap();
    for f in [
        "templates/acknowledgement.txt",
        "templates/after-hours.txt",
        "agents.toml",
        "calendar.toml",
        "sla.toml",
    ] {
        std::fs::copy(root.join("rules").join(f), rules.join(f)).unwrap();
    }
    std::fs::write(
        rules.join("routing.toml"),
        "[[rule]]\nname = \"broken\"\nwhen = { subject = \"(unclosed\" }\nassign = \"nobody\"\n",
    )
    .unwrap();
    let cfg = std::fs::read_to_string(root.join("config.toml"))
        .unwrap()
        .replace(
            "data_dir = \"data\"",
            "data_dir = \"data-should-not-exist\"",
        );
    std::fs::write(tmp.join("config.toml"), cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_postdesk"))
        .args(["check", "-c"])
        .arg(tmp.join("config.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let routing = rules.join("routing.toml");
    assert!(
        text.contains(&format!("{}:3:21: invalid regex", routing.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}:4:10: assign \"nobody\"", routing.display())),
        "{text}"
    );
    assert!(
        !tmp.join("data-should-not-exist").exists(),
        "check must not create the store"
    );
    std::fs::remove_dir_all(&tmp).ok();
}
