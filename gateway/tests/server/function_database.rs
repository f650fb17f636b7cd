//! The function database's limits are PostgreSQL's own: the role's connection limit and its
//! default statement timeout, set by the server at start.

use serde_json::{json, Value};

use crate::harness::{archive, code, example, postgres_url, psql, role_and_database, Backend, Server};

/// A role and database for the functions of one test server; `createrole` lets the server make
/// a role and schema per function.
fn function_database(admin: &str, createrole: bool, label: &str) -> (String, String) {
    let role = format!("functions_{}_{label}", std::process::id());
    let url = role_and_database(admin, &role, if createrole { "CREATEROLE" } else { "" });
    (role, url)
}

fn query(server: &Server, token: &str, name: &str, body: Value) -> Value {
    server.post_json(&format!("/fn/{name}"), Some(token), &body).json().unwrap()
}

#[test]
fn each_function_gets_its_own_role_and_schema_under_postgres_limits() {
    let Some(admin) = postgres_url() else { return };
    let (database, url) = function_database(&admin, true, "own");
    let env = [
        ("FUNCTION_DATABASE_URL", url.clone()),
        ("FUNCTION_DB_MAX_CONNECTIONS", "2".to_string()),
        ("FUNCTION_DB_TIMEOUT_MS", "250".to_string()),
    ];
    let server = Server::start_with_env(Backend::Sqlite, &env).unwrap();
    let health = server.health();
    assert_eq!(health["function_database"]["mode"], "per-function", "{health}");
    assert_eq!(health["function_database"]["connection_limit"], 2, "{health}");
    assert_eq!(health["function_database"]["statement_timeout_ms"], 250, "{health}");

    // The examples see their database and the limit they work under.
    let ada = server.user("ada@example.com");
    assert_eq!(server.deploy(&ada, "db", example("examples/python/database-function"), &[]).0, 201);
    let seen = query(&server, &ada, "db", json!({}));
    assert_eq!(seen, json!({ "database": database, "host": "127.0.0.1", "statement_timeout_ms": 250 }));
    assert_eq!(server.deploy(&ada, "db-node", example("examples/node/database-function"), &[]).0, 201);
    let seen = query(&server, &ada, "db-node", json!({}));
    assert_eq!(seen, json!({ "database": database, "host": "127.0.0.1", "statement_timeout_ms": 250 }));

    // Two tenants, from inside the sandbox: each makes a table of the same name in its own schema.
    let eve = server.user("eve@example.com");
    assert_eq!(server.deploy(&ada, "ada-db", archive(&[("main.py", POSTGRES_WIRE_PY)]), &[]).0, 201);
    // Eve's function asks for more connections than the server's default, within its maximum.
    let (status, refused) =
        server.deploy(&eve, "eve-db", archive(&[("main.py", POSTGRES_WIRE_PY)]), &[("db_connections", "999")]);
    assert_eq!((status, code(&refused)), (400, "invalid_field"), "{refused}");
    let eve_db = archive(&[("main.py", POSTGRES_WIRE_PY)]);
    assert_eq!(server.deploy(&eve, "eve-db", eve_db, &[("db_connections", "3")]).0, 201);
    let mut roles = Vec::new();
    for (token, name, note) in [(&ada, "ada-db", "ada-note"), (&eve, "eve-db", "eve-note")] {
        let made = query(
            &server,
            token,
            name,
            json!({ "sql": format!("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('{note}'); SELECT body FROM notes") }),
        );
        assert_eq!(made["rows"], json!([note]), "{name}: {made}");
        let who = query(&server, token, name, json!({ "sql": "SELECT current_user" }));
        let role = who["rows"][0].as_str().unwrap().to_string();
        assert!(role.starts_with("cpfn_"), "{who}");
        let path = query(&server, token, name, json!({ "sql": "SHOW search_path" }));
        assert_eq!(path["rows"], json!([role]), "its schema is its search path: {path}");
        roles.push(role);
    }
    // Neither can read, write or drop the other's table, nor create outside its schema.
    let eve_role = &roles[1];
    for sql in [
        format!("SELECT body FROM {eve_role}.notes"),
        format!("INSERT INTO {eve_role}.notes VALUES ('ada was here')"),
        format!("DROP TABLE {eve_role}.notes"),
        format!("CREATE TABLE {eve_role}.mine (x int)"),
        "CREATE TABLE public.shared (x int)".to_string(),
    ] {
        let refused = query(&server, &ada, "ada-db", json!({ "sql": sql }));
        assert!(refused["error"].as_str().unwrap_or("").contains("permission denied"), "{sql}: {refused}");
    }
    let intact = query(&server, &eve, "eve-db", json!({ "sql": "SELECT body FROM notes" }));
    assert_eq!(intact["rows"], json!(["eve-note"]), "{intact}");

    // The relay lets a function in only as its own role, into its own database: not as the
    // cluster's superuser, the server's manager role or another tenant's role (the test cluster
    // trusts every local connection, as scripts/lib/postgres.sh sets it up), not into another
    // database, and not behind an SSL request.
    let manager = url.split("://").nth(1).and_then(|rest| rest.split(['@', ':']).next()).unwrap().to_string();
    for (login, sqlstate, expected) in [
        (json!({ "user": "postgres" }), "28000", "role \"postgres\" is not this function's".to_string()),
        (json!({ "user": manager }), "28000", format!("role \"{manager}\" is not this function's")),
        (json!({ "user": eve_role }), "28000", format!("role \"{eve_role}\" is not this function's")),
        (json!({ "user": "postgres", "ssl_first": true }), "28000", "role \"postgres\"".to_string()),
        (json!({ "database": "postgres" }), "3D000", "database \"postgres\" is not this function's".to_string()),
        (json!({ "database": "template1" }), "3D000", "database \"template1\" is not this function's".to_string()),
    ] {
        let mut attempt = login.clone();
        attempt["sql"] = json!("SELECT current_user");
        let refused = query(&server, &ada, "ada-db", attempt);
        let error = refused["error"].as_str().unwrap_or("");
        assert!(error.contains(&format!("C{sqlstate}")) && error.contains(&expected), "{login}: {refused}");
    }

    // PostgreSQL's own limits, on the function's role: the statement timeout and the connections.
    let slow = query(&server, &ada, "ada-db", json!({ "sql": "SELECT pg_sleep(1)" }));
    assert!(slow["error"].as_str().unwrap_or("").contains("statement timeout"), "{slow}");
    let crowded = query(&server, &ada, "ada-db", json!({ "sql": "SELECT 1", "connections": 3 }));
    assert!(crowded["error"].as_str().unwrap_or("").contains("too many connections for role"), "{crowded}");
    // Eve's connections are her own (Ada's crowd does not count against her), under her own limit.
    let fine = query(&server, &eve, "eve-db", json!({ "sql": "SELECT 1", "connections": 3 }));
    assert_eq!(fine["rows"], json!(["1"]), "{fine}");

    // The role's password is stored sealed; deleting the function drops its role and schema.
    let stored = std::fs::read(server.data_dir.path().join("containerpub.db")).unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("password '"), "no clear password in the store");
    let ada_role = &roles[0];
    let deleted = server.client.delete(server.url("/api/functions/ada-db")).bearer_auth(&ada).send().unwrap();
    assert_eq!(deleted.status(), 204);
    let left = psql(&admin, &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{ada_role}'")).unwrap();
    assert_eq!(left.trim(), "0", "the role is dropped with its function");
}

