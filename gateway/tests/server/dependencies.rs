//! Installed packages deployed with a function are dependencies: `requests` (with
//! charset_normalizer's compiled modules and urllib3's optional `bind`) and `pydantic` (a native
//! wheel) deploy and run in the sandbox, their findings reported as warnings naming them; an
//! operator can refuse native code in them.

use serde_json::Value;

use crate::harness::{code, gzip, skip, Backend, Server};

const MAIN_PY: &str = r#"
import requests
from pydantic import BaseModel, ValidationError


class Order(BaseModel):
    id: int
    item: str


def handler(body):
    prepared = requests.Request("GET", "https://example.com/orders", params={"id": body.get("id")}).prepare()
    try:
        order = Order(**body).model_dump()
    except ValidationError as error:
        return {"statusCode": 422, "body": {"errors": error.error_count()}}
    return {"requests": requests.__version__, "url": prepared.url, "order": order}
"#;

/// The package tree under `dir` plus `main.py`, as one upload (`__pycache__/` left out).
fn upload(dir: &std::path::Path) -> Vec<u8> {
    fn add(builder: &mut tar::Builder<Vec<u8>>, dir: &std::path::Path, prefix: &str) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let kind = entry.file_type().unwrap();
            if kind.is_dir() && name != "__pycache__" {
                add(builder, &entry.path(), &path);
            } else if kind.is_file() {
                let data = std::fs::read(entry.path()).unwrap();
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                builder.append_data(&mut header, &path, data.as_slice()).unwrap();
            }
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    add(&mut builder, dir, "");
    let mut header = tar::Header::new_gnu();
    header.set_size(MAIN_PY.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, "main.py", MAIN_PY.as_bytes()).unwrap();
    gzip(&builder.into_inner().unwrap())
}

const LIMITS: &str = "[deploy]\nmax_archive_bytes = 30000000\nmax_expanded_bytes = 100000000\nmax_entries = 5000\n";

#[test]
fn vendored_requests_and_pydantic_deploy_and_run_with_their_findings_as_warnings() {
    let Some(packages) = std::env::var_os("CONTAINERPUB_TEST_PYTHON_PACKAGES") else {
        skip("the vendored Python packages test: CONTAINERPUB_TEST_PYTHON_PACKAGES is not set (scripts/test installs them)");
        return;
    };
    let packages = std::path::PathBuf::from(packages);
    let Some(server) = Server::start_with_config(Backend::Sqlite, LIMITS, &[]) else { return };
    let ada = server.user("ada@example.com");
    let (status, deployed) = server.deploy(&ada, "orders", upload(&packages), &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");
    let findings = deployed["analysis"]["findings"].as_array().unwrap();
    assert!(findings.iter().all(|finding| finding["severity"] == "warning"), "{findings:?}");
    for package in ["`urllib3`", "`charset-normalizer`", "`pydantic-core`"] {
        assert!(
            findings.iter().any(|finding| finding["message"].as_str().unwrap().contains(package)),
            "a finding names {package}: {findings:?}"
        );
    }
    let answer: Value = server
        .client
        .post(server.url("/fn/orders"))
        .json(&serde_json::json!({"id": "7", "item": "pen"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["requests"], "2.32.3", "{answer}");
    assert_eq!(answer["url"], "https://example.com/orders?id=7");
    assert_eq!(answer["order"], serde_json::json!({"id": 7, "item": "pen"}), "pydantic's native core ran");
    let invalid = server.client.post(server.url("/fn/orders")).json(&serde_json::json!({"id": "x"})).send().unwrap();
    assert_eq!(invalid.status(), 422);

    // An operator who refuses native code in dependencies gets the deploy refused, naming it.
    let strict = format!("{LIMITS}\n[analyzer]\ndeny_native_dependencies = true\n");
    let Some(server) = Server::start_with_config(Backend::Sqlite, &strict, &[]) else { return };
    let ada = server.user("ada@example.com");
    let (status, refused) = server.deploy(&ada, "orders", upload(&packages), &[]);
    assert_eq!((status, code(&refused)), (422, "analysis_rejected"), "{refused}");
    assert!(refused.to_string().contains("pydantic_core/_pydantic_core"), "{refused}");
}
