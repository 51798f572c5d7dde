//! Reply stripping (`src/process/quote.rs`) on the plain-text and the HTML
//! path, on any text a sender can write.
//!
//! Invariants checked:
//! - nothing panics and the work is linear (libFuzzer's timeout catches
//!   anything worse: the module promises no backtracking);
//! - the stripped text is never longer than the input;
//! - plain text: never empty when the input has non-blank content (an empty
//!   result would hide the message), and already trimmed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postdesk::process::quote::{visible_text, visible_text_html};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let plain = visible_text(&text);
    assert!(
        plain.len() <= text.len(),
        "plain: {} bytes out of {}",
        plain.len(),
        text.len()
    );
    if !text.trim().is_empty() {
        assert!(
            !plain.is_empty(),
            "plain: non-blank input stripped to nothing"
        );
    }
    assert_eq!(plain, plain.trim(), "plain: result not trimmed");

    let html = visible_text_html(&text);
    assert!(
        html.len() <= text.len(),
        "html: {} bytes out of {}",
        html.len(),
        text.len()
    );
});
