//! `pubspec.yaml`: the package's name, and the dependency rules.

use yaml_rust2::{Yaml, YamlLoader};

use crate::package::Package;
use crate::report::Finding;
use crate::rules::{denied_package, dependency_overrides, non_hosted_dependency, pubspec_invalid};
use crate::Options;

/// Checks `pubspec.yaml` if there is one; returns the package's name.
pub fn check(package: &Package, options: &Options, findings: &mut Vec<Finding>) -> Option<String> {
    let file = package.file("pubspec.yaml")?;
    let text = match std::fs::read_to_string(&file.path) {
        Ok(text) => text,
        Err(error) => {
            findings.push(pubspec_invalid::RULE.at("pubspec.yaml", 1, 1, format!("cannot read pubspec.yaml: {error}")));
            return None;
        }
    };
    let documents = match YamlLoader::load_from_str(&text) {
        Ok(documents) => documents,
        Err(error) => {
            let marker = error.marker();
            findings.push(pubspec_invalid::RULE.at(
                "pubspec.yaml",
                marker.line(),
                marker.col() + 1,
                format!("invalid YAML: {}", error.info()),
            ));
            return None;
        }
    };
    let document = documents.first()?;
    for section in ["dependencies", "dev_dependencies", "dependency_overrides"] {
        let section_line = line_of_key(&text, section, 1);
        match &document[section] {
            Yaml::Hash(dependencies) => {
                for (name, source) in dependencies {
                    let Some(name) = name.as_str() else { continue };
                    let line = line_of_key(&text, name, section_line);
                    if options.is_denied_package(name) {
                        findings.push(denied_package::RULE.at(
                            "pubspec.yaml",
                            line,
                            1,
                            format!("{section} includes `{name}`, which is not allowed"),
                        ));
                    }
                    if let Yaml::Hash(details) = source {
                        for (kind, allowed) in
                            [("path", options.allow_path_dependencies), ("git", options.allow_git_dependencies)]
                        {
                            if !allowed && details.contains_key(&Yaml::String(kind.into())) {
                                findings.push(non_hosted_dependency::RULE.at(
                                    "pubspec.yaml",
                                    line,
                                    1,
                                    format!("`{name}` comes from a {kind}: dependency"),
                                ));
                            }
                        }
                    }
                }
            }
            Yaml::BadValue | Yaml::Null => continue,
            _ => findings.push(pubspec_invalid::RULE.at(
                "pubspec.yaml",
                section_line,
                1,
                format!("`{section}` must be a map of package names"),
            )),
        }
        if section == "dependency_overrides" && !options.allow_dependency_overrides {
            findings.push(dependency_overrides::RULE.at(
                "pubspec.yaml",
                section_line,
                1,
                "pubspec.yaml has dependency_overrides",
            ));
        }
    }
    document["name"].as_str().map(str::to_string)
}

/// 1-based line of the first `key:` at or after line `from` (for pointing at findings).
fn line_of_key(text: &str, key: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| {
            let trimmed = line.trim_start().trim_start_matches(['"', '\'']);
            trimmed
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches(['"', '\'']).trim_start().starts_with(':'))
        })
        .map_or(from, |(index, _)| index + 1)
}
