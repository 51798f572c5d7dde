//! Real mail written by others (fixtures/, see fixtures/README.md): every message is sent over
//! SMTP with smtplib, must get 250, be stored byte-exact, and leave the daemon running; the
//! auto-reply / bounce corpus must never be acknowledged.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

fn fixtures() -> PathBuf {
    repo_root().join("fixtures")
}

fn is_ordinary_mail(p: &Path) -> bool {
    p.to_string_lossy().contains("sisimai/not/is-not-bounce-")
}

/// The `expected` column of a corpus MANIFEST.md, by file path relative to its folder.
fn manifest(folder: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(folder.join("MANIFEST.md")).expect("MANIFEST.md");
    text.lines()
        .filter(|l| l.starts_with("| ") && l.contains(".eml"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cols.get(1)?.to_string(), cols.get(4)?.to_string()))
        })
        .collect()
}

/// Returns a sendable copy (CRLF line endings) written to `dir`, and its bytes.
fn crlf_copy(src: &Path, dir: &Path, n: usize) -> (PathBuf, Vec<u8>) {
    let raw = to_crlf(&std::fs::read(src).unwrap());
    let dst = dir.join(format!("{n:04}.eml"));
    std::fs::write(&dst, &raw).unwrap();
    (dst, raw)
}

/// Sends every file, asserts 250, waits until processed, checks the stored raw bytes.
/// Returns the seq of each file.
fn send_all(d: &Daemon, tmp: &Path, files: &[(PathBuf, String)]) -> Vec<u64> {
    let mut jobs = Vec::new();
    let mut sent = Vec::new();
    for (n, (src, envelope)) in files.iter().enumerate() {
        let (file, raw) = crlf_copy(src, tmp, n);
        jobs.push(Job {
            mail_from: envelope.clone(),
            rcpts: vec![SUPPORT.into()],
            file,
        });
        sent.push(raw);
    }
    let results = send_batch(d.smtp_port, &jobs);
    let refused: Vec<String> = results
        .iter()
        .zip(files)
        .filter(|(r, _)| r.code != Some(250) || r.seq.is_none())
        .map(|(r, (f, env))| {
            format!(
                "{} (MAIL FROM:<{env}>): {} {} at {}",
                f.display(),
                r.code.map_or("-".into(), |c| c.to_string()),
                r.text,
                r.stage
            )
        })
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} fixtures not accepted:\n{}",
        refused.len(),
        files.len(),
        refused.join("\n")
    );
    d.wait_processed(Duration::from_secs(300));
    let mut bad = Vec::new();
    let mut duplicates = 0;
    let seqs: Vec<u64> = results.iter().map(|r| r.seq.unwrap()).collect();
    for ((seq, raw), (src, _)) in seqs.iter().zip(&sent).zip(files) {
        let m = d.wait_message(*seq, SECS_30);
        let (st, back) = d.api_get_raw(&format!("/api/v1/messages/{seq}/raw"));
        if st == 200 && back == *raw {
            continue;
        }
        // A repeated Message-ID is "stored once": its raw may be gone, but the first copy
        // must be there.
        if let Some(first) = id_string(&m["duplicate_of"]) {
            let (st0, _) = d.api_get_raw(&format!("/api/v1/messages/{first}/raw"));
            if st == 404 && st0 == 200 {
                duplicates += 1;
                continue;
            }
        }
        if st != 200 {
            bad.push(format!(
                "{} (seq {seq}): GET raw -> {st}; message: {m}",
                src.display()
            ));
        } else {
            bad.push(format!(
                "{} (seq {seq}): stored {} bytes, sent {}",
                src.display(),
                back.len(),
                raw.len()
            ));
        }
    }
    if duplicates > 0 {
        eprintln!(
            "{duplicates} fixture(s) repeat an earlier Message-ID (stored once: duplicate_of)"
        );
    }
    assert!(
        bad.is_empty(),
        "{} fixtures not stored byte-exact:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert_eq!(d.health()["status"], "ok", "daemon must stay up");
    seqs
}

