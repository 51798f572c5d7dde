//! `postdesk`: the command line. Thin: parse arguments, load config, hand over.

use clap::{Parser, Subcommand};
use postdesk::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "postdesk", version, about = "Email-native help desk")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a report (volume, heatmap, times, sla, backlog, rates, agents),
    /// asked of the running daemon's API.
    Report {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// The report's name.
        name: String,
        /// Start of the period: 30d, 12h, 2w, 2026-12-01, RFC 3339 or unix seconds.
        #[arg(long, default_value = "30d")]
        since: String,
        /// End of the period (exclusive); now if not given.
        #[arg(long)]
        until: Option<String>,
        /// Only tickets of this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Volume per day or week.
        #[arg(long)]
        interval: Option<String>,
        /// Recompute SLA figures under today's calendars and policies.
        #[arg(long)]
        recompute: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
    /// Run the daemon.
    Serve {
        /// Config file.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Validate config and rules; prints file:line:column: message for each problem.
    Check {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Work with the rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Hand one message on standard input to the running daemon (an MTA's
    /// pipe transport): exit 0 once committed, 75 when it could not be.
    Deliver {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// The envelope sender (empty for the null sender of a bounce).
        #[arg(short = 'f', long = "from", allow_hyphen_values = true)]
        from: String,
        /// The envelope recipients.
        #[arg(required = true)]
        recipients: Vec<String>,
    },
    /// Write a consistent copy of the running daemon's store to FILE
    /// (through its API; intake goes on).
    Backup {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Read the API token from this file instead of the config.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The backup file to create (must not exist).
        file: PathBuf,
    },
    /// Rewrite the stored values as the store writes now and give its free
    /// pages back to the file system (the daemon stopped); prints the size
    /// before and after and the largest tables.
    Compact {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Train new compression dictionaries from today's values first
        /// (for a store whose mail has changed since they were made).
        #[arg(long)]
        retrain: bool,
    },
    /// Turn a mailbox's history into tickets through the running daemon
    /// (threaded, dated by the messages, nothing sent; repeatable).
    Import {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Read the API token from this file instead of the config.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[arg(value_enum)]
        format: ImportFormatArg,
        /// The mailbox file.
        file: PathBuf,
        /// The status of the tickets it opens: resolved or closed keeps
        /// answered history out of the open queue.
        #[arg(long, value_enum, default_value = "new")]
        status: ImportStatusArg,
    },
    /// Put a backup in place as the store of an empty data directory.
    Restore {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// A file written by `postdesk backup`.
        file: PathBuf,
    },
    /// Write every ticket (json: one JSON line each) or every ticket's
    /// messages (mbox: mboxrd, byte for byte) from the running daemon.
    Export {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Read the API token from this file instead of the config.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[arg(long, value_enum)]
        format: ExportFormatArg,
        /// Only this ticket.
        #[arg(long)]
        ticket: Option<u64>,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read a password on standard input and print its argon2id hash, for
    /// `password_hash` in rules/agents.toml (no daemon needed).
    HashPassword,
    /// Search tickets through the running daemon: words, "phrases",
    /// prefix*, from:, queue:, status:, tag:, before:/after:YYYY-MM-DD.
    Search {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// At most this many tickets.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the API's JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// The query (several words are joined with spaces).
        #[arg(required = true)]
        query: Vec<String>,
    },
    /// Erase a person's messages and personal data from every ticket
    /// (through the running daemon); --dry-run says what would go.
    Erase {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// The person's email address.
        #[arg(long)]
        customer: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply the retention rules (rules/retention.toml) now, through the
    /// running daemon; --dry-run lists the tickets due.
    Retention {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        #[arg(long)]
        dry_run: bool,
        /// Act as of this date or time instead of now (e.g. 2027-01-01).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Rebuild the running daemon's search index from the stored tickets.
    Reindex {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Make a DKIM private key (PKCS#8 PEM) and print the DNS TXT record to
    /// publish for it; with --key-file the key goes to that new file.
    DkimKeygen {
        /// The selector (the record is SELECTOR._domainkey.DOMAIN).
        #[arg(long)]
        selector: String,
        /// The signing domain; default: dkim.domain or the domain of
        /// outbound.from in the config file.
        #[arg(long)]
        domain: Option<String>,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithm,
        /// Write the private key to this new file (mode 0600) instead of
        /// standard output.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyAlgorithm {
    Rsa,
    Ed25519,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Print what the rules would do with a message (matched rules and why,
    /// queue, priority, tags, assignee, acknowledgement), changing nothing.
    Test {
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// The message, as a .eml file.
        message: PathBuf,
        /// Evaluate as of this time (RFC 3339, e.g. 2026-12-01T08:00:00Z) instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Output format: text (for people) or json (for scripts).
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormatArg {
    Json,
    Mbox,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DkimKeygen {
            selector,
            domain,
            algorithm,
            key_file,
            config,
        } => dkim_keygen(&selector, domain, algorithm, key_file, &config),
        Command::Serve { config } => serve(config),
        Command::Check { config } => check(config),
        Command::HashPassword => hash_password(),
        Command::Backup {
            config,
            token_file,
            file,
        } => backup_or_restore(&config, |cfg| {
            postdesk::cli::backup::backup(cfg, token_file.as_deref(), &file)
        }),
        Command::Export {
            config,
            token_file,
            format,
            ticket,
            output,
        } => export(
            &config,
            token_file.as_deref(),
            format,
            ticket,
            output.as_deref(),
        ),
        Command::Compact { config, retrain } => compact(&config, retrain),
        Command::Import {
            config,
            token_file,
            format: ImportFormatArg::Mbox,
            file,
            status,
        } => import(&config, token_file.as_deref(), &file, status.into()),
        Command::Restore { config, file } => {
            backup_or_restore(&config, |cfg| postdesk::cli::backup::restore(cfg, &file))
        }
        Command::Search {
            config,
            limit,
            json,
            query,
        } => api_command(config, |cfg| {
            postdesk::cli::search::search(cfg, &query.join(" "), limit, json)
        }),
        Command::Reindex { config } => api_command(config, postdesk::cli::search::reindex),
        Command::Retention {
            config,
            dry_run,
            as_of,
        } => api_command(config, |cfg| {
            postdesk::cli::erase::retention(cfg, dry_run, as_of.as_deref())
        }),
        Command::Erase {
            config,
            customer,
            dry_run,
        } => api_command(config, |cfg| {
            postdesk::cli::erase::erase(cfg, &customer, dry_run)
        }),
        Command::Deliver {
            config,
            from,
            recipients,
        } => deliver(config, from, recipients),
        Command::Report {
            config,
            name,
            since,
            until,
            queue,
            interval,
            recompute,
            format,
        } => {
            let req = postdesk::cli::report::Request {
                name,
                since: Some(since),
                until,
                queue,
                interval,
                recompute,
            };
            report(config, &req, format)
        }
        Command::Rules {
            command:
                RulesCommand::Test {
                    config,
                    message,
                    at,
                    format,
                },
        } => match parse_at(at.as_deref()).and_then(|at| {
            let format = match format {
                OutputFormat::Text => postdesk::cli::RulesTestFormat::Text,
                OutputFormat::Json => postdesk::cli::RulesTestFormat::Json,
            };
            postdesk::cli::rules_test(&config, &message, at, format)
        }) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("postdesk: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// `postdesk report`: 0 with the report on standard output, 1 when the
/// daemon refused the request or could not be reached.
fn report(path: PathBuf, req: &postdesk::cli::report::Request, format: ReportFormat) -> ExitCode {
    use postdesk::cli::report::Format;
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(1);
        }
    };
    let format = match format {
        ReportFormat::Table => Format::Table,
        ReportFormat::Csv => Format::Csv,
        ReportFormat::Json => Format::Json,
    };
    match postdesk::cli::report::report(&cfg, req, format) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::from(1)
        }
    }
}

/// `postdesk deliver`: exit codes are sysexits(3), which MTAs act on.
fn deliver(path: PathBuf, from: String, recipients: Vec<String>) -> ExitCode {
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(75);
        }
    };
    let from = from.trim_start_matches('<').trim_end_matches('>');
    match postdesk::cli::deliver::deliver(&cfg, from, &recipients, &mut std::io::stdin()) {
        Ok(reply) => {
            eprintln!("postdesk: {reply}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What `postdesk import` reads.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportFormatArg {
    /// mboxrd or mboxo (`From ` lines, `>From ` escaped).
    Mbox,
}

/// What `postdesk import --status` accepts (`import::HistoryStatus`).
#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportStatusArg {
    New,
    Resolved,
    Closed,
}

impl From<ImportStatusArg> for postdesk::import::HistoryStatus {
    fn from(a: ImportStatusArg) -> Self {
        match a {
            ImportStatusArg::New => Self::New,
            ImportStatusArg::Resolved => Self::Resolved,
            ImportStatusArg::Closed => Self::Closed,
        }
    }
}

/// `postdesk import mbox FILE`: progress and skipped messages on standard
/// error, the summary on standard output.
fn import(
    path: &std::path::Path,
    token_file: Option<&std::path::Path>,
    file: &std::path::Path,
    status: postdesk::import::HistoryStatus,
) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(2);
        }
    };
    match postdesk::cli::import::import_mbox(&cfg, token_file, file, status, &mut std::io::stderr())
    {
        Ok(s) => {
            println!(
                "imported: {} messages read, {} new, {} already stored, {} skipped as malformed",
                s.read,
                s.spooled,
                s.already_stored,
                s.malformed.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `postdesk compact`: the store's size before and after, and where the
/// bytes are (the largest tables).
fn compact(path: &std::path::Path, retrain: bool) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(2);
        }
    };
    match postdesk::store::compact(&cfg.data_dir(), cfg.store.compress, retrain) {
        Ok(done) => {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            println!(
                "rewritten as the store writes now: {} values, {:.1} MiB → {:.1} MiB",
                done.recoded.values,
                mib(done.recoded.bytes_before),
                mib(done.recoded.bytes_after)
            );
            println!(
                "{:<24} {:>10} {:>12} {:>12}",
                "table", "entries", "stored MiB", "overhead MiB"
            );
            for t in done.after.tables.iter().take(12) {
                println!(
                    "{:<24} {:>10} {:>12.1} {:>12.1}",
                    t.name,
                    t.entries,
                    mib(t.stored_bytes),
                    mib(t.metadata_bytes + t.fragmented_bytes)
                );
            }
            println!(
                "compacted: {:.1} MiB before, {:.1} MiB after ({:.1} MiB free or redb's own before)",
                mib(done.before.file_bytes),
                mib(done.after.file_bytes),
                mib(done.before.unaccounted())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `postdesk backup` / `restore`: prints what the file holds.
fn backup_or_restore(
    path: &std::path::Path,
    run: impl FnOnce(
        &Config,
    ) -> Result<postdesk::store::BackupSummary, postdesk::cli::backup::BackupError>,
) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&cfg) {
        Ok(s) => {
            println!(
                "ok: {} tickets, {} messages, {} tables",
                s.tickets, s.messages, s.tables
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `postdesk export`: the file appears only once the export is complete.
fn export(
    path: &std::path::Path,
    token_file: Option<&std::path::Path>,
    format: ExportFormatArg,
    ticket: Option<u64>,
    output: Option<&std::path::Path>,
) -> ExitCode {
    use postdesk::cli::export::{ExportFormat, export};
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(2);
        }
    };
    let format = match format {
        ExportFormatArg::Json => ExportFormat::Json,
        ExportFormatArg::Mbox => ExportFormat::Mbox,
    };
    let result = match output {
        None => export(
            &cfg,
            token_file,
            format,
            ticket,
            &mut std::io::stdout().lock(),
        ),
        Some(file) => {
            let partial = file.with_extension("partial");
            let run = || {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
                let counts = export(&cfg, token_file, format, ticket, &mut out)?;
                out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                std::fs::rename(&partial, file)?;
                Ok(counts)
            };
            let r: Result<_, postdesk::cli::backup::BackupError> = run();
            if r.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            r
        }
    };
    match result {
        Ok((tickets, messages)) => {
            eprintln!("postdesk: exported {tickets} tickets, {messages} messages");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `postdesk hash-password`: the first line of standard input (without its
/// line end) is the password; the hash goes to standard output.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("postdesk: cannot read the password from standard input: {e}");
        return ExitCode::from(1);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    match postdesk::password::hash(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::from(1)
        }
    }
}

/// `postdesk dkim-keygen`: the key to `--key-file` or standard output, the
/// DNS record (and the config lines) to standard output.
fn dkim_keygen(
    selector: &str,
    domain: Option<String>,
    algorithm: KeyAlgorithm,
    key_file: Option<PathBuf>,
    config: &std::path::Path,
) -> ExitCode {
    let domain = match domain {
        Some(d) => d,
        None => match Config::load(config) {
            Ok(cfg) => cfg.dkim_domain().to_string(),
            Err(e) => {
                eprintln!("postdesk: no --domain given and the config does not load:\n{e}");
                return ExitCode::from(1);
            }
        },
    };
    let algorithm = match algorithm {
        KeyAlgorithm::Rsa => postdesk::dkim::Algorithm::Rsa,
        KeyAlgorithm::Ed25519 => postdesk::dkim::Algorithm::Ed25519,
    };
    let generated = match postdesk::cli::dkim_keygen::generate(selector, &domain, algorithm) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(1);
        }
    };
    match &key_file {
        Some(path) => {
            if let Err(e) = postdesk::cli::dkim_keygen::write_key(path, &generated.private_pem) {
                eprintln!("postdesk: {e}");
                return ExitCode::from(1);
            }
        }
        None => print!("{}", generated.private_pem),
    }
    println!("; publish in the zone of {domain}:");
    print!("{}", generated.zone);
    println!("; and name the key in config.toml (first selector signs):");
    println!("; [[dkim.selector]]");
    println!("; name = {selector:?}");
    match &key_file {
        Some(path) => println!("; key_file = {:?}", path.display().to_string()),
        None => println!("; key_file = \"<the file you saved the key above in>\""),
    }
    ExitCode::SUCCESS
}

fn init_tracing() {
    // tantivy logs every commit and file it deletes at info: quiet unless
    // the filter asks for it by name.
    let mut directives = std::env::var("POSTDESK_LOG").unwrap_or_else(|_| "info".into());
    if !directives.contains("tantivy") {
        directives.push_str(",tantivy=warn");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(path: PathBuf) -> ExitCode {
    init_tracing();
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "postdesk: not started: fix the config above (postdesk check -c {})",
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("postdesk: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(postdesk::daemon::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postdesk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: PathBuf) -> ExitCode {
    match postdesk::cli::check(&path) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in diags {
                println!("{d}");
            }
            ExitCode::from(1)
        }
    }
}

fn parse_at(at: Option<&str>) -> anyhow::Result<Option<i64>> {
    at.map(|s| {
        s.parse::<jiff::Timestamp>()
            .map(|t| t.as_second())
            .map_err(|e| {
                anyhow::anyhow!("--at {s:?}: expected RFC 3339 like 2026-12-01T08:00:00Z ({e})")
            })
    })
    .transpose()
}

/// `postdesk search` / `reindex`: load the config, ask the daemon, print.
fn api_command(
    path: PathBuf,
    f: impl FnOnce(&Config) -> Result<String, postdesk::cli::search::ApiClientError>,
) -> ExitCode {
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postdesk: {e}");
            return ExitCode::from(2);
        }
    };
    match f(&cfg) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postdesk: {e}");
            ExitCode::from(1)
        }
    }
}