#[test]
fn a_role_that_cannot_make_roles_shares_one_role_and_says_so() {
    let Some(admin) = postgres_url() else { return };
    let (role, url) = function_database(&admin, false, "shared");
    let server = Server::start_with_env(Backend::Sqlite, &[("FUNCTION_DATABASE_URL", url)]).unwrap();
    let health = server.health();
    assert_eq!(health["function_database"]["mode"], "shared", "{health}");
    let problems = health["function_database"]["problems"].to_string();
    assert!(problems.contains("every function shares one role"), "{health}");
    let ada = server.user("ada@example.com");
    assert_eq!(server.deploy(&ada, "db-wire", archive(&[("main.py", POSTGRES_WIRE_PY)]), &[]).0, 201);
    let who = query(&server, &ada, "db-wire", json!({ "sql": "SELECT current_user" }));
    assert_eq!(who["rows"], json!([role]), "{who}");
}

/// `SET` lifts a role's defaults; the server's watchdog and the relay hold the limits anyway, and
/// the store's database (same cluster) admits no function role.
#[test]
fn limits_a_session_lifts_with_set_still_hold_and_the_store_is_out_of_reach() {
    let Some(admin) = postgres_url() else { return };
    let (database, url) = function_database(&admin, true, "watched");
    let env = [
        ("FUNCTION_DATABASE_URL", url.clone()),
        ("FUNCTION_DB_TIMEOUT_MS", "3000".to_string()),
        ("FUNCTION_DB_MAX_BACKEND_MB", "64".to_string()),
    ];
    let server = Server::start_with_env(Backend::Postgres, &env).unwrap();
    let health = server.health();
    assert_eq!(health["function_database"]["max_backend_mb"], 64, "{health}");
    let store_database = server.database_url.rsplit('/').next().unwrap().to_string();
    let open = health["function_database"]["other_databases_open"].as_array().unwrap().clone();
    assert!(open.contains(&json!("postgres")), "the relay guards what PUBLIC may still reach: {health}");
    assert!(!open.contains(&json!(store_database)), "the store is closed to PUBLIC: {health}");

    let ada = server.user("ada@example.com");
    let wire = archive(&[("main.py", POSTGRES_WIRE_PY)]);
    assert_eq!(server.deploy(&ada, "db", wire, &[("timeout_ms", "15000")]).0, 201);
    let timed = |sql: &str| {
        let started = std::time::Instant::now();
        let answer = query(&server, &ada, "db", json!({ "sql": sql }));
        (answer["error"].as_str().map(str::to_string).unwrap_or_else(|| answer.to_string()), started.elapsed())
    };

    // The session lifts its statement timeout: the watchdog cancels past the role's 3 s.
    let (error, took) = timed("SET statement_timeout = 0; SELECT pg_sleep(20)");
    assert!(error.contains("C57014") && error.contains("canceling statement due to user request"), "{error}");
    assert!(took > std::time::Duration::from_secs(3) && took < std::time::Duration::from_secs(6), "{took:?}");
    // A statement that traps every cancel is terminated.
    let (error, took) = timed(
        "SET statement_timeout = 0; DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(10); \
         EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$",
    );
    assert!(error.contains("C57P01"), "{error}");
    assert!(took < std::time::Duration::from_secs(8), "{took:?}");
    // work_mem lifted to 4 GB: the backend is ended once its own memory passes 64 MB, long
    // before the statement timeout.
    let (error, took) = timed(
        "SET statement_timeout = 0; SET work_mem = '4GB'; \
         SELECT count(*) FROM (SELECT g FROM generate_series(1, 20000000) g ORDER BY g DESC) s",
    );
    assert!(error.contains("C57P01"), "{error}");
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");

    // The worker is killed at its 1 s deadline: its statement ends with it (the relay cancels
    // it), not at the statement timeout, and not 30 s later.
    let archive_short = archive(&[("main.py", POSTGRES_WIRE_PY)]);
    assert_eq!(server.deploy(&ada, "db-short", archive_short, &[("timeout_ms", "1000")]).0, 201);
    let who = query(&server, &ada, "db-short", json!({ "sql": "SELECT current_user" }));
    let role = who["rows"][0].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let late = server.post_json(
        "/fn/db-short",
        Some(&ada),
        &json!({ "sql": "SET statement_timeout = 0; SELECT pg_sleep(30)" }),
    );
    assert_eq!(late.status(), 504);
    let busy = format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' AND state = 'active'");
    while psql(&admin, &busy).unwrap() != "0" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the statement outlived its worker: {}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!("a departed worker's statement ended {:?} after its call began (deadline 1 s)", started.elapsed());

    // Straight to PostgreSQL, without the relay (as from a cluster on another host), with the
    // test cluster's trust rule: the function role reaches its own database, not the store's.
    let base = admin.rsplit_once('@').unwrap().1.rsplit_once('/').unwrap().0;
    assert_eq!(psql(&format!("postgres://{role}@{base}/{database}"), "SELECT 1").unwrap(), "1");
    // Every function role is in one group, for a pg_hba.conf rule that keeps them all out of
    // every other database.
    let group = health["function_database"]["function_roles_group"].as_str().unwrap().to_string();
    assert_eq!(group, format!("{database}_functions"), "{health}");
    let member = psql(&admin, &format!("SELECT pg_has_role('{role}', '{group}', 'MEMBER')")).unwrap();
    assert_eq!(member, "t");
    let refused = psql(&format!("postgres://{role}@{base}/{store_database}"), "SELECT 1").unwrap_err();
    assert!(refused.contains("permission denied for database"), "{refused}");
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

def connect(url, body):
    sock = socket.create_connection((url.hostname, url.port or 5432), timeout=5)
    sock.settimeout(60)  # statements may be slow on purpose
    # A hostile tenant may ask for another role or database, and may start with an SSLRequest.
    if body.get("ssl_first"):
        sock.sendall(struct.pack("!ii", 8, 80877103))
        if sock.recv(1) != b"N":
            return None, "the relay did not decline SSL"
    user = body.get("user", url.username)
    database = body.get("database", url.path.lstrip("/"))
    params = b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    for kind, payload in messages(sock):
        if kind == b"Z":
            return sock, None
        if kind == b"E":
            return None, payload.decode(errors="replace")
    return None, "the server closed the connection"

def handler(body):
    url = urlsplit(os.environ["DATABASE_URL"])
    # `connections`: hold that many sessions open at once (the role's connection limit).
    held = []
    for _ in range(body.get("connections", 1)):
        sock, error = connect(url, body)
        if error:
            return {"error": error}
        held.append(sock)
    sock = held[0]
    rows, error = [], None
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
