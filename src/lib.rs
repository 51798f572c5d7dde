//! postdesk: an email-native help desk.
//!
//! # Layout
//! Mail flows one way through small stages joined by durable queues
//! (see ARCHITECTURE.md):
//!
//! - [`smtp`]: the SMTP listener; accepts bytes and hands them to the spool.
//! - [`imap`]: IMAP pollers; fetch mail from existing mailboxes into the spool.
//! - [`spool`]: group-committed durable intake; the only way mail gets in.
//! - [`process`]: reads the spool: parse, classify, thread, store, acknowledge.
//! - [`outbound`]: the durable outbound queue and the sender that drains it.
//! - [`api`]: the JSON API over the store.
//! - [`web`]: the agent web view (HTML pages, sessions) on the API's listener.
//! - [`store`]: the only module that knows redb.
//! - [`search_index`]: full-text search in tantivy, fed from the store's
//!   queue of changed tickets by a background indexer.
//! - [`reports`]: reports from the event log (pure); [`report_service`]
//!   reads the store for them, for the API, the web page and the CLI.
//! - [`daemon`]: starts the stages and fans out shutdown.
//! - [`service`]: the systemd notification protocol (ready, reload, stop, watchdog);
//!   [`liveness`]: whether the stages the watchdog vouches for are alive.
//! - [`cli`]: the commands that only read config and rules (`check`, `rules test`).

pub mod address;
pub mod api;
pub mod assignment;
pub mod chat_live;
pub mod cli;
pub mod clock;
pub mod config;
pub mod counters;
pub mod credentials;
pub mod csat;
pub mod customer_texts;
pub mod daemon;
pub mod diagnostic;
pub mod dkim;
pub mod imap;
pub mod import;
pub mod kb;
pub mod links;
pub mod liveness;
pub mod model;
pub mod on_behalf;
pub mod outbound;
pub mod password;
pub mod percent;
pub mod process;
pub mod public;
pub mod report_service;
pub mod reports;
pub mod retention;
pub mod rules;
pub mod search;
pub mod search_index;
pub mod sender_auth;
pub mod service;
pub mod sla;
pub mod sla_scheduler;
pub mod smtp;
pub mod spool;
pub mod store;
pub mod syntax;
pub mod tls;
pub mod token;
pub mod web;
