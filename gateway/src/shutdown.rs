//! SIGTERM drains before pingora stops: pingora's own graceful path sleeps a fixed grace period
//! and then drops whatever is still running. Instead this watch, on SIGTERM, makes new requests
//! answer 503 (and close their connections), waits until in-flight requests have finished (or
//! the drain timeout passes) and their records are written, and only then lets pingora close the
//! listeners, with no further grace period. SIGINT stops at once, like pingora's default.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::app::App;

/// How long the drain waits for the drained calls' records to be written.
const RECORDS_BEFORE_STOP: Duration = Duration::from_secs(5);

pub struct DrainThenStop {
    pub app: Arc<App>,
}

#[async_trait]
impl ShutdownSignalWatch for DrainThenStop {
    async fn recv(&self) -> ShutdownSignal {
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: stopping now");
                return ShutdownSignal::FastShutdown;
            }
            _ = terminate.recv() => {}
        }
        let timeout = Duration::from_secs(self.app.config.http.drain_timeout_seconds);
        tracing::info!(in_flight = self.app.in_flight.load(Ordering::SeqCst), ?timeout, "SIGTERM: draining");
        self.app.draining.store(true, Ordering::SeqCst);
        self.app.drain_signal.send_replace(true);
        let started = Instant::now();
        loop {
            let in_flight = self.app.in_flight.load(Ordering::SeqCst);
            if in_flight == 0 {
                break;
            }
            if started.elapsed() >= timeout {
                tracing::warn!(in_flight, "drain timeout: stopping with requests still running");
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = interrupt.recv() => return ShutdownSignal::FastShutdown,
            }
        }
        tracing::info!(took = ?started.elapsed(), "drained");
        // The drained calls' records are written now, while pingora's runtime still runs: the
        // store's PostgreSQL connections opened on its threads die with it, and a write racing
        // its shutdown fails ("a Tokio context ... is being shut down") and loses the batch.
        self.app.recorder.caught_up(RECORDS_BEFORE_STOP).await;
        ShutdownSignal::GracefulTerminate
    }
}
