//! Functions other platforms' manifests name, found beside the code: AWS SAM's `template.yaml`,
//! the Serverless Framework's `serverless.yml`, OpenFaaS's `stack.yml`, Netlify's
//! `netlify/functions/` and Vercel's `api/` directories.
//!
//! Each gives the entry (file and function, relative to the package), the calling convention the
//! platform calls it with when the manifest says (`lambda`, `lambda-v1`, `openfaas`; the
//! directories leave it to detection), and the function's name there. A deploy without `--entry`
//! takes the one function a manifest names; with several it asks which, listing each. A manifest
//! that cannot be read is ignored: it was written for another tool, and the defaults still apply.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use crate::EntrySpec;

/// One function a manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFunction {
    /// The name the manifest gives it, as a function name here (`HelloWorldFunction` becomes
    /// `hello-world-function`).
    pub name: String,
    pub entry: EntrySpec,
    /// The convention the platform calls it with, when the manifest says.
    pub shape: Option<&'static str>,
    /// Where it was found, for messages: `template.yaml (HelloWorldFunction)`.
    pub source: String,
    /// The environment the manifest sets for it (global, then its own), plain strings only: a
    /// CloudFormation reference (`!Ref Table`) means nothing here and is left out.
    pub env: Vec<(String, String)>,
}

/// The plain `NAME: value` pairs of a YAML map, in order (numbers and booleans as written).
fn plain_env(yaml: &Yaml) -> Vec<(String, String)> {
    yaml.as_hash()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let value = match value {
                Yaml::String(text) if text == CLOUDFORMATION_VALUE => return None,
                Yaml::String(text) => text.clone(),
                Yaml::Integer(number) => number.to_string(),
                Yaml::Real(text) => text.clone(),
                Yaml::Boolean(flag) => flag.to_string(),
                _ => return None,
            };
            Some((name.as_str()?.to_string(), value))
        })
        .collect()
}

/// `first`'s pairs, then `second`'s, a name in both taking `second`'s value.
fn merged_env(first: Vec<(String, String)>, second: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        first.into_iter().filter(|(name, _)| !second.iter().any(|(other, _)| other == name)).collect();
    env.extend(second);
    env
}

/// Every function the manifests in `root` name whose entry file exists, in a stable order.
pub fn discover(root: &Path) -> Vec<ManifestFunction> {
    let mut found = Vec::new();
    for file in ["template.yaml", "template.yml"] {
        found.extend(read_yaml(root, file).map(|yaml| sam(root, file, &yaml)).unwrap_or_default());
    }
    for file in ["serverless.yml", "serverless.yaml"] {
        found.extend(read_yaml(root, file).map(|yaml| serverless(root, file, &yaml)).unwrap_or_default());
    }
    for file in ["stack.yml", "stack.yaml"] {
        found.extend(read_yaml(root, file).map(|yaml| openfaas(root, file, &yaml)).unwrap_or_default());
    }
    found.extend(wrangler(root));
    found.extend(directory_functions(root, "netlify/functions"));
    found.extend(directory_functions(root, "api"));
    found
}

/// A value written with one of CloudFormation's short tags (`!Ref Table`, `!GetAtt Role.Arn`):
/// resolved by AWS at deploy, meaningless here.
const CLOUDFORMATION_VALUE: &str = "\u{0}cloudformation";

fn read_yaml(root: &Path, file: &str) -> Option<Yaml> {
    let text = std::fs::read_to_string(root.join(file)).ok()?;
    // yaml-rust2 drops tags and keeps the text after them (`!Ref Table` reads as "Table"), so a
    // tagged value is replaced by a marker first, which no field read here takes.
    let marked: Vec<String> = text
        .lines()
        .map(|line| {
            match line
                .find(": !")
                .or_else(|| line.trim_start().starts_with("- !").then(|| line.find("- !").unwrap_or(0)))
            {
                Some(at) => format!("{}{:?}", &line[..at + 2], CLOUDFORMATION_VALUE),
                None => line.to_string(),
            }
        })
        .collect();
    YamlLoader::load_from_str(&marked.join("\n")).ok()?.into_iter().next()
}

