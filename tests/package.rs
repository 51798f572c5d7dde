//! The Debian package (packaging/deb/build.sh): installed with the real dpkg into a scratch
//! root, it puts the binary, the unit, the config and the rules in their places as conffiles,
//! starts nothing, its config passes `postdesk check`, and it purges cleanly.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn dpkg(root: &Path, args: &[&str]) -> (bool, String) {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-not-root",
            "--log=/dev/null",
        ])
        .args(args))
}

#[test]
fn package_installs_its_files_as_conffiles_starts_nothing_and_purges() {
    let dir = TempDir::new("deb");
    let out = dir.path.join("out");
    let (ok, text) = run(Command::new("bash")
        .arg(repo_root().join("packaging/deb/build.sh"))
        .arg(daemon_bin())
        .arg(&out)
        .env("DEB_COMPRESS", "none"));
    assert!(ok, "build.sh failed:\n{text}");
    let deb = text.lines().last().unwrap().trim().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "{text}");

    let (ok, info) =
        run(Command::new("dpkg-deb").args(["-f", &deb, "Package", "Version", "Depends"]));
    assert!(ok, "{info}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(info.contains("Package: postdesk"), "{info}");
    assert!(info.contains(&format!("Version: {version}-1")), "{info}");
    assert!(info.contains("libc6 (>="), "{info}");

    // A scratch dpkg root (libc6 is not in it: --force-depends).
    let root = dir.path.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let (ok, text) = dpkg(&root, &["--force-depends", "-i", &deb]);
    assert!(ok, "dpkg -i failed:\n{text}");
    assert!(
        text.contains("not started"),
        "postinst tells what to do next:\n{text}"
    );

    for f in [
        "usr/bin/postdesk",
        "lib/systemd/system/postdesk.service",
        "lib/systemd/system/postdesk.socket",
        "etc/postdesk/config.toml",
        "etc/postdesk/rules/routing.toml",
        "etc/postdesk/rules/templates/acknowledgement.txt",
        "usr/share/doc/postdesk/copyright",
        "usr/share/doc/postdesk/README.md",
    ] {
        assert!(root.join(f).exists(), "{f} not installed");
    }
    let (ok, status) = dpkg(&root, &["-s", "postdesk"]);
    assert!(ok, "{status}");
    assert!(status.contains("Status: install ok installed"), "{status}");
    for conffile in [
        "/etc/postdesk/config.toml",
        "/etc/postdesk/rules/agents.toml",
    ] {
        assert!(
            status.contains(conffile),
            "{conffile} is not a conffile:\n{status}"
        );
    }

    // The unit runs the packaged binary; nothing enables it (no wants/ link anywhere).
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/postdesk.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/postdesk serve -c /etc/postdesk/config.toml"),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local/bin"), "{unit}");
    assert!(
        !root.join("etc/systemd").exists(),
        "the package enabled something"
    );

    // The packaged config is valid once its paths point into the scratch root; it keeps no
    // secret (the API token is the systemd credential) and stores data under /var/lib.
    let config = std::fs::read_to_string(root.join("etc/postdesk/config.toml")).unwrap();
    assert!(
        config.contains("data_dir = \"/var/lib/postdesk\""),
        "{config}"
    );
    assert!(
        config.contains("api_token_file = \"credential:api-token\""),
        "{config}"
    );
    assert!(
        !config.contains("change-me\"\n") && !config.contains("api_token = "),
        "{config}"
    );
    let rooted = config
        .replace(
            "\"/etc/postdesk",
            &format!("\"{}/etc/postdesk", root.display()),
        )
        .replace(
            "/var/lib/postdesk",
            &format!("{}/var/lib/postdesk", root.display()),
        );
    let checked = dir.path.join("check.toml");
    std::fs::write(&checked, rooted).unwrap();
    let (ok, text) = run(Command::new(root.join("usr/bin/postdesk")).args([
        "check",
        "-c",
        checked.to_str().unwrap(),
    ]));
    assert!(ok, "the packaged config does not pass check:\n{text}");

    // Purge: binary and configuration gone.
    let (ok, text) = dpkg(&root, &["-P", "postdesk"]);
    assert!(ok, "{text}");
    assert!(!root.join("usr/bin/postdesk").exists());
    assert!(!root.join("etc/postdesk/config.toml").exists());
}
