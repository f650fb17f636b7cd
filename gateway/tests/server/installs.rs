//! Dependencies installed at deploy, in the confined builder: `npm ci` from a lockfile and `npm
//! install` without one, `pip` with a native wheel (pydantic), the second install from the cache
//! in a namespace with no network, npm's and pip's own messages for a package that does not
//! exist, install scripts refused by name, and manifests that reach for the host failing inside
//! the builder. These tests reach the public registries (npm, PyPI), as a deploy does.

use serde_json::Value;

use crate::harness::{archive, code, example, Backend, Server};

fn call(server: &Server, name: &str, body: Value) -> Value {
    let response = server.client.post(server.url(&format!("/fn/{name}"))).json(&body).send().unwrap();
    assert_eq!(response.status(), 200, "{name}");
    response.json().unwrap()
}

#[test]
fn node_packages_install_without_a_lockfile_and_from_one() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    let read = |file: &str| {
        std::fs::read_to_string(crate::harness::repository().join("examples/node/packages-function").join(file))
            .unwrap()
    };
    // Without a lockfile: `npm install` resolves the ranges against the registry.
    let unlocked = archive(&[("package.json", &read("package.json")), ("index.js", &read("index.js"))]);
    let (status, deployed) = server.deploy(&ada, "unlocked", unlocked, &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");
    let installed = &deployed["dependencies"];
    assert_eq!(installed["command"], "npm install", "{deployed}");
    assert_eq!(installed["packages"], 2, "{deployed}");
    assert_eq!(installed["reused"], false, "{deployed}");
    let answer = call(&server, "unlocked", serde_json::json!({"text": "hello packages"}));
    assert_eq!(answer["words"], serde_json::json!(["Hello", "Packages"]), "{answer}");
    assert_eq!(answer["lodash"], "4.17.21");
    assert_eq!(answer["id"].as_str().unwrap().len(), 36, "{answer}");

    // From the lockfile: `npm ci`, and (lodash and uuid are in the shared cache now) from the
    // cache, in a namespace that reaches no registry.
    let (status, deployed) =
        server.deploy(&ada, "greet", example("examples/node/packages-function"), &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["dependencies"]["command"], "npm ci", "{deployed}");
    assert_eq!(deployed["dependencies"]["offline"], true, "{deployed}");
    assert_eq!(call(&server, "greet", serde_json::json!({}))["lodash"], "4.17.21");

    // The same manifests again: the install is reused, nothing runs; `info` shows it.
    let (status, deployed) = server.deploy(&ada, "greet", example("examples/node/packages-function"), &[]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["dependencies"]["reused"], true, "{deployed}");
    let info: Value = server.get("/api/functions/greet", Some(&ada)).json().unwrap();
    assert_eq!(info["dependencies"]["command"], "npm ci", "{info}");
}

#[test]
fn python_requirements_install_wheels_with_a_native_one() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    let (status, deployed) =
        server.deploy(&ada, "orders", example("examples/python/packages-function"), &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");
    let installed = &deployed["dependencies"];
    assert_eq!(installed["command"], "pip install", "{deployed}");
    assert!(installed["packages"].as_u64().unwrap() >= 8, "requests, pydantic and theirs: {deployed}");
    let answer = call(&server, "orders", serde_json::json!({"id": "7", "item": "pen"}));
    assert_eq!(answer["order"], serde_json::json!({"id": 7, "item": "pen"}), "{answer}");
    assert_eq!(answer["requests"], "2.32.3");
    assert_eq!(answer["url"], "https://example.com/orders?id=7");
    // The installed packages met the analyzer's dependency policy: warnings naming them.
    let findings = deployed["analysis"]["findings"].as_array().unwrap();
    assert!(findings.iter().all(|finding| finding["severity"] == "warning"), "{findings:?}");
    for package in ["`urllib3`", "`pydantic-core`"] {
        assert!(
            findings.iter().any(|finding| finding["message"].as_str().unwrap().contains(package)),
            "a finding names {package}: {findings:?}"
        );
    }

    // Another version with the same requirements in another order: a new install, from the
    // function's wheelhouse, offline.
    let main = std::fs::read_to_string(crate::harness::repository().join("examples/python/packages-function/main.py"))
        .unwrap();
    let reordered = archive(&[("main.py", &main), ("requirements.txt", "pydantic==2.10.6\nrequests==2.32.3\n")]);
    let (status, deployed) = server.deploy(&ada, "orders", reordered, &[]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["dependencies"]["offline"], true, "{deployed}");
    assert_eq!(deployed["dependencies"]["reused"], false, "{deployed}");
}

