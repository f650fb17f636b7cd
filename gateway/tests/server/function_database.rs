//! The function database's limits are PostgreSQL's own: the role's connection limit and its
//! default statement timeout, set by the server at start.

use serde_json::{json, Value};

use crate::harness::{example, postgres_url, psql, Backend, Server};

#[test]
fn function_database_limits_are_enforced_by_postgres() {
    let Some(admin) = postgres_url() else { return };
    let role = format!("functions_{}", std::process::id());
    psql(&admin, &format!("CREATE ROLE {role} LOGIN CREATEROLE")).unwrap();
    psql(&admin, &format!("CREATE DATABASE {role} OWNER {role}")).unwrap();
    let base = admin.rsplit_once('@').unwrap().1.rsplit_once('/').unwrap().0;
    let url = format!("postgres://{role}@{base}/{role}");
    let env = [
        ("FUNCTION_DATABASE_URL", url.clone()),
        ("FUNCTION_DB_MAX_CONNECTIONS", "2".to_string()),
        ("FUNCTION_DB_TIMEOUT_MS", "250".to_string()),
    ];
    let server = Server::start_with_env(Backend::Sqlite, &env).unwrap();
    let health: Value = server.get("/healthz", None).json().unwrap();
    assert_eq!(health["function_database"]["connection_limit"], 2, "{health}");
    assert_eq!(health["function_database"]["statement_timeout_ms"], 250, "{health}");

    // PostgreSQL refuses a long statement and a third connection of the role.
    let slow = psql(&url, "SELECT pg_sleep(1)").unwrap_err();
    assert!(slow.contains("statement timeout"), "{slow}");
    let holders: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new("psql")
                .args([url.as_str(), "-X", "-q", "-c", "SET statement_timeout = 0; SELECT pg_sleep(3)"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let third = psql(&url, "SELECT 1").unwrap_err();
    assert!(third.contains("too many connections for role"), "{third}");
    for mut holder in holders {
        holder.wait().unwrap();
    }

    // A function sees the database and the limit it works under.
    let ada = server.user("ada@example.com");
    assert_eq!(server.deploy(&ada, "db", example("examples/python/database-function"), &[]).0, 201);
    let seen: Value = server.post_json("/fn/db", Some(&ada), &json!({})).json().unwrap();
    assert_eq!(seen, json!({ "database": role, "host": "127.0.0.1", "statement_timeout_ms": 250 }));
}
