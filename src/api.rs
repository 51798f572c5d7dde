//! The JSON API (DESIGN.md, stable): health, ticket list, one ticket.

use crate::store::Store;
use tokio::sync::watch;

pub struct ApiState {
    pub store: Store,
    pub token: String,
}

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = (listener, state, shutdown);
    todo!("api")
}