#[test]
fn packages_that_do_not_exist_get_the_package_managers_message() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    let node = archive(&[
        ("package.json", r#"{"dependencies":{"containerpub-no-such-package-3f9a":"1.0.0"}}"#),
        ("index.js", "exports.handler = async () => 'never';"),
    ]);
    let (status, body) = server.deploy(&ada, "missing-node", node, &[]);
    assert_eq!((status, code(&body)), (422, "dependencies_unresolved"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("npm install failed") && message.contains("404"), "{message}");
    assert!(message.contains("containerpub-no-such-package-3f9a"), "{message}");

    let python = archive(&[
        ("requirements.txt", "containerpub-no-such-package-3f9a==1.0\n"),
        ("main.py", "def handler(body):\n    return 'never'\n"),
    ]);
    let (status, body) = server.deploy(&ada, "missing-python", python, &[]);
    assert_eq!((status, code(&body)), (422, "dependencies_unresolved"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("No matching distribution found for containerpub-no-such-package-3f9a"), "{message}");
    // Stored, not active: nothing answers.
    let versions: Value = server.get("/api/functions/missing-python/versions", Some(&ada)).json().unwrap();
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1), "{versions}");
}

#[test]
fn a_package_with_an_install_script_is_refused_by_name() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    // es5-ext has a postinstall script.
    let upload = archive(&[
        ("package.json", r#"{"dependencies":{"es5-ext":"0.10.64"}}"#),
        ("index.js", "exports.handler = async () => 'never';"),
    ]);
    let (status, body) = server.deploy(&ada, "scripted", upload, &[]);
    assert_eq!((status, code(&body)), (422, "dependencies_refused"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("es5-ext") && message.contains("install script"), "{message}");
    assert!(message.contains("allow_install_scripts"), "{message}");
}

#[test]
fn an_operator_can_allow_packages_with_install_scripts_which_still_never_run() {
    let config = "[dependencies]\nallow_install_scripts = true\n";
    let Some(server) = Server::start_with_config(Backend::Sqlite, config, &[]) else { return };
    let ada = server.user("ada@example.com");
    let upload = archive(&[
        ("package.json", r#"{"dependencies":{"es5-ext":"0.10.64"}}"#),
        ("index.js", "const ext = require('es5-ext/package.json');\nexports.handler = async () => ({ name: ext.name, version: ext.version });"),
    ]);
    let (status, deployed) = server.deploy(&ada, "scripted", upload, &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(
        call(&server, "scripted", serde_json::json!({})),
        serde_json::json!({"name": "es5-ext", "version": "0.10.64"})
    );
}

#[test]
fn manifests_that_reach_for_the_host_fail_inside_the_builder() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    // A package on the host, which npm outside a sandbox would install: the builder cannot see it.
    let host_package = tempfile::tempdir().unwrap();
    std::fs::write(host_package.path().join("package.json"), r#"{"name":"host-secret","version":"1.0.0"}"#).unwrap();
    std::fs::write(host_package.path().join("index.js"), "module.exports = 'the host secret';").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(host_package.path()).unwrap().permissions(),
        0o755,
    );
    for (name, spec) in
        [("relative", "file:../../etc".to_string()), ("absolute", format!("file:{}", host_package.path().display()))]
    {
        let manifest = format!(r#"{{"dependencies":{{"stolen":"{spec}"}}}}"#);
        let upload =
            archive(&[("package.json", &manifest), ("index.js", "exports.handler = async () => require('stolen');")]);
        let (status, body) = server.deploy(&ada, name, upload, &[("public", "true")]);
        assert_eq!((status, code(&body)), (422, "dependencies_unresolved"), "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("npm install failed"), "{name}: {message}");
    }
    // pip, asked to read a root-only host file (which the server, as root, could read).
    let upload =
        archive(&[("requirements.txt", "-r /etc/shadow\n"), ("main.py", "def handler(body):\n    return 1\n")]);
    let (status, body) = server.deploy(&ada, "shadow", upload, &[]);
    assert_eq!((status, code(&body)), (422, "dependencies_unresolved"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("No such file or directory: '/etc/shadow'"), "{message}");
    // What was installed belongs to the server, not to the function's uid, and no worker can
    // write it; the builders' copies are gone.
    let (status, deployed) = server.deploy(&ada, "greet", example("examples/node/packages-function"), &[]);
    assert_eq!(status, 201, "{deployed}");
    let installs = server.data_dir.path().join("state/deps");
    let mut entries = std::fs::read_dir(&installs).unwrap().flatten().map(|entry| entry.path());
    let install = entries.find(|path| path.join("node_modules/lodash").is_dir()).expect("the install");
    let lodash = std::fs::metadata(install.join("node_modules/lodash/lodash.js")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((lodash.uid(), lodash.mode() & 0o022), (0, 0), "owned by the server, written by nobody else");
    let staging = std::fs::read_dir(&installs)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".staging"));
    assert_eq!(staging.count(), 0, "no builder's copy is left behind");
}

#[test]
fn an_install_that_takes_too_long_is_stopped() {
    let config = "[dependencies]\ninstall_timeout_secs = 1\n";
    let Some(server) = Server::start_with_config(Backend::Sqlite, config, &[]) else { return };
    let ada = server.user("ada@example.com");
    let (status, body) = server.deploy(&ada, "slow", example("examples/python/packages-function"), &[]);
    assert_eq!((status, code(&body)), (422, "dependencies_unresolved"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("did not finish within 1s") && message.contains("install_timeout_secs"), "{message}");
}

#[test]
fn the_analyzers_dependency_policy_applies_to_installed_packages() {
    let config = "[analyzer]\ndeny_native_dependencies = true\n";
    let Some(server) = Server::start_with_config(Backend::Sqlite, config, &[]) else { return };
    let ada = server.user("ada@example.com");
    let (status, body) = server.deploy(&ada, "orders", example("examples/python/packages-function"), &[]);
    assert_eq!((status, code(&body)), (422, "dependencies_refused"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("[analyzer] policy") && message.contains("pydantic_core/"), "{message}");
    assert!(message.contains("native binary"), "{message}");
    let info: Value = server.get("/api/functions/orders", Some(&ada)).json().unwrap();
    assert_eq!(info["active_version"], Value::Null, "{info}");
}

#[test]
fn an_upload_cannot_plant_files_in_an_install_another_function_reuses() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let (mallory, ada) = (server.user("mallory@example.com"), server.user("ada@example.com"));
    let main = "import requests\n\ndef handler(body):\n    return {'requests': requests.__version__}\n";
    // A first deploy fills the function's wheelhouse, so the next install runs offline at once.
    let plain = archive(&[("main.py", main), ("requirements.txt", "requests==2.32.3\n")]);
    let (status, deployed) = server.deploy(&mallory, "planter", plain, &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");
    // Then other requirements text (a new install) with files shipped where pip installs.
    let requirements = "# pinned\nrequests==2.32.3\n";
    let planted = archive(&[
        ("main.py", main),
        ("requirements.txt", requirements),
        (".containerpub-python/requests/__init__.py", "__version__ = 'planted'\n"),
    ]);
    let (status, deployed) = server.deploy(&mallory, "planter", planted, &[]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["dependencies"]["offline"], true, "{deployed}");
    assert_eq!(call(&server, "planter", serde_json::json!({}))["requests"], "2.32.3");
    // Another tenant with the same requirements reuses that install: it is pip's alone.
    let (status, deployed) = server.deploy(
        &ada,
        "victim",
        archive(&[("main.py", main), ("requirements.txt", requirements)]),
        &[("public", "true")],
    );
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["dependencies"]["reused"], true, "{deployed}");
    assert_eq!(call(&server, "victim", serde_json::json!({}))["requests"], "2.32.3");
}
