//! Keeping what a node routes in step with the store, when several nodes share one.
//!
//! A deploy, rollback, secret change or delete on any node bumps the function's `revision` (or
//! removes its row) and sends a PostgreSQL notification with the function's id; an account made,
//! disabled or enabled sends the account's id (each node keeps those marks in memory). Every
//! node listens: a notification makes it *converge* that function or account at once. A full
//! reconcile runs every [`RECONCILE`] as well and after the listening connection comes back, so a
//! lost notification or a node that was away still converges.
//!
//! Converging one function, under its name lock: gone from the store → stop routing it; an active
//! version whose revision is newer than the routed one → prepare it (fetch and extract its
//! archive if this node lacks it, start its workers) and only then route to it. Until then the
//! previous version keeps answering; a function new to this node whose version cannot start is
//! routed as *starting* (503 with `Retry-After`), never a 404.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;

use crate::app::App;
use crate::deploy;
use crate::store::{FunctionRecord, CHANGES_CHANNEL};

/// How often every function is compared with the store, notifications or not.
pub const RECONCILE: Duration = Duration::from_secs(5);
/// Every this many reconciles, the cached files of deleted functions go (`artifacts::prune_cache`).
const PRUNE_EVERY: u32 = 12;
/// How long to wait before listening again after the database refused.
const RELISTEN: Duration = Duration::from_secs(1);

/// Wakes the other nodes to a change of the function or account `id` (they converge within a
/// reconcile period if the notification is lost, so a failure is only logged).
pub async fn announce(app: &App, id: &str) {
    if let Err(error) = app.store.announce(id).await {
        tracing::warn!(id, %error, "other nodes were not notified of the change: they pick it up at their next reconcile");
    }
}

/// What the listening task tells the watcher.
enum Heard {
    /// The function with this id changed.
    Changed(String),
    /// Listening (again): what changed while not listening was not heard.
    Listening,
}

/// Listens for changes and reconciles, until the server ends.
pub async fn watch(app: Weak<App>, database_url: String) {
    // The listener runs in a task of its own: its receive is not cancel-safe, so it is never
    // raced against the reconcile timer.
    let (heard, mut hearing) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(listen(database_url, heard));
    let mut next_reconcile = Instant::now();
    let mut reconciles = 0u32;
    loop {
        let received = tokio::time::timeout_at(next_reconcile.into(), hearing.recv()).await;
        let Some(app) = app.upgrade() else { return };
        match received {
            Ok(Some(Heard::Changed(id))) if id.starts_with(ACCOUNT_PREFIX) => {
                tokio::spawn(async move { converge_account(&app, &id).await });
            }
            Ok(Some(Heard::Changed(function_id))) => {
                tokio::spawn(async move { converge(&app, function_id).await });
            }
            Ok(Some(Heard::Listening)) | Err(_) => {
                if let Err(error) = reconcile(&app).await {
                    tracing::debug!(%error, "reconcile skipped: the store did not answer");
                }
                reconciles += 1;
                if reconciles % PRUNE_EVERY == 0 {
                    match deploy::artifacts::prune_cache(app.store.as_ref(), &app.artifacts_dir(), &app.functions_dir())
                        .await
                    {
                        Ok(0) => {}
                        Ok(removed) => {
                            tracing::info!(removed, "removed the cached files of functions deleted on other nodes")
                        }
                        Err(error) => tracing::debug!(%error, "cache not pruned: the store did not answer"),
                    }
                }
                next_reconcile = Instant::now() + RECONCILE;
            }
            Ok(None) => return,
        }
    }
}

/// Forwards the store's change notifications until the watcher is gone, listening again whenever
/// the connection is lost.
async fn listen(database_url: String, heard: tokio::sync::mpsc::Sender<Heard>) {
    loop {
        let mut listener = match subscribe(&database_url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "cannot listen for changes yet");
                if heard.is_closed() {
                    return;
                }
                tokio::time::sleep(RELISTEN).await;
                continue;
            }
        };
        if heard.send(Heard::Listening).await.is_err() {
            return;
        }
        loop {
            let message = match listener.try_recv().await {
                Ok(Some(notification)) => Heard::Changed(notification.payload().to_string()),
                // The connection was lost and made again: notifications meanwhile are lost.
                Ok(None) => Heard::Listening,
                Err(error) => {
                    tracing::debug!(%error, "the change listener lost its connection");
                    break;
                }
            };
            if heard.send(message).await.is_err() {
                return;
            }
        }
    }
}