/// `HelloWorldFunction` or `hello_world` as a function name: `hello-world-function`, `hello-world`.
pub fn function_name(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for character in name.chars() {
        if character.is_ascii_uppercase() && previous_lower {
            out.push('-');
        }
        previous_lower = character.is_ascii_lowercase() || character.is_ascii_digit();
        match character {
            'A'..='Z' | 'a'..='z' | '0'..='9' => out.push(character.to_ascii_lowercase()),
            _ if !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let trimmed = out.trim_matches('-').trim_start_matches(|c: char| c.is_ascii_digit());
    trimmed.chars().take(63).collect::<String>().trim_end_matches('-').to_string()
}

/// A Lambda handler string (`src/app.lambdaHandler`, `handlers.users.get` for Python) under
/// `code_dir`, as an entry whose file exists.
fn lambda_handler(root: &Path, code_dir: &str, handler: &str, python: Option<bool>) -> Option<EntrySpec> {
    let (module, function) = handler.rsplit_once('.')?;
    let dir = code_dir.trim_start_matches("./").trim_end_matches('/');
    let joined = |file: String| if dir.is_empty() || dir == "." { file } else { format!("{dir}/{file}") };
    let node = ["js", "mjs", "cjs"].into_iter().map(|extension| joined(format!("{module}.{extension}")));
    let python_file = joined(format!("{}.py", module.replace('.', "/")));
    let candidates: Vec<String> = match python {
        Some(true) => vec![python_file],
        Some(false) => node.collect(),
        None => node.chain([python_file]).collect(),
    };
    let file = candidates.into_iter().find(|file| root.join(file).is_file())?;
    Some(EntrySpec { file, function: Some(function.to_string()) })
}

fn string<'a>(yaml: &'a Yaml, key: &str) -> Option<&'a str> {
    yaml[key].as_str()
}

/// Whether a Lambda runtime name is Python's (`python3.12`), Node's (`nodejs20.x`), or unknown.
fn runtime_is_python(runtime: Option<&str>) -> Option<bool> {
    runtime.map(|runtime| runtime.starts_with("python")).filter(|_| runtime.is_some_and(|r| !r.is_empty()))
}

/// The HTTP event shape of a SAM function's `Events`, or Serverless's `events`: REST APIs pass
/// payload 1.0, HTTP APIs 2.0 unless told otherwise, function URLs 2.0.
fn event_shape(types: impl Iterator<Item = (String, Option<String>)>) -> &'static str {
    for (kind, payload) in types {
        match kind.as_str() {
            "Api" | "http" => return "lambda-v1",
            "HttpApi" | "httpApi" if payload.as_deref() == Some("1.0") => return "lambda-v1",
            _ => {}
        }
    }
    "lambda"
}

fn sam(root: &Path, file: &str, template: &Yaml) -> Vec<ManifestFunction> {
    let globals = &template["Globals"]["Function"];
    let Some(resources) = template["Resources"].as_hash() else { return Vec::new() };
    let mut found = Vec::new();
    for (logical, resource) in resources {
        let (Some(logical), Some("AWS::Serverless::Function")) = (logical.as_str(), string(resource, "Type")) else {
            continue;
        };
        let properties = &resource["Properties"];
        let Some(handler) = string(properties, "Handler").or_else(|| string(globals, "Handler")) else { continue };
        let code_dir = string(properties, "CodeUri").or_else(|| string(globals, "CodeUri")).unwrap_or("");
        let runtime = string(properties, "Runtime").or_else(|| string(globals, "Runtime"));
        let Some(entry) = lambda_handler(root, code_dir, handler, runtime_is_python(runtime)) else { continue };
        let events = properties["Events"].as_hash().into_iter().flatten().filter_map(|(_, event)| {
            let kind = string(event, "Type")?.to_string();
            let payload = event["Properties"]["PayloadFormatVersion"].as_str().map(str::to_string);
            Some((kind, payload))
        });
        let env = merged_env(
            plain_env(&globals["Environment"]["Variables"]),
            plain_env(&properties["Environment"]["Variables"]),
        );
        found.push(ManifestFunction {
            name: function_name(logical),
            entry,
            shape: Some(event_shape(events)),
            source: format!("{file} ({logical})"),
            env,
        });
    }
    found
}

