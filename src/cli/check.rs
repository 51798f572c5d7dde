//! `postdesk check`: validates the config and everything it names (templates,
//! rule files, canned replies) without opening the store or any socket, so it
//! can run beside a live daemon before a reload or restart.

use crate::config::{Config, Diagnostic};
use crate::rules::RuleSet;

/// `postdesk check`: validates the config and the rule files it names.
pub fn check(path: &std::path::Path) -> Result<String, Vec<Diagnostic>> {
    let cfg = Config::load(path).map_err(|e| e.0)?;
    let mut diags = Vec::new();
    let rules = match RuleSet::load_for(&cfg) {
        Ok(r) => Some(r),
        Err(mut d) => {
            diags.append(&mut d);
            None
        }
    };
    diags.append(&mut crate::process::canned::check_dir(&cfg.rules_dir()));
    if diags.is_empty() {
        let (n_rules, n_agents) =
            rules.map_or((0, 0), |r| (r.routing.rules.len(), r.agents.list.len()));
        let warnings: String = cfg
            .warnings()
            .iter()
            .map(|w| format!("{}: warning: {w}\n", path.display()))
            .collect();
        Ok(format!(
            "{warnings}{}: ok ({} mailbox(es), {n_rules} routing rule(s), {n_agents} agent(s), relay {})",
            path.display(),
            cfg.mailboxes.len(),
            cfg.outbound.relay
        ))
    } else {
        Err(diags)
    }
}
