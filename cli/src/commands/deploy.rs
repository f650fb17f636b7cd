//! `deploy`: analyse locally (what the server will see: the archive's own files), upload with
//! progress on a terminal, print the URL.

use analyzer::manifests::ManifestFunction;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::Context;
use reqwest::blocking::multipart;
use reqwest::Method;
use serde_json::Value;

use crate::client::{Api, CliError};
use crate::output::{self, Output};
use crate::package;

/// `dart_cloud deploy`'s options (its help text comes from these comments).
#[derive(clap::Args, Clone)]
pub struct DeployArgs {
    /// The function's directory (default: this one). Given two words, the seed's form
    /// `deploy NAME PATH`: the function's name, then its directory.
    #[arg(value_name = "PATH", num_args = 0..=2)]
    pub targets: Vec<String>,
    /// Function name (default: the directory's name, `_` becoming `-`).
    #[arg(long)]
    pub name: Option<String>,
    /// Let anyone call it without credentials.
    #[arg(long)]
    pub public: bool,
    /// Environment variable for the function, repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Deadline: 500ms, 5s, 2m (a plain number is milliseconds).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Force the runtime instead of detecting it from the files.
    #[arg(long, value_parser = ["dart", "node", "python"])]
    pub runtime: Option<String>,
    /// Calls of this function running at once (within the server's cap).
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u64>,
    /// Environment variables from a file of KEY=VALUE lines (# comments), before --env.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Analyse and list what would be uploaded, without uploading.
    #[arg(long)]
    pub dry_run: bool,
    /// Memory cap in MB.
    #[arg(long, value_name = "MB")]
    pub memory: Option<u64>,
    /// What the function can reach: `egress` (outbound, not the server's host) or `none`
    /// (loopback only). Default: the server's.
    #[arg(long, value_parser = ["egress", "none"])]
    pub network: Option<String>,
    /// The file that runs and the function to call, FILE[:FUNCTION] (`src/app.py:handle`).
    /// Default: the runtime's usual entry (main.dart, package.json main, index.js, main.py)
    /// and `handler`.
    #[arg(long, value_name = "FILE[:FUNCTION]")]
    pub entry: Option<analyzer::EntrySpec>,
    /// The calling convention the code was written for: `body` (this platform's), `lambda`
    /// (function URL / HTTP API events), `lambda-v1` (API Gateway REST events), `fetch` (Web
    /// Request/Response), `node-http` (`(req, res)`, Express), `openfaas`, `flask-request`
    /// (Cloud Functions' Python), `http-handler` (Vercel's Python), `wsgi`, `asgi`, `knative`,
    /// `appwrite`, `fission`, `openwhisk`.
    /// Default: detected when the server loads the entry (the answer says what and why).
    #[arg(long, value_name = "SHAPE", value_parser = ["auto", "body", "lambda", "lambda-v1", "fetch", "node-http", "openfaas", "flask-request", "http-handler", "wsgi", "asgi", "knative", "appwrite", "fission", "openwhisk"])]
    pub shape: Option<String>,
}

/// `KEY=VALUE` pairs a manifest beside the code sets for the function this deploy is: the one it
/// names, or the one whose entry the deploy names.
fn manifest_env(named: &[ManifestFunction], args: &DeployArgs, output: &Output) -> Vec<String> {
    let function = match &args.entry {
        Some(entry) => named.iter().find(|function| {
            function.entry == *entry || (function.entry.file == entry.file && entry.function.is_none())
        }),
        None if named.len() == 1 => named.first(),
        None => None,
    };
    let Some(function) = function.filter(|function| !function.env.is_empty()) else { return Vec::new() };
    let names: Vec<&str> = function.env.iter().map(|(name, _)| name.as_str()).collect();
    output.note(&format!(
        "environment from {}: {} (--env NAME=VALUE sets another value)",
        function.source,
        names.join(", ")
    ));
    function.env.iter().map(|(name, value)| format!("{name}={value}")).collect()
}

/// `500ms`, `5s`, `2m`, or plain milliseconds, as milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<u64> {
    let ms = crate::duration::parse(text, crate::duration::MILLISECONDS)
        .with_context(|| format!("--timeout {:?}: use 500ms, 5s or 2m", text.trim()))?;
    anyhow::ensure!(ms > 0, "--timeout must be above 0");
    Ok(ms)
}

/// KEY=VALUE lines; blank lines and `#` comments skipped; an optional `export ` prefix allowed.
fn read_env_file(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) =
            line.split_once('=').with_context(|| format!("{}:{}: expected KEY=VALUE", path.display(), number + 1))?;
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|rest| rest.strip_suffix('\'')))
            .unwrap_or(value);
        pairs.push(format!("{}={unquoted}", key.trim()));
    }
    Ok(pairs)
}

/// Reports upload progress as the multipart body is read.
struct Progress<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        if n == 0 {
            self.bar.finish_and_clear();
        }
        Ok(n)
    }
}

