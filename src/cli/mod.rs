//! The command-line commands besides `serve`: each reads the config and rule
//! files, reports, and exits; none opens the store or binds a socket, so they
//! live apart from [`crate::daemon`], which only starts and stops the daemon.
//!
//! - [`check`]: `postdesk check`, every problem as `file:line:column`.
//! - [`rules_test`]: `postdesk rules test`, what the rules would do with a message.

pub mod check;
pub mod deliver;
pub mod rules_test;

pub use check::check;
pub use rules_test::{Format as RulesTestFormat, rules_test};

/// `postdesk report`, which asks the running daemon's JSON API.
pub mod report;