fn serverless(root: &Path, file: &str, manifest: &Yaml) -> Vec<ManifestFunction> {
    let provider = &manifest["provider"];
    let provider_name = string(provider, "name").unwrap_or("aws");
    if provider_name != "aws" {
        return Vec::new();
    }
    let runtime = string(provider, "runtime");
    let Some(functions) = manifest["functions"].as_hash() else { return Vec::new() };
    let mut found = Vec::new();
    for (key, function) in functions {
        let Some(key) = key.as_str() else { continue };
        let Some(handler) = string(function, "handler") else { continue };
        let runtime = string(function, "runtime").or(runtime);
        // serverless-wsgi's handler serves the WSGI app `custom.wsgi.app` names: serve that app.
        let wsgi_app = manifest["custom"]["wsgi"]["app"].as_str().filter(|_| handler.starts_with("wsgi_handler."));
        let served = match wsgi_app.and_then(|app| lambda_handler(root, "", app, Some(true))) {
            Some(entry) => Some((entry, "wsgi", format!("{file} ({key}, serverless-wsgi)"))),
            None => lambda_handler(root, "", handler, runtime_is_python(runtime)).map(|entry| {
                let events = function["events"].as_vec().into_iter().flatten().filter_map(|event| {
                    let (kind, settings) = event.as_hash()?.iter().next()?;
                    let payload = settings["payload"].as_str().map(str::to_string);
                    Some((
                        kind.as_str()?.to_string(),
                        payload.or_else(|| provider["httpApi"]["payload"].as_str().map(str::to_string)),
                    ))
                });
                (entry, event_shape(events), format!("{file} ({key})"))
            }),
        };
        let Some((entry, shape, source)) = served else { continue };
        found.push(ManifestFunction {
            name: function_name(key),
            entry,
            shape: Some(shape),
            source,
            env: merged_env(plain_env(&provider["environment"]), plain_env(&function["environment"])),
        });
    }
    found
}

fn openfaas(root: &Path, file: &str, stack: &Yaml) -> Vec<ManifestFunction> {
    let Some(functions) = stack["functions"].as_hash() else { return Vec::new() };
    let mut found = Vec::new();
    for (key, function) in functions {
        let (Some(key), Some(lang)) = (key.as_str(), string(function, "lang")) else { continue };
        let dir = string(function, "handler").unwrap_or(".").trim_start_matches("./").trim_end_matches('/');
        let joined = |name: &str| if dir.is_empty() || dir == "." { name.to_string() } else { format!("{dir}/{name}") };
        let (candidates, function_name_in_file): (Vec<String>, Option<&str>) = if lang.starts_with("python") {
            (vec![joined("handler.py")], Some("handle"))
        } else if lang.starts_with("node") {
            (vec![joined("handler.js"), joined("handler.mjs")], None)
        } else {
            continue;
        };
        let Some(entry_file) = candidates.into_iter().find(|candidate| root.join(candidate).is_file()) else {
            continue;
        };
        found.push(ManifestFunction {
            name: function_name(key),
            entry: EntrySpec { file: entry_file, function: function_name_in_file.map(str::to_string) },
            shape: Some("openfaas"),
            source: format!("{file} ({key}, {lang})"),
            env: plain_env(&function["environment"]),
        });
    }
    found
}