async fn subscribe(database_url: &str) -> Result<PgListener, sqlx::Error> {
    // Its own one-connection pool with a short acquire timeout: `PgListener::connect`'s pool
    // waits up to 30 s with a backoff growing to 6 s while the database is down, so a node would
    // hear again up to 6 s after the database is back.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(RELISTEN)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy(database_url)?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// Account ids (`usr_…`): their notifications are account changes.
const ACCOUNT_PREFIX: &str = "usr_";

/// Takes an account's administrator and disabled marks from the store (an account made, disabled
/// or enabled through another node), so every node refuses a disabled account at once.
async fn converge_account(app: &App, user_id: &str) {
    match app.store.user_by_id(user_id).await {
        Ok(Some(user)) => app.accounts.record(&user),
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, user_id, "cannot read a changed account: the next reconcile tries again"),
    }
}

/// Converges every account, and every function that differs from the store: the active ones there,
/// and the ones this node routes that are no longer active there.
pub async fn reconcile(app: &Arc<App>) -> anyhow::Result<()> {
    for user in app.store.users().await? {
        app.accounts.record(&user);
    }
    // Only the functions' rows: a version is read for the few that differ (`converge`).
    let stored = app.store.functions_with_active_version().await?;
    let mut stale: HashSet<String> = app.active.iter().map(|entry| entry.id.clone()).collect();
    for function in stored {
        stale.remove(&function.id);
        if differs(app, &function) {
            converge(app, function.id.clone()).await;
        }
    }
    for id in stale {
        converge(app, id).await;
    }
    Ok(())
}

/// Whether this node routes something else than the store's active version of `function`.
fn differs(app: &App, function: &FunctionRecord) -> bool {
    match app.active.get(&function.name) {
        None => function.active_version.is_some(),
        Some(active) => {
            active.id != function.id
                || Some(active.version) != function.active_version
                || active.revision < function.revision
                || active.public != function.public
        }
    }
}

/// Brings one function in step with the store (see the module comment).
async fn converge(app: &Arc<App>, function_id: String) {
    let found = match app.store.function_by_id(&function_id).await {
        Ok(found) => found,
        Err(error) => {
            tracing::debug!(%error, function_id, "cannot read a changed function: the next reconcile tries again");
            return;
        }
    };
    let Some(function) = found else {
        // Deleted: stop routing it, if this node still does.
        let Some(name) = app.active_ids.get(&function_id).map(|name| name.clone()) else { return };
        let lock = app.name_lock(&name);
        let _one_change_at_a_time = lock.lock().await;
        if app.active.get(&name).is_some_and(|active| active.id == function_id) {
            deploy::deactivate(app, &name);
            app.metrics.forget(&name);
            app.secrets.forget(&function_id);
            tracing::info!(function = %name, "deleted on another node: no longer served");
        }
        return;
    };
    let lock = app.name_lock(&function.name);
    let _one_change_at_a_time = lock.lock().await;
    // Read again under the lock: a change made on this node meanwhile is already routed.
    let function = match app.store.function_by_id(&function_id).await {
        Ok(Some(function)) => function,
        _ => return,
    };
    if !differs(app, &function) {
        return;
    }
    let Some(number) = function.active_version else {
        deploy::deactivate(app, &function.name);
        return;
    };
    let version = match app.store.version(&function.id, number).await {
        Ok(Some(version)) => version,
        Ok(None) => return,
        Err(error) => {
            tracing::debug!(%error, function = %function.name, "cannot read the active version: the next reconcile tries again");
            return;
        }
    };
    match deploy::prepare(app, &function, &version).await {
        Ok((_, key)) => {
            app.starting.remove(&key);
            deploy::route(app, &function, number, function.public, &key, function.revision);
            tracing::info!(function = %function.name, version = number, revision = function.revision, "changed on another node: now served here");
        }
        Err(error) if app.active.contains_key(&function.name) => {
            tracing::warn!(function = %function.name, version = number, %error, "a version activated on another node cannot start here: the previous one keeps answering, and the next reconcile tries again");
        }
        Err(error) => {
            tracing::warn!(function = %function.name, version = number, %error, "a function deployed on another node cannot start here: its calls answer 503 starting until it does");
            deploy::route_as_starting(app, function, version);
        }
    }
}
