//! The `#command` block of agent mail (`src/process/commands.rs`): `split`
//! of a whole text and `parse` of single lines.
//!
//! Invariants checked:
//! - nothing panics;
//! - every command line taken is trimmed, starts with `#` and a letter, and
//!   its parse result is what `parse` says for that line alone;
//! - the rest of the text is a trimmed piece of the input, and its first line
//!   is not a command line (the block ended there);
//! - arguments are single non-empty words; a canned response name is only
//!   letters, digits, `-` and `_` (it becomes a file name under rules/canned/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postdesk::process::commands::{Action, MailCommand, parse, split};

fn is_command_line(t: &str) -> bool {
    let mut c = t.chars();
    c.next() == Some('#') && c.next().is_some_and(|c| c.is_ascii_alphabetic())
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace)
}

fn check(cmd: &Result<MailCommand, String>) {
    match cmd {
        Ok(MailCommand::Act(Action::Assign(a) | Action::Queue(a))) => {
            assert!(is_word(a), "argument {a:?}")
        }
        Ok(MailCommand::Act(Action::Canned(n))) => assert!(
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "canned name {n:?}"
        ),
        Ok(MailCommand::Act(Action::Tags { add, remove })) => {
            assert!(!add.is_empty() || !remove.is_empty(), "#tag without tags");
            for t in add.iter().chain(remove) {
                assert!(is_word(t), "tag {t:?}");
            }
        }
        Ok(_) => {}
        Err(e) => assert!(!e.is_empty(), "empty error message"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (lines, rest) = split(&text);
    for line in &lines {
        assert_eq!(line.text, line.text.trim());
        assert!(
            is_command_line(&line.text),
            "{:?} taken as a command",
            line.text
        );
        assert_eq!(line.parsed, parse(&line.text), "split and parse disagree");
        check(&line.parsed);
    }
    assert_eq!(rest, rest.trim());
    assert!(
        text.contains(rest.as_str()),
        "rest is not part of the input"
    );
    if let Some(first) = rest.lines().next() {
        assert!(
            !is_command_line(first.trim()),
            "block did not end at {first:?}"
        );
    }
    for line in text.lines() {
        check(&parse(line));
    }
});
