//! The acknowledgement template (rules/templates/acknowledgement.txt).
//!
//! Format: a `Subject:` line, a blank line, then the body. `{{ticket}}`,
//! `{{subject}}`, `{{name}}`, `{{queue}}`, `{{status_url}}` are replaced;
//! anything else in braces is an error reported at its position.
//!
//! `{{status_url}}` (the recipient's signed status page) is empty when the
//! customers' pages are not served: a line that names it is then left out
//! whole, so a template renders cleanly either way.

use crate::diagnostic::{Diagnostic, line_col};
use std::path::{Path, PathBuf};

const PLACEHOLDERS: &[&str] = &[
    "ticket",
    "subject",
    "name",
    "queue",
    "status_url",
    "kb_suggestions",
];

#[derive(Debug, Clone)]
pub struct Template {
    pub subject: String,
    pub body: String,
}

/// Values substituted into a template.
pub struct Vars<'a> {
    pub ticket: &'a str,
    pub subject: &'a str,
    pub name: &'a str,
    pub queue: &'a str,
    /// The recipient's status page (`public::Urls::status`); empty when
    /// the customers' pages are not served.
    pub status_url: &'a str,
    /// Knowledge-base articles that may answer the request, one
    /// `Title: URL` line each, starting on a new line (so the template's
    /// line reads as their heading); empty when none matches well enough or
    /// the public pages are not served, and the line naming it is left out.
    pub kb_suggestions: &'a str,
}

impl Template {
    pub fn load(path: &Path) -> Result<Template, Diagnostic> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| diag(path, 1, 1, format!("cannot read template: {e}")))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Template, Diagnostic> {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").ok_or_else(|| {
            diag(
                path,
                1,
                1,
                "expected a Subject: line, a blank line, then the body".into(),
            )
        })?;
        let subject = head
            .lines()
            .find_map(|l| l.strip_prefix("Subject:"))
            .ok_or_else(|| diag(path, 1, 1, "missing Subject: line".into()))?
            .trim()
            .to_string();
        // Check placeholders over the whole file so positions are right.
        let mut rest = 0;
        while let Some(open) = text[rest..].find("{{") {
            let start = rest + open;
            let Some(len) = text[start..].find("}}") else {
                let (l, c) = line_col(&text, start);
                return Err(diag(path, l, c, "unclosed {{".into()));
            };
            let name = text[start + 2..start + len].trim();
            if !PLACEHOLDERS.contains(&name) {
                let (l, c) = line_col(&text, start);
                return Err(diag(
                    path,
                    l,
                    c,
                    format!(
                        "unknown placeholder {{{{{name}}}}}; known: {}",
                        PLACEHOLDERS.join(", ")
                    ),
                ));
            }
            rest = start + len + 2;
        }
        Ok(Template {
            subject,
            body: body.to_string(),
        })
    }

    /// (subject, body) with the placeholders filled in.
    pub fn render(&self, v: &Vars<'_>) -> (String, String) {
        let mut body = std::borrow::Cow::Borrowed(self.body.as_str());
        if v.status_url.is_empty() {
            body = drop_lines_naming(&body, "status_url").into();
        }
        if v.kb_suggestions.is_empty() {
            body = drop_lines_naming(&body, "kb_suggestions").into();
        }
        (fill(&self.subject, v), fill(&body, v))
    }
}

/// `text` without the lines that name placeholder `name`; a paragraph of
/// only such lines goes with the blank line after it, so no double gap is
/// left.
fn drop_lines_naming(text: &str, name: &str) -> String {
    let names = |line: &str| {
        let mut rest = line;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else { break };
            if after[..close].trim() == name {
                return true;
            }
            rest = &after[close + 2..];
        }
        false
    };
    let mut out = String::with_capacity(text.len());
    let mut dropped_after_blank = false;
    let mut previous_blank = true;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty();
        if names(line) {
            dropped_after_blank = previous_blank;
            continue;
        }
        if blank && dropped_after_blank {
            dropped_after_blank = false;
            continue;
        }
        dropped_after_blank = false;
        previous_blank = blank;
        out.push_str(line);
    }
    out
}

fn fill(s: &str, v: &Vars<'_>) -> String {
    let mut out = String::with_capacity(s.len() + 64);
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                out.push_str(match after[..close].trim() {
                    "ticket" => v.ticket,
                    "subject" => v.subject,
                    "name" => v.name,
                    "queue" => v.queue,
                    "status_url" => v.status_url,
                    "kb_suggestions" => v.kb_suggestions,
                    _ => "",
                });
                rest = &after[close + 2..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

fn diag(path: &Path, line: usize, column: usize, message: String) -> Diagnostic {
    Diagnostic {
        file: PathBuf::from(path),
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders() {
        let t = Template::parse(
            "Subject: Re: {{subject}}\n\nHello {{name}}, ticket {{ ticket }}.\n",
            Path::new("a.txt"),
        )
        .unwrap();
        let (s, b) = t.render(&Vars {
            ticket: "#7",
            subject: "Help",
            name: "Ann",
            queue: "general",
            status_url: "",
            kb_suggestions: "",
        });
        assert_eq!(s, "Re: Help");
        assert_eq!(b, "Hello Ann, ticket #7.\n");
    }

    #[test]
    fn a_status_url_line_is_left_out_without_the_public_side() {
        let t = Template::parse(
            "Subject: x\n\nHello.\nFollow it here: {{ status_url }}\nBye.\n",
            Path::new("a.txt"),
        )
        .unwrap();
        let vars = |status_url| Vars {
            ticket: "7",
            subject: "Help",
            name: "Ann",
            queue: "general",
            status_url,
            kb_suggestions: "",
        };
        assert_eq!(t.render(&vars("")).1, "Hello.\nBye.\n");
        // A paragraph of its own leaves no double blank line behind.
        let own = Template::parse(
            "Subject: x\n\nHello.\n\nSee: {{status_url}}\n\n-- \nUs\n",
            Path::new("b.txt"),
        )
        .unwrap();
        assert_eq!(own.render(&vars("")).1, "Hello.\n\n-- \nUs\n");
        assert_eq!(
            t.render(&vars("https://h/status/7.1.x")).1,
            "Hello.\nFollow it here: https://h/status/7.1.x\nBye.\n"
        );
    }

    #[test]
    fn unknown_placeholder_has_position() {
        let e =
            Template::parse("Subject: x\n\nline\n  {{nmae}}\n", Path::new("a.txt")).unwrap_err();
        assert_eq!((e.line, e.column), (4, 3));
        assert!(e.message.contains("nmae"));
    }
}
