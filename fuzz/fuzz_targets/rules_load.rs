//! Loading the admin rule files (`RuleSet::load`, src/rules): agents,
//! calendars, SLA policies and routing, exactly as the daemon and
//! `postdesk check` load them from `rules_dir`.
//!
//! Input: up to four files separated by NUL bytes (TOML cannot contain a
//! NUL), in load order: agents.toml, calendar.toml, sla.toml, routing.toml.
//! A missing section means a missing file. They are written to a private
//! temp dir (in /dev/shm when there is one) and loaded from there.
//!
//! Invariants checked:
//! - nothing panics;
//! - a failed load says why: at least one diagnostic, each naming one of the
//!   rule files, at a line and column inside that file;
//! - a loaded set works: routing evaluates on a sample message with every
//!   calendar and only ever routes to a known queue or one an agent serves;
//!   every calendar answers `is_open` and its business-time arithmetic never
//!   goes backwards; every SLA policy can be looked up by its name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postdesk::rules::calendar::Calendar;
use postdesk::rules::{AGENTS_FILE, CALENDAR_FILE, Facts, ROUTING_FILE, RuleSet, SLA_FILE};
use std::path::PathBuf;
use std::sync::LazyLock;

const FILES: [&str; 4] = [AGENTS_FILE, CALENDAR_FILE, SLA_FILE, ROUTING_FILE];

static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("postdesk-fuzz-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir for rule files");
    dir
});

/// Moments to probe calendars at: a weekday morning, a Sunday night, a
/// DST change in Europe and in the US, and the epoch.
const PROBES: [i64; 5] = [
    1_700_035_200,
    1_700_438_400,
    1_711_846_800,
    1_710_054_000,
    0,
];

fuzz_target!(|data: &[u8]| {
    let dir = &*DIR;
    let mut texts: Vec<Option<&[u8]>> = data.split(|&b| b == 0).map(Some).collect();
    texts.resize(FILES.len(), None);
    for (name, text) in FILES.iter().zip(&texts) {
        let path = dir.join(name);
        match text {
            Some(t) => std::fs::write(&path, t).expect("writing a rule file"),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let known_queues = vec!["general".to_string(), "billing".to_string()];

    match RuleSet::load(dir, &known_queues) {
        Err(diags) => {
            assert!(!diags.is_empty(), "failed without a diagnostic");
            for d in &diags {
                let _ = d.to_string();
                let i = FILES
                    .iter()
                    .position(|f| d.file == dir.join(f))
                    .unwrap_or_else(|| panic!("diagnostic names {:?}", d.file));
                let text = texts[i].unwrap_or_default();
                let lines = text.split(|&b| b == b'\n').count();
                assert!(d.line >= 1 && d.column >= 1, "{d}");
                assert!(d.line <= lines, "{d}: the file has {lines} lines");
            }
        }
        Ok(set) => {
            let mut calendars: Vec<Calendar> = set.calendars.clone();
            calendars.push(set.default_calendar().into_owned());
            for cal in &calendars {
                for &t in &PROBES {
                    let _ = cal.is_open(t);
                    for secs in [0, 59, 8 * 3600, 5 * 86_400] {
                        let end = cal.add_business_seconds(t, secs);
                        assert!(
                            end >= t,
                            "{}: {t} + {secs} business seconds = {end}",
                            cal.name
                        );
                    }
                    assert_eq!(cal.business_seconds_between(t, t), 0);
                }
            }
            let headers = vec![
                ("from".to_string(), "Ann <ann@vip.example>".to_string()),
                ("x-priority".to_string(), "1".to_string()),
            ];
            let attachments = vec![("application/pdf".to_string(), "invoice.pdf".to_string())];
            for cal in &calendars {
                let facts = Facts {
                    mailbox: "support@example.test",
                    sender: "ann@vip.example",
                    subject: "Invoice: charged twice",
                    body: "Hallo, bitte helfen Sie mir. Die Rechnung ist falsch.",
                    headers: &headers,
                    attachments: &attachments,
                    now: PROBES[0],
                    calendar: cal,
                };
                let out = set.routing.evaluate(&facts);
                if let Some(q) = &out.queue {
                    assert!(
                        known_queues.contains(q)
                            || set.agents.list.iter().any(|a| a.queues.contains(q)),
                        "routed to unknown queue {q:?}"
                    );
                }
            }
            for p in &set.sla.list {
                assert!(
                    set.sla.by_name(&p.name).is_some(),
                    "policy {:?} not found",
                    p.name
                );
            }
        }
    }
});
