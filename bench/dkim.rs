//! What DKIM signing adds to each delivery attempt, and what reading a
//! delivery report costs. Prints figures; not a test.
//!
//!     cargo bench --bench dkim
//!
//! 1. Signing: a 4 KiB acknowledgement signed with an RSA-2048 and an
//!    Ed25519 key (relaxed/relaxed, postdesk's header list), per message.
//! 2. Bounces: every delivery report of fixtures/corpus/autoreply-bounce
//!    read by `process::bounce::parse`, per report.

use postdesk::dkim::{Algorithm, Key, Signer};
use std::time::Instant;

fn message() -> Vec<u8> {
    let mut m = String::from(
        "From: Example Support <support@example.test>\r\nTo: alice@customer.example\r\n\
         Subject: [#42] We received your request\r\nMessage-ID: <pd.t42.m7.abc@support.example.test>\r\n\
         Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nAuto-Submitted: auto-replied\r\n\r\n",
    );
    while m.len() < 4096 {
        m.push_str("Thank you for writing to us. We will answer within one business day.\r\n");
    }
    m.into_bytes()
}

fn main() {
    let msg = message();
    for algorithm in [Algorithm::Rsa, Algorithm::Ed25519] {
        let pem = postdesk::dkim::generate(algorithm).expect("generate");
        let key = Key::from_pem(pem.as_bytes()).expect("load");
        let signer = Signer::new("example.test".into(), "bench".into(), key);
        let n = 2000;
        let start = Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            bytes += signer.sign(&msg).expect("sign").len();
        }
        let per = start.elapsed().as_secs_f64() / n as f64;
        println!(
            "sign {:>7}: {:>8.1} µs per {} B message ({:.0} messages/s on one core; {} B signed on average)",
            algorithm.dns_name(),
            per * 1e6,
            msg.len(),
            1.0 / per,
            bytes / n
        );
    }

    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/autoreply-bounce");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.md")).expect("MANIFEST.md");
    let reports: Vec<Vec<u8>> = manifest
        .lines()
        .filter(|l| l.contains("is_bounce: YES"))
        .filter_map(|l| l.split('|').nth(1).map(str::trim))
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .collect();
    let rounds = 50;
    let start = Instant::now();
    let mut read = 0;
    for _ in 0..rounds {
        read = reports
            .iter()
            .filter(|r| postdesk::process::bounce::parse(r).is_some())
            .count();
    }
    let per = start.elapsed().as_secs_f64() / (rounds * reports.len()) as f64;
    println!(
        "bounces: {read} of {} corpus reports read; {:.1} µs per report",
        reports.len(),
        per * 1e6
    );
}
