//! Retention: log lines and invocation records do not pile up forever.
//!
//! Every `[logs] prune_interval_seconds`, each node deletes log lines older than `[logs]
//! keep_days`, then, for every function whose lines pass `[logs] max_mb_per_function`, its oldest
//! lines until the rest fit (a line counts its length plus `log_budget::ROW_OVERHEAD_BYTES`), and
//! invocation records and refusal counts older than `[records] keep_days`. Deletes are idempotent,
//! so nodes sharing a store may all run it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::app::App;
use crate::log_budget::ROW_OVERHEAD_BYTES;

const DAY_MS: f64 = 86_400_000.0;

/// Runs until the server stops.
pub async fn run(app: Weak<App>) {
    loop {
        let Some(interval) = app.upgrade().map(|app| Duration::from_secs(app.config.logs.prune_interval_seconds))
        else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(app) = app.upgrade() else { return };
        if let Err(error) = prune(&app).await {
            tracing::warn!(%error, "retention could not prune the store; trying again next time");
        }
    }
}

/// One pass.
pub async fn prune(app: &Arc<App>) -> anyhow::Result<()> {
    let now_ms = crate::app::now_ms();
    let logs = &app.config.logs;
    let old_lines = app.store.prune_logs_before((now_ms - (logs.keep_days * DAY_MS) as i64) * 1000).await?;
    let max_bytes = (logs.max_mb_per_function << 20) as i64;
    let overhead = ROW_OVERHEAD_BYTES as i64;
    let mut over_size = 0;
    for function_id in app.store.functions_with_logs_over(max_bytes, overhead).await? {
        over_size += app.store.prune_logs_to_size(&function_id, max_bytes, overhead).await?;
    }
    let records = app.store.prune_invocations_before(now_ms - (app.config.records.keep_days * DAY_MS) as i64).await?;
    if old_lines + over_size + records > 0 {
        tracing::info!(old_lines, over_size, records, "retention pruned the store");
    }
    Ok(())
}
