//! The command-line commands besides `serve`: each reads the config and rule
//! files, reports, and exits; none opens the store or binds a socket, so they
//! live apart from [`crate::daemon`], which only starts and stops the daemon.
//!
//! - [`check`]: `postdesk check`, every problem as `file:line:column`.
//! - [`rules_test`]: `postdesk rules test`, what the rules would do with a message.
//! - [`search`]: `postdesk search` and `postdesk reindex`, which ask the
//!   running daemon over its JSON API (the store is the daemon's).
//! - [`dkim_keygen`]: `postdesk dkim-keygen`, a DKIM key and its DNS record.
//! - [`import`]: `postdesk import mbox FILE`, a mailbox's history posted
//!   message by message to the running daemon.

pub mod api_client;
pub mod backup;
pub mod check;
pub mod deliver;
pub mod dkim_keygen;
pub mod erase;
pub mod export;
pub mod import;
pub mod rules_test;
pub mod search;

pub use check::check;
pub use rules_test::{Format as RulesTestFormat, rules_test};

/// `postdesk report`, which asks the running daemon's JSON API.
pub mod report;