/// Cloudflare's `wrangler.toml`, `wrangler.json` or `wrangler.jsonc`: `main` is the Worker's
/// module, whose default export's `fetch` takes a Web Request. Read by its two fields only, so
/// JSON with comments and trailing commas reads as well as TOML.
fn wrangler(root: &Path) -> Vec<ManifestFunction> {
    for file in ["wrangler.toml", "wrangler.jsonc", "wrangler.json"] {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else { continue };
        let field = |key: &str| {
            text.lines().find_map(|line| {
                let line = line.trim();
                let rest = line.strip_prefix(&format!("\"{key}\"")).or_else(|| line.strip_prefix(key))?;
                let rest = rest.trim_start().strip_prefix([':', '='])?.trim();
                let quoted = rest.strip_prefix('"')?;
                Some(quoted[..quoted.find('"')?].to_string())
            })
        };
        let Some(main) = field("main") else { continue };
        let main = main.trim_start_matches("./").to_string();
        if !root.join(&main).is_file() {
            continue;
        }
        // `<WORKER_NAME>`-style placeholders of a template are no name.
        let name =
            field("name").filter(|name| !name.contains('<')).map(|name| function_name(&name)).unwrap_or_default();
        return vec![ManifestFunction {
            name,
            entry: EntrySpec { file: main, function: None },
            shape: Some("fetch"),
            source: file.to_string(),
            env: Vec::new(),
        }];
    }
    Vec::new()
}

