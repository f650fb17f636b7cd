//! The function database's limits are PostgreSQL's own: the role's connection limit and its
//! default statement timeout, set by the server at start.

use serde_json::{json, Value};

use crate::harness::{archive, example, postgres_url, psql, Backend, Server};

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
    let health: Value = server.health();
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
    assert_eq!(server.deploy(&ada, "db-node", example("examples/node/database-function"), &[]).0, 201);
    let seen: Value = server.post_json("/fn/db-node", Some(&ada), &json!({})).json().unwrap();
    assert_eq!(seen, json!({ "database": role, "host": "127.0.0.1", "statement_timeout_ms": 250 }));

    // From inside the sandbox (egress policy), the function really reaches the database on the
    // host's loopback, and PostgreSQL applies the role's statement timeout to its session.
    assert_eq!(server.deploy(&ada, "db-wire", archive(&[("main.py", POSTGRES_WIRE_PY)]), &[]).0, 201);
    let queried: Value =
        server.post_json("/fn/db-wire", Some(&ada), &json!({ "sql": "SELECT current_user" })).json().unwrap();
    assert_eq!(queried["rows"], json!([role]), "{queried}");
    let slow: Value =
        server.post_json("/fn/db-wire", Some(&ada), &json!({ "sql": "SELECT pg_sleep(1)" })).json().unwrap();
    assert!(slow["error"].as_str().unwrap_or("").contains("statement timeout"), "{slow}");
}

/// A function speaking PostgreSQL's wire protocol itself (no client library needed): trust
/// authentication, one simple query, the first column of each row or the server's error.
const POSTGRES_WIRE_PY: &str = r#"
import os, socket, struct
from urllib.parse import urlsplit

def messages(sock):
    buffer = b""
    while True:
        while len(buffer) < 5:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
        kind, length = buffer[:1], struct.unpack("!i", buffer[1:5])[0]
        while len(buffer) < 1 + length:
            buffer += sock.recv(65536)
        yield kind, buffer[5:1 + length]
        buffer = buffer[1 + length:]

def handler(body):
    url = urlsplit(os.environ["DATABASE_URL"])
    sock = socket.create_connection((url.hostname, url.port or 5432), timeout=5)
    params = b"user\0" + url.username.encode() + b"\0database\0" + url.path.lstrip("/").encode() + b"\0\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    rows, error = [], None
    for kind, payload in messages(sock):
        if kind == b"Z":
            break
        if kind == b"E":
            return {"error": payload.decode(errors="replace")}
    query = body["sql"].encode() + b"\0"
    sock.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)
    for kind, payload in messages(sock):
        if kind == b"D":
            (length,) = struct.unpack("!i", payload[2:6])
            rows.append(payload[6:6 + length].decode())
        elif kind == b"E":
            error = payload.decode(errors="replace")
        elif kind == b"Z":
            break
    return {"rows": rows, "error": error}
"#;