/// The directory and the name asked for: `deploy [PATH] [--name NAME]` or the seed's
/// `deploy NAME PATH`.
fn target(args: &DeployArgs) -> anyhow::Result<(PathBuf, Option<String>)> {
    match args.targets.as_slice() {
        [] => Ok((PathBuf::from("."), args.name.clone())),
        [path] => Ok((PathBuf::from(path), args.name.clone())),
        [name, path] => {
            if let Some(flag) = args.name.as_ref().filter(|flag| *flag != name) {
                anyhow::bail!("two names: {name:?} (before the path) and --name {flag:?}; give one");
            }
            Ok((PathBuf::from(path), Some(name.clone())))
        }
        _ => unreachable!("clap allows at most two"),
    }
}

/// Deploys the directory; when a template.yaml, serverless.yml or stack.yml beside the code names
/// several functions and the command names none (no --entry, no name), each of them in turn, as
/// `sam deploy` or `serverless deploy` would.
pub fn deploy(api: &Api, output: &Output, args: DeployArgs) -> anyhow::Result<()> {
    let (path, name) = target(&args)?;
    // Read once: the several-functions case, the name and the environment all come from it.
    let named = analyzer::manifests::discover(&path);
    if name.is_none() && args.entry.is_none() && path.is_dir() {
        let from_templates = named.iter().any(|function| function.shape.is_some());
        if named.len() > 1 && from_templates {
            output.note(&format!("{} functions named beside the code: deploying each", named.len()));
            for function in &named {
                output.note(&format!("{}: {}:{}", function.source, function.entry.file, function.entry.function()));
                let mut one = args.clone();
                one.targets = vec![path.display().to_string()];
                one.name = Some(function.name.clone());
                one.entry = Some(function.entry.clone());
                one.shape = args.shape.clone().or_else(|| function.shape.map(str::to_string));
                deploy_one(api, output, one, &named)?;
            }
            return Ok(());
        }
    }
    deploy_one(api, output, args, &named)
}

