//! Commands by mail: lines such as `#close` or `#priority high` at the top of
//! an agent's mail, read into the vocabulary of `Action`s. Pure parsing;
//! checking them against the ticket and the rules, and applying them, is
//! `Processor::act`'s job.
//!
//! The command block is every line from the top that starts with `#` and a
//! letter (blank lines in between are allowed); the first other line ends it,
//! and everything from there on is the message. So `#123` or a `#` deeper in
//! the text is never a command.

use super::Action;
use crate::model::{Priority, Status};

/// What one command line asks for: an action, or `#note`, which is not an
/// action of its own but says what the mail's text is (an internal note, not
/// a reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailCommand {
    Act(Action),
    /// `#note`: the whole message is an internal note, never sent.
    Note,
}

/// One command line as written, and what it parsed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub parsed: Result<MailCommand, String>,
}

/// The command lines at the top of `text`, and the rest of the text (trimmed).
pub fn split(text: &str) -> (Vec<Line>, String) {
    let mut lines = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.is_empty() {
            offset += line.len();
            continue;
        }
        if !is_command_line(t) {
            break;
        }
        lines.push(Line {
            text: t.to_string(),
            parsed: parse(t),
        });
        offset += line.len();
    }
    if lines.is_empty() {
        return (lines, text.trim().to_string());
    }
    (lines, text[offset..].trim().to_string())
}

