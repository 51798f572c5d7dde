//! Canned responses: `rules/canned/NAME.txt`, sent by `#canned NAME`.
//! Placeholders: `{{customer_name}}`, `{{ticket_id}}`, `{{agent_name}}`, `{{subject}}`.
//! Read when used, so an edited file takes effect with the next mail.

use std::path::Path;

pub const DIR: &str = "canned";

pub struct Vars<'a> {
    pub customer_name: &'a str,
    pub ticket_id: &'a str,
    pub agent_name: &'a str,
    pub subject: &'a str,
}

/// The rendered text of canned response `name`, or why there is none.
pub fn render(rules_dir: &Path, name: &str, vars: &Vars<'_>) -> Result<String, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("no canned response {name:?}"));
    }
    let path = rules_dir.join(DIR).join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("no canned response {name:?} (rules/{DIR}/{name}.txt)")
        } else {
            format!("canned response {name:?} cannot be read: {e}")
        }
    })?;
    Ok(text
        .replace("{{customer_name}}", vars.customer_name)
        .replace("{{ticket_id}}", vars.ticket_id)
        .replace("{{agent_name}}", vars.agent_name)
        .replace("{{subject}}", vars.subject)
        .trim_end()
        .to_string())
}

/// Placeholders a canned response may use.
const KNOWN: &[&str] = &["customer_name", "ticket_id", "agent_name", "subject"];

/// Problems in `rules/canned/*.txt` (unreadable files, unknown or unclosed
/// placeholders), as `file:line:column` diagnostics for `postdesk check`.
pub fn check_dir(rules_dir: &Path) -> Vec<crate::config::Diagnostic> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(rules_dir.join(DIR)) else {
        return out;
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for path in files {
        let diag = |offset: usize, text: &str, message: String| {
            let (line, column) = crate::config::line_col(text, offset);
            crate::config::Diagnostic {
                file: path.clone(),
                line,
                column,
                message,
            }
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                out.push(diag(0, "", format!("cannot read: {e}")));
                continue;
            }
        };
        let mut at = 0;
        while let Some(i) = text[at..].find("{{") {
            let start = at + i;
            match text[start + 2..].find("}}") {
                Some(j) => {
                    let name = text[start + 2..start + 2 + j].trim();
                    if !KNOWN.contains(&name) {
                        out.push(diag(
                            start,
                            &text,
                            format!(
                                "unknown placeholder {{{{{name}}}}} (known: {})",
                                KNOWN.join(", ")
                            ),
                        ));
                    }
                    at = start + 2 + j + 2;
                }
                None => {
                    out.push(diag(start, &text, "unclosed {{".into()));
                    break;
                }
            }
        }
    }
    out
}

/// The names of the canned responses in `rules_dir` (`canned/NAME.txt`
/// whose NAME `render` accepts), sorted: the web view's picker.
pub fn names(rules_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(rules_dir.join(DIR)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".txt")?.to_string();
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            ok.then_some(name)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_refuses_paths() {
        let dir = std::env::temp_dir().join(format!("postdesk-canned-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(DIR)).unwrap();
        std::fs::write(
            dir.join(DIR).join("hi.txt"),
            "Hello {{customer_name}}, #{{ticket_id}} ({{subject}}). {{agent_name}}\n",
        )
        .unwrap();
        let v = Vars {
            customer_name: "Ann",
            ticket_id: "7",
            agent_name: "Alice",
            subject: "Printer",
        };
        assert_eq!(
            render(&dir, "hi", &v).unwrap(),
            "Hello Ann, #7 (Printer). Alice"
        );
        assert!(render(&dir, "nope", &v).unwrap_err().contains("nope"));
        assert!(render(&dir, "../hi", &v).is_err());
        assert!(check_dir(&dir).is_empty());
        std::fs::write(dir.join(DIR).join("bad.txt"), "Hi\n  {{name}}\n").unwrap();
        let d = check_dir(&dir);
        assert_eq!((d.len(), d[0].line, d[0].column), (1, 2, 3), "{d:?}");
        std::fs::remove_dir_all(dir).ok();
    }
}