fn deploy_one(api: &Api, output: &Output, args: DeployArgs, named: &[ManifestFunction]) -> anyhow::Result<()> {
    let (path, name) = target(&args)?;
    let root = &path;
    anyhow::ensure!(
        root.is_dir(),
        "{} is not a directory (usage: deploy [PATH] [--name NAME], or deploy NAME PATH)",
        root.display()
    );
    let name = match name {
        Some(name) => name,
        None => match named {
            // The one function a template.yaml, serverless.yml or stack.yml names: its name there.
            [only] if args.entry.is_none() && !only.name.is_empty() => {
                output.note(&format!(
                    "deploying as {} (its name in {}; --name NAME chooses another)",
                    only.name, only.source
                ));
                only.name.clone()
            }
            _ => {
                let name = package::default_name(root).context("cannot tell the function's name: pass --name")?;
                output.note(&format!("deploying as {name} (the directory's name; --name NAME chooses another)"));
                name
            }
        },
    };
    // Before any work: a deploy that cannot be uploaded (not logged in, an expired login) says
    // so first, not after the analysis.
    if !args.dry_run {
        api.json(api.authed(Method::GET, "/api/auth/me")?)?;
    }
    let timeout_ms = args.timeout.as_deref().map(duration_ms).transpose()?;
    // The environment a template.yaml, serverless.yml or stack.yml sets for this function first;
    // --env-file and --env after it, so they win.
    let mut pairs: Vec<String> = manifest_env(named, &args, output);
    pairs.extend(match &args.env_file {
        Some(file) => read_env_file(file)?,
        None => Vec::new(),
    });
    pairs.extend(args.env.iter().cloned());
    let mut env = serde_json::Map::new();
    for pair in &pairs {
        let (key, value) = pair.split_once('=').with_context(|| format!("--env {pair:?}: use KEY=VALUE"))?;
        env.insert(key.to_string(), Value::from(value));
    }

    let built = package::build(root)?;
    output.detail(&format!("{} file(s), {} bytes compressed", built.files.len(), built.archive.len()));

    // The analyzer, locally, on exactly the files that will be uploaded.
    let staged = tempfile::tempdir()?;
    for relative in &built.files {
        let target = staged.path().join(relative);
        std::fs::create_dir_all(target.parent().expect("a file in a directory"))?;
        std::fs::copy(root.join(relative), &target)?;
    }
    let runtime = match args.runtime.as_deref() {
        Some(name) => <analyzer::RuntimeChoice as clap::ValueEnum>::from_str(name, true).map_err(anyhow::Error::msg)?,
        None => analyzer::RuntimeChoice::Auto,
    };
    let options = analyzer::Options { entry: args.entry.clone(), runtime, ..analyzer::Options::default() };
    let report = analyzer::analyze(staged.path(), &options).map_err(|error| match error {
        // Said of the user's own directory, not of the copy the analyzer read.
        analyzer::AnalyzeError::NoRuntime(_) | analyzer::AnalyzeError::SeveralFunctions(_) => {
            anyhow::anyhow!("{}: {error}", root.display())
        }
        analyzer::AnalyzeError::Read { .. } => {
            anyhow::Error::new(error).context("the analyzer could not read the package")
        }
    })?;
    let report_json = serde_json::to_value(&report)?;
    let findings = report_json["findings"].as_array().cloned().unwrap_or_default();
    output::findings(output, &findings);
    if report.verdict != analyzer::Verdict::Accept {
        let errors = report.findings.iter().filter(|finding| finding.severity == analyzer::Severity::Error).count();
        return Err(CliError::Rejected { errors }.into());
    }
    if args.dry_run {
        for file in &built.files {
            println!("{}", file.display());
        }
        output.note(&format!(
            "Dry run: the analyzer accepts {name} ({} warning(s), runtime {}); these {} file(s), {} bytes compressed, would be uploaded",
            findings.len(),
            report.runtime.as_str(),
            built.files.len(),
            built.archive.len()
        ));
        return Ok(());
    }
    output.note(&format!("Analyzer: accepted ({} warning(s)); uploading {name}…", findings.len()));

    let length = built.archive.len() as u64;
    let reader: Box<dyn Read + Send> = if std::io::stderr().is_terminal() && !output.quiet {
        let bar = indicatif::ProgressBar::new(length).with_style(
            indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template"),
        );
        Box::new(Progress { inner: std::io::Cursor::new(built.archive), bar })
    } else {
        Box::new(std::io::Cursor::new(built.archive))
    };
    let mut form = multipart::Form::new()
        .text("name", name.clone())
        .part("archive", multipart::Part::reader_with_length(reader, length).file_name("function.tar.gz"));
    if args.public {
        form = form.text("public", "true");
    }
    if !env.is_empty() {
        form = form.text("env", Value::Object(env).to_string());
    }
    if let Some(timeout) = timeout_ms {
        form = form.text("timeout_ms", timeout.to_string());
    }
    if let Some(runtime) = &args.runtime {
        form = form.text("runtime", runtime.clone());
    }
    if let Some(count) = args.max_concurrency {
        form = form.text("max_concurrency", count.to_string());
    }
    if let Some(memory) = args.memory {
        form = form.text("memory_mb", memory.to_string());
    }
    if let Some(network) = &args.network {
        form = form.text("network", network.clone());
    }
    if let Some(entry) = &args.entry {
        let function = entry.function.as_deref().map(|function| format!(":{function}")).unwrap_or_default();
        form = form.text("entry", format!("{}{function}", entry.file));
    }
    if let Some(shape) = &args.shape {
        form = form.text("shape", shape.clone());
    }
    let request =
        api.authed(Method::POST, "/api/functions/deploy")?.multipart(form).timeout(std::time::Duration::from_secs(600));
    let deployed = api.json(request)?;
    let url = api.url(deployed["url"].as_str().unwrap_or(""));
    if output.json() {
        let mut line = deployed.clone();
        line["url"] = Value::from(url);
        output.line(&line);
    } else {
        println!("{url}");
        output.note(&format!(
            "Deployed {} version {} ({}, {})",
            name,
            deployed["version"],
            deployed["runtime"].as_str().unwrap_or("?"),
            deployed["entry_mode"].as_str().unwrap_or("?")
        ));
        if let Some(build) = deployed["build"].as_object() {
            let number = |key: &str| build.get(key).and_then(Value::as_u64).unwrap_or(0);
            let timings = format!("dependencies {} ms, compile {} ms", number("resolve_ms"), number("compile_ms"));
            match build.get("note").and_then(Value::as_str) {
                None if build.get("reused").and_then(Value::as_bool) == Some(true) => {
                    output.note("Compiled: reused the executable built for this source and SDK")
                }
                None => output.note(&format!("Compiled to a native executable ({timings})")),
                Some(note) => output.note(&format!("warning: runs with `dart run` (slower to start): {note}")),
            }
        }
        if let Some(install) = deployed["dependencies"].as_object() {
            output.note(&format!("Dependencies: {}", super::functions::describe_install(install)));
        }
        if let Some(reason) = deployed["entry"]["reason"].as_str().filter(|reason| !reason.is_empty()) {
            output.detail(&format!("entry: {reason}"));
        }
        if let Some(shape) = deployed["entry"]["shape"].as_str() {
            match deployed["entry"]["shape_reason"].as_str() {
                Some(why) => output.detail(&format!("shape: {shape}, detected: {why} (--shape SHAPE sets another)")),
                None => output.detail(&format!("shape: {shape}")),
            }
        }

        if let Some(problem) = deployed["runtime_unavailable"].as_str() {
            output.note(&format!("warning: {problem}: calls will answer 503 until the server has it"));
        }
    }
    // A deploy that lands in oneshot mode says why and what to change, before any call fails:
    // on stderr in both output modes (JSON output also carries it, in `warnings`).
    for warning in deployed["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        output.note(&format!("warning: {warning}"));
    }
    Ok(())
}
