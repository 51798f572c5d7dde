//! `postdesk check`: validates the config and everything it names (templates,
//! rule files, canned replies) without opening the store or any socket, so it
//! can run beside a live daemon before a reload or restart.

use crate::config::{Config, Diagnostic};
use crate::rules::RuleSet;

/// One line per DKIM selector: which signs, and the TXT record its key
/// needs, to compare with what DNS publishes. Empty without `[dkim]`.
fn dkim_summary(cfg: &Config) -> String {
    let domain = cfg.dkim_domain();
    let mut out = String::new();
    for (i, sel) in cfg.dkim.selectors.iter().enumerate() {
        // `Config::load` loaded every key already; a key that fails now
        // changed since, and says so.
        let record = crate::dkim::Key::load(&cfg.resolve(&sel.key_file))
            .map(|k| k.dns_record())
            .unwrap_or_else(|e| e.to_string());
        let role = if i == 0 { "signs" } else { "retired" };
        out.push_str(&format!(
            "\ndkim: {}._domainkey.{domain} ({role}): {record}",
            sel.name
        ));
    }
    out
}

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
            .into_iter()
            .chain(unresolved_credentials(&cfg))
            .map(|w| format!("{}: warning: {w}\n", path.display()))
            .collect();
        Ok(format!(
            "{warnings}{}: ok ({} mailbox(es), {n_rules} routing rule(s), {n_agents} agent(s), relay {}){}",
            path.display(),
            cfg.mailboxes.len(),
            cfg.outbound.relay,
            dkim_summary(&cfg)
        ))
    } else {
        Err(diags)
    }
}

/// The file keys naming a systemd credential that cannot be found here
/// (`postdesk check` run by hand, outside the unit): a warning, since under
/// systemd (ExecStartPre) the same names resolve.
fn unresolved_credentials(cfg: &Config) -> Vec<String> {
    let mut keys: Vec<(String, &std::path::Path)> = Vec::new();
    if let Some(p) = &cfg.web.api_token_file {
        keys.push(("web.api_token_file".into(), p));
    }
    if let Some(p) = &cfg.smtp.tls_cert {
        keys.push(("smtp.tls_cert".into(), p));
    }
    if let Some(p) = &cfg.smtp.tls_key {
        keys.push(("smtp.tls_key".into(), p));
    }
    if let Some(p) = &cfg.tokens.secret_file {
        keys.push(("tokens.secret_file".into(), p));
    }
    for s in &cfg.dkim.selectors {
        keys.push((format!("dkim.selector {:?} key_file", s.name), &s.key_file));
    }
    if let Some(p) = &cfg.web.tls_cert {
        keys.push(("web.tls_cert".into(), p));
    }
    if let Some(p) = &cfg.web.tls_key {
        keys.push(("web.tls_key".into(), p));
    }
    for (i, a) in cfg.imap.iter().enumerate() {
        if let Some(p) = &a.password_file {
            keys.push((format!("imap[{i}].password_file"), p));
        }
    }
    keys.into_iter()
        .filter_map(|(key, p)| match cfg.resolve_file(p) {
            Err(e) => Some(format!("{key}: {e}")),
            Ok(f) if crate::credentials::is_credential(p) && !f.exists() => Some(format!(
                "{key}: credential file {} does not exist",
                f.display()
            )),
            Ok(_) => None,
        })
        .collect()
}
