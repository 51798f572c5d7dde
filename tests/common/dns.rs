//! A private DNS server for the tests: Debian's dnsmasq on a loopback port, answering only
//! the records a test gives it (MX, A/AAAA, TXT) and nothing else: no upstream resolver, no
//! /etc/hosts, so no query ever leaves the machine.
//!
//! dnsmasq runs in the foreground as our child, so dropping the handle kills and reaps it
//! (PID 1 here does not reap orphans).
#![allow(dead_code)]

use super::free_port;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The records a test's DNS server answers.
#[derive(Default, Clone)]
pub struct Zone {
    args: Vec<String>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// `domain MX preference host`.
    pub fn mx(mut self, domain: &str, host: &str, preference: u16) -> Zone {
        self.args
            .push(format!("--mx-host={domain},{host},{preference}"));
        self
    }

    /// An A or AAAA record (by the address's family).
    pub fn host(mut self, name: &str, ip: &str) -> Zone {
        self.args.push(format!("--host-record={name},{ip}"));
        self
    }

    /// A TXT record; `text` is one string (dnsmasq splits it into 255-byte chunks itself
    /// only when given several comma-separated strings, so long DKIM keys should be passed
    /// through [`Zone::txt_long`]). On dnsmasq's command line quotes are kept as part of
    /// the text (only its config files unquote) and a comma starts the next string, so the
    /// text goes in bare and may not hold a comma.
    pub fn txt(mut self, name: &str, text: &str) -> Zone {
        assert!(
            !text.contains(','),
            "a TXT text for dnsmasq cannot hold a comma: {text}"
        );
        self.args.push(format!("--txt-record={name},{text}"));
        self
    }

    /// A TXT record longer than one character-string (255 bytes), split into chunks that a
    /// resolver joins back.
    pub fn txt_long(mut self, name: &str, text: &str) -> Zone {
        assert!(
            !text.contains(','),
            "a TXT text for dnsmasq cannot hold a comma: {text}"
        );
        let chunks: Vec<String> = text
            .as_bytes()
            .chunks(250)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.args
            .push(format!("--txt-record={name},{}", chunks.join(",")));
        self
    }

    /// Answers for everything under `domain` from this zone only: a name or type
    /// it does not hold is NXDOMAIN/NODATA (a record that does not exist), not the
    /// REFUSED that dnsmasq without an upstream gives otherwise (a temporary error
    /// to a resolver). SPF and DMARC tell "none" from "temperror" by that.
    pub fn authoritative(mut self, domain: &str) -> Zone {
        self.args.push(format!("--local=/{domain}/"));
        self
    }

    /// A CNAME.
    pub fn cname(mut self, alias: &str, target: &str) -> Zone {
        self.args.push(format!("--cname={alias},{target}"));
        self
    }
}

/// A running dnsmasq; killed on drop.
pub struct Dns {
    child: Child,
    pub addr: SocketAddr,
}

impl Dns {
    /// Starts dnsmasq on 127.0.0.1 at a free port, serving `zone` (authoritatively: names
    /// it does not know get NXDOMAIN-like empty answers, never a forwarded query).
    pub fn start(zone: &Zone) -> Dns {
        let port = free_port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=",
                "--pid-file=",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .args(&zone.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dnsmasq (scripts/test-deps.sh installs dnsmasq-base)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut dns = Dns { child, addr };
        dns.wait_ready();
        dns
    }

    /// Waits until dnsmasq answers a query on UDP.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // A minimal query: id 0x1234, RD, one question `ready.invalid. A IN`.
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["ready", "invalid"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("dnsmasq exited at start ({status}): {err}");
            }
            let _ = sock.send_to(&q, self.addr);
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && n >= 2
                && buf[..2] == [0x12, 0x34]
            {
                return;
            }
        }
        panic!("dnsmasq on {} did not answer within 10 s", self.addr);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
