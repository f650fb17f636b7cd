//! docs/quick-reference.md names every `dart_cloud` command (as `dart_cloud --help` lists them),
//! every variable `containerpub serve --help` lists, every key of configs/containerpub.toml, and
//! only error codes the server can answer. A command, variable or key added without its line
//! here, or a code renamed, fails this test.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::harness::{repository, workspace_binary};

fn help(program: &str, args: &[&str]) -> String {
    let output = Command::new(workspace_binary(program)).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "{program} {args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

/// The first word of each line of a `--help` section, up to the next blank line.
fn section_words(help: &str, heading: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with(heading))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .filter(|word| word != "help")
        .collect()
}

/// Words inside `backticks` on the page.
fn quoted_words(page: &str) -> BTreeSet<String> {
    page.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every Rust source file under `dir`, concatenated.
fn sources(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&sources(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

#[test]
fn the_quick_reference_names_every_command_variable_and_key_and_only_real_codes() {
    let root = repository();
    let page = std::fs::read_to_string(root.join("docs/quick-reference.md")).unwrap();
    let words = quoted_words(&page);
    let mut missing = Vec::new();

    let mut commands: Vec<(String, Vec<String>)> =
        vec![(String::new(), section_words(&help("dart_cloud", &[]), "Commands:"))];
    for parent in ["keys", "secrets", "admin", "admin users"] {
        let args: Vec<&str> = parent.split(' ').collect();
        commands.push((parent.to_string(), section_words(&help("dart_cloud", &args), "Commands:")));
    }
    assert!(commands[0].1.len() >= 15, "dart_cloud --help lists commands: {commands:?}");
    for (parent, names) in &commands {
        for name in names.iter().filter(|name| !words.contains(*name)) {
            missing.push(format!("the command `dart_cloud {parent} {name}`"));
        }
    }

    let variables = section_words(&help("containerpub", &["serve"]), "Environment");
    assert!(variables.len() >= 10, "containerpub serve --help lists variables: {variables:?}");
    for variable in variables.iter().filter(|variable| !words.contains(*variable)) {
        missing.push(format!("the variable {variable}"));
    }

    let config = std::fs::read_to_string(root.join("configs/containerpub.toml")).unwrap();
    for line in config.lines() {
        let line = line.trim_start_matches('#').trim();
        let Some((key, _)) = line.split_once(" = ") else { continue };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !words.contains(key) {
            missing.push(format!("the configuration key {key}"));
        }
    }
    assert!(missing.is_empty(), "docs/quick-reference.md does not name: {missing:#?}");

    let answers = page.split("## Answers").nth(1).expect("an Answers section");
    let code = sources(&root.join("gateway/src")) + &sources(&root.join("prewarm/src"));
    let invented: Vec<&str> = answers
        .lines()
        .filter(|line| line.starts_with("| 4") || line.starts_with("| 5"))
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .filter(|code_name| code_name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .filter(|code_name| !code.contains(&format!("\"{code_name}\"")))
        .collect();
    assert!(invented.is_empty(), "codes on the page the server never answers: {invented:?}");
}
