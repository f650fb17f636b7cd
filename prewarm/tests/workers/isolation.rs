//! What a worker can see: a clean environment and its own directory.

use std::collections::BTreeSet;

use prewarm::{FunctionDatabase, Outcome};

use crate::fixture::Fixture;

const DUMP_ENV_PY: &str = r#"
import os
def handler(body):
    return {"env": dict(os.environ), "cwd": os.getcwd()}
"#;

#[tokio::test]
async fn a_function_that_dumps_its_environment_sees_only_documented_variables() {
    let fixture = Fixture::with(|config| {
        config.function_database =
            Some(FunctionDatabase { url: "postgres://fn@127.0.0.1/functions".into(), statement_timeout_ms: 1500 });
    });
    let mut spec = fixture.python("dump", DUMP_ENV_PY);
    spec.env.insert("GREETING".into(), "hello".into());
    let directory = spec.directory.clone();
    fixture.prewarm.prepare(spec).await.unwrap();
    let invocation = fixture.call("dump@1", "{}").await;
    assert_eq!(invocation.outcome, Outcome::Ok);
    let result = invocation.result.unwrap();
    let env = result["env"].as_object().unwrap();
    let names: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "CONTAINERPUB_REQUEST_FD",
        "CONTAINERPUB_RESPONSE_FD",
        "DART_CLOUD_RESTRICTED",
        "DATABASE_URL",
        "DB_TIMEOUT_MS",
        "FUNCTION_MAX_MEMORY_MB",
        "FUNCTION_NAME",
        "FUNCTION_TIMEOUT_MS",
        "FUNCTION_VERSION",
        "GREETING",
        "HOME",
        "LANG",
        "PATH",
        "PYTHONUNBUFFERED",
    ]
    .into();
    // Python itself may add LC_CTYPE when it coerces the C locale; nothing else may appear.
    let unexpected: Vec<&&str> = names.difference(&expected).filter(|name| **name != "LC_CTYPE").collect();
    assert!(unexpected.is_empty(), "unexpected variables in the worker: {unexpected:?}");
    assert_eq!(env["DATABASE_URL"], "postgres://fn@127.0.0.1/functions");
    assert_eq!(env["DART_CLOUD_RESTRICTED"], "true");
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["FUNCTION_TIMEOUT_MS"], "5000");
    // Every documented variable has exactly the platform's value, so nothing of the server's
    // environment can hide in one; scripts/test plants a secret in the server that must not show up.
    // In the sandbox the function's directory is at /fn, whatever its path on the host.
    let sandboxed = fixture.prewarm.sandbox_status().mode == "on";
    let home = if sandboxed { "/fn".to_string() } else { directory.display().to_string() };
    for (name, value) in [
        ("CONTAINERPUB_REQUEST_FD", "3"),
        ("CONTAINERPUB_RESPONSE_FD", "4"),
        ("DB_TIMEOUT_MS", "1500"),
        ("FUNCTION_MAX_MEMORY_MB", "128"),
        ("FUNCTION_NAME", "dump"),
        ("FUNCTION_VERSION", "1"),
        ("HOME", home.as_str()),
        ("LANG", "C.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("PYTHONUNBUFFERED", "1"),
    ] {
        assert_eq!(env[name], value, "{name}");
    }
    if let Ok(secret) = std::env::var("CONTAINERPUB_TEST_SERVER_SECRET") {
        assert!(!env.values().any(|seen| seen.as_str().is_some_and(|text| text.contains(secret.as_str()))));
    }
    assert_eq!(result["cwd"], home);
}

#[tokio::test]
async fn a_function_cannot_configure_platform_variables() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("sneaky", DUMP_ENV_PY);
    spec.env.insert("LD_PRELOAD".into(), "/tmp/evil.so".into());
    let error = fixture.prewarm.prepare(spec).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable LD_PRELOAD is reserved by the platform and cannot be set by a function"
    );
}
