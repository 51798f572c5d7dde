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
    /// Read a password on standard input and print its argon2id hash, for
    /// `password_hash` in rules/agents.toml (no daemon needed).
    HashPassword,
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
enum OutputFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check { config } => check(config),
        Command::HashPassword => hash_password(),
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSTDESK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