/// Netlify's `netlify/functions/NAME.mjs` (or `NAME/NAME.js`, `NAME/index.js`) and Vercel's
/// `api/NAME.js`: the file's name is the function's; its shape is detected when it loads.
fn directory_functions(root: &Path, dir: &str) -> Vec<ManifestFunction> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else { return Vec::new() };
    let mut found: Vec<ManifestFunction> = entries
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let (stem, relative) = if path.is_dir() {
                let inside =
                    [format!("{file_name}.js"), format!("{file_name}.mjs"), "index.js".into(), "index.mjs".into()]
                        .into_iter()
                        .find(|candidate| path.join(candidate).is_file())?;
                (file_name.clone(), format!("{dir}/{file_name}/{inside}"))
            } else {
                let (stem, extension) = file_name.rsplit_once('.')?;
                // Vercel's api/ also holds Python functions.
                let python = extension == "py" && dir == "api";
                if !(matches!(extension, "js" | "mjs" | "cjs") || python) || stem.starts_with('_') {
                    return None;
                }
                (stem.to_string(), format!("{dir}/{file_name}"))
            };
            Some(ManifestFunction {
                // `api/index.js` is the directory's function: no name of its own.
                name: if stem == "index" { String::new() } else { function_name(&stem) },
                entry: EntrySpec { file: relative.clone(), function: None },
                shape: None,
                source: relative,
                env: Vec::new(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.entry.file.cmp(&b.entry.file));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (path, contents) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
    }

    #[test]
    fn names_become_function_names() {
        assert_eq!(function_name("HelloWorldFunction"), "hello-world-function");
        assert_eq!(function_name("hello_world"), "hello-world");
        assert_eq!(function_name("getUsers2"), "get-users2");
        assert_eq!(function_name("--x--"), "x");
    }

    #[test]
    fn a_sam_template_names_its_functions_with_their_event_shape() {
        let dir = tempfile::tempdir().unwrap();
        let template = "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nGlobals:\n  Function:\n    Timeout: 3\nResources:\n  HelloWorldFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: hello-world/\n      Handler: app.lambdaHandler\n      Runtime: nodejs20.x\n      Events:\n        HelloWorld:\n          Type: Api\n          Properties:\n            Path: /hello\n            Method: get\n  PyFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src\n      Handler: handlers.users.get\n      Runtime: python3.12\n      Role: !GetAtt Role.Arn\n      Events:\n        Http:\n          Type: HttpApi\nOutputs:\n  Url:\n    Value: !Sub 'https://${ServerlessRestApi}.execute-api'\n";
        write(
            dir.path(),
            &[
                ("template.yaml", template),
                ("hello-world/app.mjs", "export const lambdaHandler = 1"),
                ("src/handlers/users.py", "def get(e, c): pass"),
            ],
        );
        let found = discover(dir.path());
        assert_eq!(found.len(), 2, "{found:?}");
        let hello = found.iter().find(|f| f.name == "hello-world-function").unwrap();
        assert_eq!(
            hello.entry,
            EntrySpec { file: "hello-world/app.mjs".into(), function: Some("lambdaHandler".into()) }
        );
        assert_eq!(hello.shape, Some("lambda-v1"));
        let python = found.iter().find(|f| f.name == "py-function").unwrap();
        assert_eq!(python.entry.file, "src/handlers/users.py");
        assert_eq!(python.shape, Some("lambda"));
    }

    #[test]
    fn serverless_stack_and_directory_functions_are_found() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("serverless.yml", "service: s\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n    SECRET: global\n    LEVEL: 3\nfunctions:\n  hello:\n    handler: handler.hello\n    events:\n      - httpApi:\n          path: /\n          method: get\n  rest:\n    handler: handler.rest\n    environment:\n      SECRET: own\n      TABLE: !Ref Table\n    events:\n      - http: GET /\n"),
                ("handler.js", "module.exports.hello = 1"),
                ("stack.yml", "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  echo-fn:\n    lang: python3-http\n    handler: ./echo\n    image: echo:latest\n"),
                ("echo/handler.py", "def handle(event, context): pass"),
                ("netlify/functions/hello.mjs", "export default async () => new Response('hi')"),
                ("netlify/functions/_shared.js", ""),
            ],
        );
        let found = discover(dir.path());
        let by_name = |name: &str| found.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name}: {found:?}"));
        assert_eq!(by_name("hello").entry.function.as_deref(), Some("hello"));
        assert_eq!(by_name("rest").shape, Some("lambda-v1"));
        let pairs = |list: &[(String, String)]| list.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        assert_eq!(pairs(&by_name("hello").env), ["SECRET=global", "LEVEL=3"]);
        assert_eq!(pairs(&by_name("rest").env), ["LEVEL=3", "SECRET=own"], "a function's own wins; a !Ref is left out");
        assert_eq!(found.iter().filter(|f| f.source.starts_with("serverless.yml")).count(), 2);
        let echo = by_name("echo-fn");
        assert_eq!((echo.entry.file.as_str(), echo.shape), ("echo/handler.py", Some("openfaas")));
        let netlify = found.iter().find(|f| f.entry.file == "netlify/functions/hello.mjs").unwrap();
        assert_eq!(netlify.shape, None);
        assert!(!found.iter().any(|f| f.entry.file.contains("_shared")));
    }

    #[test]
    fn wrangler_names_the_workers_module() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "wrangler.jsonc",
                    "{\n\t// a comment\n\t\"name\": \"<WORKER_NAME>\",\n\t\"main\": \"src/index.js\",\n}\n",
                ),
                ("src/index.js", "export default {}"),
            ],
        );
        let found = discover(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].entry.file.as_str(), found[0].shape, found[0].name.as_str()),
            ("src/index.js", Some("fetch"), "")
        );
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[("wrangler.toml", "name = \"my-worker\"\nmain = \"./worker.js\"\n"), ("worker.js", "export default {}")],
        );
        let found = discover(dir.path());
        assert_eq!((found[0].entry.file.as_str(), found[0].name.as_str()), ("worker.js", "my-worker"));
    }

    #[test]
    fn serverless_wsgi_serves_the_app_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = "service: s\ncustom:\n  wsgi:\n    app: app.app\nprovider:\n  name: aws\n  runtime: python3.9\nfunctions:\n  api:\n    handler: wsgi_handler.handler\n    events:\n      - httpApi: '*'\n";
        write(dir.path(), &[("serverless.yml", manifest), ("app.py", "app = None")]);
        let found = discover(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].entry, EntrySpec { file: "app.py".into(), function: Some("app".into()) });
        assert_eq!(found[0].shape, Some("wsgi"));
    }

    #[test]
    fn unreadable_manifests_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("template.yaml", "{ not: yaml: at all"), ("serverless.yml", "- a list\n")]);
        assert!(discover(dir.path()).is_empty());
    }
}
