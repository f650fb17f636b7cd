//! The README's example, run by `scripts/test`: start a pool, prepare a Python function, call it.
//!
//! `cargo run -p prewarm --example hello` (after `cargo build -p prewarm`, which builds the exec
//! wrapper next to this example's directory).

use std::path::PathBuf;

use prewarm::{
    EntryMode, FunctionLimits, FunctionSpec, InvocationEvent, InvocationRequest, Outcome, Prewarm, PrewarmConfig,
    Runtime,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let function_dir = work.path().join("hello");
    std::fs::create_dir_all(&function_dir)?;
    std::fs::write(
        function_dir.join("main.py"),
        "def handler(body):\n    return {'message': f\"Hello, {body.get('name', 'world')}!\"}\n",
    )?;

    // target/<profile>/examples/hello → target/<profile>/containerpub-worker-exec
    let wrapper: PathBuf = std::env::current_exe()?
        .parent()
        .and_then(|dir| dir.parent())
        .ok_or("no target dir")?
        .join("containerpub-worker-exec");
    let mut config = PrewarmConfig::new(work.path().join("state"), wrapper);
    config.apply_env(|name| std::env::var(name).ok())?; // FUNCTION_TIMEOUT_MS, FUNCTION_MAX_MEMORY_MB, FUNCTION_MAX_CONCURRENT
    let (prewarm, _stray_logs) = Prewarm::start(config)?;
    prewarm
        .prepare(FunctionSpec {
            key: "hello@1".into(),
            name: "hello".into(),
            runtime: Runtime::Python,
            version: "1".into(),
            entry: prewarm::FunctionEntry::default_for(Runtime::Python, EntryMode::Handler),
            directory: function_dir,
            env: Default::default(),
            limits: FunctionLimits::default(),
            sandbox_uid: None,
            network: None,
            database_url: None,
            account: String::new(),
            account_weight: 1.0,
        })
        .await?; // its first worker is warm when this returns
    let event = InvocationEvent { method: "POST".into(), path: "/".into(), ..Default::default() }
        .with_raw_body(br#"{"name":"Ada"}"#);
    let invocation = prewarm.invoke("hello@1", InvocationRequest { id: "inv-1".into(), event }).await?;
    println!(
        "{:?} in {} µs (cold: {}): {}",
        invocation.outcome,
        invocation.exec_us,
        invocation.cold,
        invocation.result.clone().unwrap_or_default()
    );
    prewarm.shutdown(std::time::Duration::from_secs(2)).await;
    if invocation.outcome != Outcome::Ok {
        return Err(format!("the example function failed: {:?}", invocation.error).into());
    }
    Ok(())
}
