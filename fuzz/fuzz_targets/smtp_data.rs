//! The DATA reader (`src/smtp/data.rs`): end-of-data detection, dot-unstuffing
//! and the size cap, fed the same bytes in arbitrary chunk splits.
//!
//! Input layout: byte 0 picks the size limit, bytes 1..3 seed the chunking
//! (the top bit of byte 2: the DATA line ended in a bare LF, not CRLF),
//! the rest is what the client sends after `354`.
//!
//! Invariants checked:
//! - one-shot, byte-at-a-time and the fuzzer-chosen chunking all give the same
//!   result (bytes consumed, body, too-big flag): TCP segmentation cannot
//!   change what a message is (the SMTP smuggling boundary);
//! - that result equals an independent model of RFC 5321 §4.1.1.4/§4.5.2:
//!   the message ends at the first `CRLF . CRLF` (the CRLF of the DATA line
//!   counts, a bare LF there does not), and a dot that begins a line (after
//!   CRLF) is removed;
//! - the body is the model's body cut at the limit, and too-big says whether
//!   the model's body was longer than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postdesk::smtp::budget::InflightBudget;
use postdesk::smtp::data::DataReader;

/// What feeding a whole stream produced: `(consumed, body, too_big)`, or
/// `None` when the stream never ended the message.
type Outcome = Option<(usize, Vec<u8>, bool)>;

fn feed_chunks(stream: &[u8], max: u64, bare_lf: bool, cuts: &[usize]) -> Outcome {
    // A budget far above any input: the reader's own limits are under test.
    let reservation = InflightBudget::new(1 << 40).reservation();
    let mut reader = if bare_lf {
        DataReader::after_bare_lf(max, reservation)
    } else {
        DataReader::new(max, reservation)
    };
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        let chunk = &stream[start..end];
        if let Some(used) = reader.feed(chunk) {
            assert!(used <= chunk.len(), "consumed more than it was given");
            let too_big = reader.too_big();
            return Some((start + used, reader.into_body().0, too_big));
        }
        start = end;
    }
    None
}

/// The specification, written without a state machine.
fn model(stream: &[u8], bare_lf: bool) -> Option<(usize, Vec<u8>)> {
    // The line ending of the DATA command counts: prepend it.
    let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
    let mut s = eol.to_vec();
    s.extend_from_slice(stream);
    let i = s.windows(5).position(|w| w == b"\r\n.\r\n")?;
    let raw = &s[eol.len()..i + 2];
    let mut body = Vec::with_capacity(raw.len());
    let mut line_start = !bare_lf;
    let mut k = 0;
    while k < raw.len() {
        let b = raw[k];
        if !(line_start && b == b'.') {
            body.push(b);
        }
        line_start = b == b'\n' && k > 0 && raw[k - 1] == b'\r';
        k += 1;
    }
    Some((i + 5 - eol.len(), body))
}

/// Cut positions from a small xorshift seeded by the input: deterministic for
/// a given input, so a crash reproduces.
fn cuts(seed: u16, len: usize) -> Vec<usize> {
    let mut x = u32::from(seed) | 1;
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // Mostly short chunks (1..=16), sometimes long ones.
        let step = if x % 8 == 0 {
            (x >> 8) as usize % 512
        } else {
            (x >> 8) as usize % 16
        } + 1;
        pos += step;
        if pos >= len {
            return out;
        }
        out.push(pos);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Limits from 0 (everything is too big) to large (nothing is).
    let max = match data[0] {
        255 => u64::MAX,
        m => u64::from(m) * 4,
    };
    let seed = u16::from_le_bytes([data[1], data[2] & 0x7f]);
    let bare_lf = data[2] & 0x80 != 0;
    let stream = &data[3..];

    let one_shot = feed_chunks(stream, max, bare_lf, &[]);
    let bytewise: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(
        one_shot,
        feed_chunks(stream, max, bare_lf, &bytewise),
        "byte-at-a-time differs"
    );
    assert_eq!(
        one_shot,
        feed_chunks(stream, max, bare_lf, &cuts(seed, stream.len())),
        "chunked differs"
    );

    match (model(stream, bare_lf), one_shot) {
        (None, None) => {}
        (Some((used, body)), Some((r_used, r_body, r_big))) => {
            assert_eq!(used, r_used, "end of data at a different byte");
            let cap = usize::try_from(max).unwrap_or(usize::MAX).min(body.len());
            assert_eq!(
                &body[..cap],
                r_body.as_slice(),
                "body differs from the model"
            );
            assert_eq!(body.len() as u64 > max, r_big, "too-big flag wrong");
        }
        (m, r) => panic!("model says {m:?}, reader says {r:?}"),
    }
});
