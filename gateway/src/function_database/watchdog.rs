//! Limits on function database sessions that a role cannot lift with `SET`.
//!
//! PostgreSQL lets any session change its own `statement_timeout` and `work_mem`: the role's
//! defaults are only defaults. So the server watches every function role's backends itself, on
//! its own manager connection (a member of each function role, which is what lets it see their
//! statements and signal them), every [`TICK`]:
//!
//! - a statement running past the function database's statement timeout is cancelled
//!   (`pg_cancel_backend`, [`CANCEL_AFTER`] past the limit, so PostgreSQL's own timeout answers
//!   first when it was left alone), and its backend terminated (`pg_terminate_backend`)
//!   when it still runs [`TERMINATE_AFTER`] past the limit: PL/pgSQL can trap a cancel, not a
//!   termination;
//! - when PostgreSQL runs on this host (the watchdog's own backend is a `postgres` process it can
//!   see in `/proc`), a backend whose private memory (`RssAnon`, where `work_mem` sorts and hashes
//!   live; shared buffers are not counted) passes `max_backend_mb` is terminated.
//!
//! Backends whose caller went away are cancelled at once by the relay
//! (`prewarm/src/sandbox/database_relay.rs`); this is the net under both.

use std::time::Duration;

use sqlx::{Connection, PgConnection};

/// How often function backends are looked at.
pub const TICK: Duration = Duration::from_millis(250);
/// How long past the statement timeout a statement is cancelled.
pub const CANCEL_AFTER: Duration = Duration::from_millis(250);
/// How long past the statement timeout a backend still busy in it is terminated.
pub const TERMINATE_AFTER: Duration = Duration::from_millis(2_000);

/// Which backends are functions', and the limits they are held to.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Per-function mode: the `cpfn_…` roles; shared mode: the configured role itself (its other
    /// sessions are the functions').
    pub per_function_roles: bool,
    pub statement_timeout: Duration,
    pub max_backend_bytes: u64,
}

/// What the watchdog did to one backend, for the log.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Cancel,
    Terminate,
}

/// Runs until the server stops, reconnecting when the connection is lost.
pub async fn run(manager_url: String, watched: Watched) {
    loop {
        match PgConnection::connect(&manager_url).await {
            Ok(mut connection) => {
                let local = postgres_is_on_this_host(&mut connection).await;
                if !local {
                    tracing::info!(
                        "the function database is not on this host: backend memory is not watched (statement times are)"
                    );
                }
                loop {
                    if let Err(error) = look(&mut connection, &watched, local).await {
                        tracing::warn!(%error, "the function database watchdog lost its connection; reconnecting");
                        break;
                    }
                    tokio::time::sleep(TICK).await;
                }
            }
            Err(error) => tracing::warn!(%error, "the function database watchdog cannot connect; retrying in 5 s"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// The watchdog's own backend is a process of this host.
async fn postgres_is_on_this_host(connection: &mut PgConnection) -> bool {
    let Ok((pid,)) = sqlx::query_as::<_, (i32,)>("SELECT pg_backend_pid()").fetch_one(connection).await else {
        return false;
    };
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| cmdline.starts_with(b"postgres"))
}

/// One look at the function backends.
async fn look(connection: &mut PgConnection, watched: &Watched, local: bool) -> sqlx::Result<()> {
    let roles = if watched.per_function_roles {
        r"usename LIKE 'cpfn\_%'"
    } else {
        "usename = current_user AND pid <> pg_backend_pid()"
    };
    let backends: Vec<(i32, String, Option<i64>)> = sqlx::query_as(&format!(
        "SELECT pid, usename::text, \
                CASE WHEN state IN ('active', 'fastpath function call') \
                     THEN (extract(epoch FROM clock_timestamp() - query_start) * 1000)::bigint END \
         FROM pg_stat_activity WHERE {roles}"
    ))
    .fetch_all(&mut *connection)
    .await?;
    for (pid, role, running_ms) in backends {
        let running = running_ms.map(|ms| Duration::from_millis(ms.max(0) as u64));
        let memory = if local { private_memory_bytes(pid) } else { None };
        let Some(action) = judge(watched, running, memory) else { continue };
        let signal = match action {
            Action::Cancel => "SELECT pg_cancel_backend($1)",
            Action::Terminate => "SELECT pg_terminate_backend($1)",
        };
        let (done,): (bool,) = sqlx::query_as(signal).bind(pid).fetch_one(&mut *connection).await?;
        tracing::info!(
            pid,
            role,
            ?action,
            done,
            running_ms,
            memory_bytes = memory,
            "function database backend past its limits"
        );
    }
    Ok(())
}

/// What a backend's statement time and private memory call for.
fn judge(watched: &Watched, running: Option<Duration>, memory: Option<u64>) -> Option<Action> {
    if memory.is_some_and(|bytes| bytes > watched.max_backend_bytes) {
        return Some(Action::Terminate);
    }
    let running = running?;
    if running > watched.statement_timeout + TERMINATE_AFTER {
        Some(Action::Terminate)
    } else if running > watched.statement_timeout + CANCEL_AFTER {
        Some(Action::Cancel)
    } else {
        None
    }
}

/// A local backend's `RssAnon`, in bytes.
fn private_memory_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("RssAnon:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_past_the_limit_are_cancelled_then_terminated_and_big_backends_ended() {
        let watched = Watched {
            per_function_roles: true,
            statement_timeout: Duration::from_secs(1),
            max_backend_bytes: 100 << 20,
        };
        let ms = |ms| Some(Duration::from_millis(ms));
        assert_eq!(judge(&watched, None, Some(10 << 20)), None, "an idle backend is left alone");
        assert_eq!(judge(&watched, ms(1_200), None), None, "PostgreSQL's own timeout gets its turn");
        assert_eq!(judge(&watched, ms(1_300), None), Some(Action::Cancel));
        assert_eq!(judge(&watched, ms(3_100), None), Some(Action::Terminate), "a trapped cancel");
        assert_eq!(judge(&watched, None, Some(101 << 20)), Some(Action::Terminate), "memory, busy or not");
    }

    #[test]
    fn private_memory_is_read_from_proc() {
        let own = private_memory_bytes(std::process::id() as i32).expect("this process has a status");
        assert!(own > 0);
        assert_eq!(private_memory_bytes(i32::MAX), None);
    }
}