fn is_command_line(t: &str) -> bool {
    let mut c = t.chars();
    c.next() == Some('#') && c.next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// Parses one command line (`#word args…`).
pub fn parse(line: &str) -> Result<MailCommand, String> {
    let line = line.trim();
    let body = line.strip_prefix('#').unwrap_or(line);
    let mut words = body.split_whitespace();
    let name = words.next().unwrap_or("").to_ascii_lowercase();
    let args: Vec<&str> = words.collect();
    let no_args = |cmd: MailCommand| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(format!("#{name} takes no argument"))
        }
    };
    let one_arg = |what: &str| -> Result<String, String> {
        match args.as_slice() {
            [a] => Ok(a.to_string()),
            [] => Err(format!("#{name} needs {what}")),
            _ => Err(format!("#{name} takes one {what}, not {}", args.len())),
        }
    };
    match name.as_str() {
        "open" | "reopen" => no_args(MailCommand::Act(Action::Status(Status::Open))),
        "pending" => no_args(MailCommand::Act(Action::Status(Status::Pending))),
        "resolve" | "resolved" => no_args(MailCommand::Act(Action::Status(Status::Resolved))),
        "close" | "closed" => no_args(MailCommand::Act(Action::Status(Status::Closed))),
        "note" => no_args(MailCommand::Note),
        "send" => no_args(MailCommand::Act(Action::SendHeld)),
        "available" => no_args(MailCommand::Act(Action::Availability(true))),
        "away" => no_args(MailCommand::Act(Action::Availability(false))),
        "priority" => {
            let p = one_arg("a priority (low, normal, high or urgent)")?;
            Priority::parse(&p)
                .map(|p| MailCommand::Act(Action::Priority(p)))
                .ok_or_else(|| format!("unknown priority {p:?}: use low, normal, high or urgent"))
        }
        "assign" => {
            one_arg("an agent's name (or \"me\")").map(|n| MailCommand::Act(Action::Assign(n)))
        }
        "queue" => one_arg("a queue name").map(|q| MailCommand::Act(Action::Queue(q))),
        "canned" => {
            let n = one_arg("the name of a canned response")?;
            if n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                Ok(MailCommand::Act(Action::Canned(n)))
            } else {
                Err(format!(
                    "canned response names are letters, digits, - and _, not {n:?}"
                ))
            }
        }
        "kb" => {
            let slug = one_arg("the slug of a knowledge base article")?;
            if crate::kb::valid_slug(&slug) {
                Ok(MailCommand::Act(Action::Kb(slug)))
            } else {
                Err(format!(
                    "article slugs are lower-case letters, digits, - and _, not {slug:?}"
                ))
            }
        }
        "tag" | "tags" => {
            if args.is_empty() {
                return Err("#tag needs tags, e.g. #tag +vip -spam".into());
            }
            let (mut add, mut remove) = (Vec::new(), Vec::new());
            for a in &args {
                let (list, word) = match a.strip_prefix('-') {
                    Some(w) => (&mut remove, w),
                    None => (&mut add, a.strip_prefix('+').unwrap_or(a)),
                };
                if word.is_empty() {
                    return Err(format!("empty tag in {a:?}"));
                }
                list.push(word.to_string());
            }
            Ok(MailCommand::Act(Action::Tags { add, remove }))
        }
        "participant" | "participants" => {
            let usage = "#participant add ADDRESS… or #participant remove ADDRESS…";
            let Some((verb, rest)) = args.split_first() else {
                return Err(format!("#participant needs {usage}"));
            };
            let add = match verb.to_ascii_lowercase().as_str() {
                "add" => true,
                "remove" => false,
                other => return Err(format!("#participant {other:?}: use {usage}")),
            };
            if rest.is_empty() {
                return Err(format!("#participant {verb} needs an address"));
            }
            let addresses = rest
                .iter()
                .map(|a| {
                    let a = a.trim_start_matches('<').trim_end_matches([',', '>']);
                    crate::syntax::mailbox(a).ok_or_else(|| format!("{a:?} is not an address"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(MailCommand::Act(Action::Participant { add, addresses }))
        }
        "merge" => {
            let Some((n, reason)) = args.split_first() else {
                return Err("#merge needs the ticket to merge into, e.g. #merge 42".into());
            };
            let into = n
                .trim_start_matches('#')
                .parse()
                .map_err(|_| format!("#merge {n:?}: give a ticket number, e.g. #merge 42"))?;
            let reason = (!reason.is_empty()).then(|| reason.join(" "));
            Ok(MailCommand::Act(Action::Merge { into, reason }))
        }
        _ => Err(format!(
            "unknown command #{name} (known: #open #pending #resolve #close #priority #assign #queue #tag #participant #note #canned #kb #send #merge #available #away)"
        )),
    }
}

/// The short list of commands for the foot of notifications.
pub const HINT: &str = "Commands (lines at the top of your reply): #note (internal, not sent) \
#pending #resolve #close #open #priority low|normal|high|urgent #assign NAME|me #queue NAME \
#tag +a -b #participant add|remove ADDRESS #canned NAME #kb SLUG #merge N [why] (into ticket N)";

#[cfg(test)]
mod tests {
    use super::*;

    fn act(a: Action) -> Result<MailCommand, String> {
        Ok(MailCommand::Act(a))
    }

    #[test]
    fn parses_each_command() {
        assert_eq!(parse("#close"), act(Action::Status(Status::Closed)));
        assert_eq!(parse("#pending"), act(Action::Status(Status::Pending)));
        assert_eq!(parse("#Open"), act(Action::Status(Status::Open)));
        assert_eq!(parse("#resolve"), act(Action::Status(Status::Resolved)));
        assert_eq!(
            parse("#priority HIGH"),
            act(Action::Priority(Priority::High))
        );
        assert_eq!(parse("#assign me"), act(Action::Assign("me".into())));
        assert_eq!(parse("#assign bob"), act(Action::Assign("bob".into())));
        assert_eq!(
            parse("#queue billing"),
            act(Action::Queue("billing".into()))
        );
        assert_eq!(
            parse("#tag +vip -spam urgent"),
            act(Action::Tags {
                add: vec!["vip".into(), "urgent".into()],
                remove: vec!["spam".into()]
            })
        );
        assert_eq!(parse("#note"), Ok(MailCommand::Note));
        assert_eq!(parse("#send"), act(Action::SendHeld));
        assert_eq!(parse("#away"), act(Action::Availability(false)));
        assert_eq!(parse("#Available"), act(Action::Availability(true)));
        assert!(parse("#away now").is_err());
        assert_eq!(
            parse("#participant add Bob@Example.org <carol@example.org>"),
            act(Action::Participant {
                add: true,
                addresses: vec!["bob@example.org".into(), "carol@example.org".into()]
            })
        );
        assert_eq!(
            parse("#participant remove bob@example.org"),
            act(Action::Participant {
                add: false,
                addresses: vec!["bob@example.org".into()]
            })
        );
        assert_eq!(
            parse("#canned thanks"),
            act(Action::Canned("thanks".into()))
        );
        assert_eq!(
            parse("#merge 42"),
            act(Action::Merge {
                into: 42,
                reason: None
            })
        );
        assert_eq!(
            parse("#merge #7 same printer, asked twice"),
            act(Action::Merge {
                into: 7,
                reason: Some("same printer, asked twice".into())
            })
        );
    }

    #[test]
    fn rejects_bad_commands() {
        assert!(
            parse("#frobnicate")
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(parse("#priority").is_err());
        assert!(parse("#priority soon").unwrap_err().contains("soon"));
        assert!(parse("#assign a b").is_err());
        assert!(parse("#close now").is_err());
        assert!(parse("#tag").is_err());
        assert!(parse("#tag + -").is_err());
        assert!(parse("#canned ../../etc/passwd").is_err());
        assert!(parse("#participant").is_err());
        assert!(parse("#participant add").is_err());
        assert!(parse("#participant invite a@example.org").is_err());
        assert!(parse("#participant add spy@evil.example\rRCPT").is_err());
        assert!(parse("#merge").is_err());
        assert!(parse("#merge next").is_err());
        assert!(parse("#merge -1").is_err());
    }

    #[test]
    fn splits_the_command_block_off_the_top() {
        let (lines, rest) = split("\n#pending\n\n#priority high\nThanks, we are on it.\n#close\n");
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["#pending", "#priority high"]
        );
        assert_eq!(rest, "Thanks, we are on it.\n#close");
        let (lines, rest) = split("Hello\n#close\n");
        assert!(lines.is_empty());
        assert_eq!(rest, "Hello\n#close");
        let (lines, rest) = split("#close\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(rest, "");
        // "#123" is text, not a command
        let (lines, rest) = split("#123 is fixed\n");
        assert!(lines.is_empty());
        assert_eq!(rest, "#123 is fixed");
        let (lines, _) = split("  #tag +a\r\n#bogus\r\n");
        assert_eq!(lines.len(), 2);
        assert!(lines[1].parsed.is_err());
    }
}