#[test]
fn parsing_corpus_and_python_email_messages_are_stored_byte_exact() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let tmp = TempDir::new("corpus");
    let mut files = Vec::new();
    files_under(
        &fixtures().join("corpus/parsing"),
        &|p| p.extension().is_some_and(|e| e == "eml"),
        &mut files,
    );
    files_under(
        &fixtures().join("corpus/autoreply-bounce"),
        &|p| is_ordinary_mail(p),
        &mut files,
    );
    files_under(
        &fixtures().join("python-email"),
        &|p| p.file_name().unwrap().to_string_lossy().starts_with("msg_"),
        &mut files,
    );
    assert!(
        files.len() >= 155,
        "fixtures missing? {} files",
        files.len()
    );
    let jobs: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| (f, "corpus-sender@corpus.example".to_string()))
        .collect();
    let seqs = send_all(&d, &tmp.path, &jobs);
    assert_eq!(seqs.len(), jobs.len());
    let total = d.tickets_total();
    assert!(total > 0, "the corpus made no tickets");
    eprintln!("parsing corpus: {} messages, {total} tickets", seqs.len());
}

/// Envelope sender of an auto-generated fixture: its own Return-Path when it has one (what the
/// original envelope was), else <> for bounces (RFC 5321 4.5.5), else its From address.
fn envelope_of(raw: &[u8], expected: &str) -> String {
    let rp = header(raw, "Return-Path").map(|v| bare_address(&v));
    let addr = match rp {
        Some(a) => a,
        None if expected.contains("is_bounce: YES") => String::new(),
        None => header(raw, "From")
            .map(|v| bare_address(&v))
            .unwrap_or_default(),
    };
    if addr.contains('@') && !addr.contains(char::is_whitespace) {
        addr
    } else {
        String::new()
    }
}

#[test]
fn autoreply_and_bounce_corpus_is_stored_and_never_acknowledged() {
    let sink = Sink::start();
    let d = Daemon::start(&sink);
    let tmp = TempDir::new("autoreply");
    let folder = fixtures().join("corpus/autoreply-bounce");
    let expected = manifest(&folder);
    let mut files = Vec::new();
    files_under(
        &folder,
        &|p| p.extension().is_some_and(|e| e == "eml") && !is_ordinary_mail(p),
        &mut files,
    );
    assert!(files.len() > 90, "fixtures missing? {} files", files.len());
    let jobs: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&folder)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let exp = expected
                .get(&rel)
                .unwrap_or_else(|| panic!("{rel} not in MANIFEST.md"));
            let env = envelope_of(&std::fs::read(&f).unwrap(), exp);
            (f, env)
        })
        .collect();
    send_all(&d, &tmp.path, &jobs);

    // Control: an ordinary customer mail is acknowledged, so the outbound path works.
    let raw = mail(
        "Control <control@customer.example>",
        "control",
        "<control-1@customer.example>",
        &[],
        "Ordinary question.\n",
    );
    d.send_ok("control@customer.example", &[SUPPORT], &raw);
    wait_until(SECS_60, "the control acknowledgement", || {
        (!sink.messages_to("control@customer.example").is_empty()).then_some(())
    });
    d.wait_idle(Duration::from_secs(120));

    let stray: Vec<String> = sink
        .messages()
        .iter()
        .filter(|m| header(m, "X-RcptTo").as_deref() != Some("control@customer.example"))
        .map(|m| {
            let to = header(m, "X-RcptTo").unwrap_or_default();
            let culprits: Vec<String> = jobs
                .iter()
                .filter(|(f, env)| {
                    let from = header(&std::fs::read(f).unwrap(), "From")
                        .map(|v| bare_address(&v))
                        .unwrap_or_default();
                    (!env.is_empty() && to.eq_ignore_ascii_case(env))
                        || to.eq_ignore_ascii_case(&from)
                })
                .map(|(f, _)| f.strip_prefix(&folder).unwrap().display().to_string())
                .collect();
            format!(
                "ack to {to} (Subject: {}) — fixture(s) {culprits:?}",
                header(m, "Subject").unwrap_or_default()
            )
        })
        .collect();
    assert!(
        stray.is_empty(),
        "{} acknowledgement(s) sent for auto-generated mail:\n{}",
        stray.len(),
        stray.join("\n")
    );
    assert_eq!(d.health()["status"], "ok");
}
