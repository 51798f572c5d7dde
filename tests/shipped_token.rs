//! The API token shipped in config.toml (`change-me`): `postdesk check` warns about it (and
//! refuses it when the API listens beyond loopback), the daemon warns loudly at start.

mod common;
use common::*;
use std::process::Command;

const SHIPPED: &str = "change-me";

fn postdesk(args: &[&str]) -> (bool, String) {
    let out = Command::new(daemon_bin())
        .args(args)
        .output()
        .expect("run postdesk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_warns_about_the_shipped_token_on_loopback() {
    let mut cfg = DaemonConfig::new(free_port());
    cfg.set("web", "api_token", &q(SHIPPED));
    let (_dir, path) = write_config(&cfg);
    let (ok, out) = postdesk(&["check", "-c", path.to_str().unwrap()]);
    assert!(ok, "a warning must not fail check:\n{out}");
    let warning = out
        .lines()
        .find(|l| l.contains("warning") && l.contains(SHIPPED))
        .unwrap_or_else(|| panic!("no warning about {SHIPPED:?}:\n{out}"));
    assert!(warning.contains("web.api_token"), "{warning}");

    // An own token: no warning.
    let (_dir, path) = write_config(&DaemonConfig::new(free_port()));
    let (ok, out) = postdesk(&["check", "-c", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("warning"),
        "warning with an own token:\n{out}"
    );
}

#[test]
fn the_shipped_token_is_refused_when_the_api_listens_beyond_loopback() {
    let re = regex::Regex::new(r"config\.toml:\d+:\d+: .*change-me").unwrap();
    for token_key in ["api_token", "api_token_file"] {
        let mut cfg = DaemonConfig::new(free_port());
        // A documentation address (RFC 5737): not loopback, and never bindable here, so
        // not even a daemon that wrongly started would listen beyond loopback.
        cfg.set("web", "listen", &q(&format!("192.0.2.10:{}", free_port())));
        if token_key == "api_token" {
            cfg.set("web", "api_token", &q(SHIPPED));
        }
        let (dir, path) = write_config(&cfg);
        if token_key == "api_token_file" {
            // The token read from a file instead of the config.
            let file = dir.path.join("api-token");
            std::fs::write(&file, format!("{SHIPPED}\n")).unwrap();
            let text = std::fs::read_to_string(&path).unwrap().replace(
                &format!("api_token = {}\n", q(API_TOKEN)),
                &format!("api_token_file = {}\n", q(&file.to_string_lossy())),
            );
            assert!(text.contains("api_token_file"), "{text}");
            std::fs::write(&path, text).unwrap();
        }
        let p = path.to_str().unwrap();
        let (ok, out) = postdesk(&["check", "-c", p]);
        assert!(
            !ok,
            "{token_key}: check accepted {SHIPPED:?} beyond loopback:\n{out}"
        );
        assert!(
            re.is_match(&out),
            "{token_key}: no positioned error:\n{out}"
        );
        let (ok, out) = postdesk(&["serve", "-c", p]);
        assert!(
            !ok,
            "{token_key}: serve started with {SHIPPED:?} beyond loopback:\n{out}"
        );
        assert!(
            re.is_match(&out),
            "{token_key}: serve should say why:\n{out}"
        );
        drop(dir);
    }
}

#[test]
fn the_daemon_warns_at_start_about_the_shipped_token() {
    let sink = Sink::start();
    let d = Daemon::start_with(&sink, |c| {
        c.set("web", "api_token", &q(SHIPPED));
    });
    let log = d.log();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains(SHIPPED))
        .unwrap_or_else(|| panic!("no start-up warning about {SHIPPED:?}:\n{log}"));
    assert!(warning.contains("web.api_token"), "{warning}");

    let d2 = Daemon::start(&sink);
    assert!(
        !d2.log().contains(SHIPPED),
        "warning with an own token:\n{}",
        d2.log()
    );
}
