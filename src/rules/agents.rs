//! rules/agents.toml: who the agents are.
//!
//! ```toml
//! [[agent]]
//! name = "alice"
//! address = "alice@example.test"
//! alternates = ["alice@home.example"]
//! queues = ["general", "billing"]
//! skills = ["printers"]
//! ```

use super::{diag_at, toml_diag};
use crate::address::split_address;
use crate::diagnostic::Diagnostic;
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    /// How the agent is named to customers ("Alice Example (Example Support)"); default `name`.
    pub display_name: String,
    pub address: String,
    pub alternates: Vec<String>,
    pub queues: Vec<String>,
    pub skills: Vec<String>,
    /// The agent's web password as an argon2id PHC string (`postdesk
    /// hash-password`); None: the agent cannot log in to the web view.
    pub password_hash: Option<String>,
}

impl Agent {
    /// Whether `addr` is one of this agent's addresses.
    pub fn has_address(&self, addr: &str) -> bool {
        self.address.eq_ignore_ascii_case(addr)
            || self.alternates.iter().any(|a| a.eq_ignore_ascii_case(addr))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Agents {
    pub list: Vec<Agent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    agent: Vec<AgentSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSpec {
    name: Spanned<String>,
    display_name: Option<String>,
    address: Spanned<String>,
    #[serde(default)]
    alternates: Vec<Spanned<String>>,
    #[serde(default)]
    queues: Vec<String>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    password_hash: Option<Spanned<String>>,
}

impl Agents {
    pub fn parse(text: &str, path: &Path) -> Result<Agents, Vec<Diagnostic>> {
        let file: File = toml::from_str(text).map_err(|e| vec![toml_diag(path, text, &e)])?;
        let mut diags = Vec::new();
        let mut list: Vec<Agent> = Vec::new();
        for spec in file.agent {
            let name = spec.name.get_ref().trim().to_string();
            // The name travels in agent reply addresses (support+a12.NAME.0.sig@…).
            let word = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !word || name.eq_ignore_ascii_case("me") {
                diags.push(diag_at(
                    path,
                    text,
                    spec.name.span().start,
                    format!(
                        "agent name {name:?} must be one word of letters, digits, - or _ (at most 32, and not \"me\")"
                    ),
                ));
            }
            if list.iter().any(|a| a.name.eq_ignore_ascii_case(&name)) {
                diags.push(diag_at(
                    path,
                    text,
                    spec.name.span().start,
                    format!("agent {name:?} is defined twice"),
                ));
            }
            let mut addresses = vec![&spec.address];
            addresses.extend(spec.alternates.iter());
            for a in &addresses {
                if split_address(a.get_ref()).is_none() {
                    diags.push(diag_at(
                        path,
                        text,
                        a.span().start,
                        format!("{:?} is not an address (local@domain)", a.get_ref()),
                    ));
                } else if list.iter().any(|x| x.has_address(a.get_ref())) {
                    diags.push(diag_at(
                        path,
                        text,
                        a.span().start,
                        format!("address {:?} already belongs to another agent", a.get_ref()),
                    ));
                }
            }
            if let Some(h) = &spec.password_hash
                && let Err(e) = crate::password::check_hash(h.get_ref())
            {
                diags.push(diag_at(
                    path,
                    text,
                    h.span().start,
                    format!("password_hash of agent {name:?}: {e}"),
                ));
            }
            list.push(Agent {
                display_name: spec
                    .display_name
                    .map(|d| d.chars().filter(|c| !c.is_control()).collect::<String>())
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or_else(|| name.clone()),
                name,
                address: spec.address.get_ref().to_ascii_lowercase(),
                alternates: spec
                    .alternates
                    .iter()
                    .map(|a| a.get_ref().to_ascii_lowercase())
                    .collect(),
                queues: spec.queues,
                skills: spec.skills,
                password_hash: spec.password_hash.map(Spanned::into_inner),
            });
        }
        if diags.is_empty() {
            Ok(Agents { list })
        } else {
            Err(diags)
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&Agent> {
        self.list.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn by_address(&self, addr: &str) -> Option<&Agent> {
        self.list.iter().find(|a| a.has_address(addr))
    }

    /// Agents serving `queue`, in file order.
    pub fn in_queue<'a>(&'a self, queue: &'a str) -> impl Iterator<Item = &'a Agent> + 'a {
        self.list
            .iter()
            .filter(move |a| a.queues.iter().any(|q| q == queue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_positions() {
        let ok = "[[agent]]\nname = \"alice\"\naddress = \"alice@example.test\"\nqueues = [\"general\"]\n";
        let a = Agents::parse(ok, Path::new("agents.toml")).unwrap();
        assert_eq!(
            a.by_address("ALICE@example.test").map(|a| a.name.as_str()),
            Some("alice")
        );
        let bad = "[[agent]]\nname = \"bob\"\naddress = \"not-an-address\"\n";
        let e = Agents::parse(bad, Path::new("agents.toml")).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (3, 11), "{}", e[0]);
        let unknown = "[[agent]]\nname = \"bob\"\naddress = \"b@x.test\"\nqueue = [\"x\"]\n";
        let e = Agents::parse(unknown, Path::new("agents.toml")).unwrap_err();
        assert_eq!(e[0].line, 4, "{}", e[0]);
        let dotted = "[[agent]]\nname = \"al.ice\"\naddress = \"a@x.test\"\n";
        let e = Agents::parse(dotted, Path::new("agents.toml")).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (2, 8), "{}", e[0]);
    }
}
