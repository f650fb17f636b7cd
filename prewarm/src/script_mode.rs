//! When a Node or Python entry turns out to be a script, and what a script that printed no
//! result is told to change.
//!
//! Whether a version is served warm is settled by loading it (`prepare`): an adapter that finds
//! the function to call answers `ready`; one that loads the module and finds nothing callable
//! answers `no_handler`; a module whose top level runs to `exit(0)` is a script too. Anything else
//! (a syntax error, a failing import) is a broken function, never a script.

use crate::runtime::{EntryMode, Runtime};
use crate::spawn::ExitStatus;
use crate::worker::StartFailure;
use crate::FunctionEntry;

/// Why a failed load means "run it as a script", or `None` when the function is broken. A
/// function the deploy named (`FILE:FUNCTION`) was meant to be a handler: not finding it is an
/// error to fix, never a quiet switch to oneshot mode.
pub(crate) fn script_reason(entry: &FunctionEntry, failure: &StartFailure) -> Option<String> {
    let ran_as = "it runs as a script, one process per call";
    if entry.function != crate::DEFAULT_FUNCTION {
        return None;
    }
    match failure {
        StartFailure::NoHandler(message) => Some(format!("{message}: {ran_as}")),
        StartFailure::Exited { status: ExitStatus::Exited(0), .. } => Some(format!(
            "loading {} ran it to its end (exit status 0) before any `{}` could be called: {ran_as}",
            entry.file, entry.function
        )),
        _ => None,
    }
}

/// What a version in `Main` mode is told when it printed no usable result line, and what
/// `dart_cloud deploy` prints when a deploy lands in that mode: the mode, why, and the two ways out.
pub fn script_advice(runtime: Runtime, entry: &FunctionEntry) -> String {
    let function = entry.function.as_str();
    let (export, print) = match runtime {
        Runtime::Node => (
            format!("`exports.{function} = async (body, context) => ({{ ok: true }})`"),
            "`console.log(JSON.stringify(result))`",
        ),
        Runtime::Python => {
            (format!("`def {function}(body, context): return {{\"ok\": True}}`"), "`print(json.dumps(result))`")
        }
        Runtime::Dart => (
            format!("`@function Future<Map<String, dynamic>> {function}(Map<String, dynamic> body) async => {{'ok': true}}`"),
            "`print(jsonEncode(result))`",
        ),
    };
    let why = if entry.reason.is_empty() { String::new() } else { format!(" ({})", entry.reason) };
    format!(
        "{} runs in {} mode{why}. To be served warm, export a handler: {export}. To stay a script, print the result as one JSON line, last: {print}.",
        entry.file,
        EntryMode::Main.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_mode_the_reason_and_both_ways_out() {
        let mut entry = FunctionEntry::default_for(Runtime::Python, EntryMode::Main);
        entry.reason = "main.py never mentions `handler`".into();
        let advice = script_advice(Runtime::Python, &entry);
        assert!(advice.starts_with("main.py runs in main mode (main.py never mentions `handler`)"), "{advice}");
        assert!(advice.contains("def handler(body, context)") && advice.contains("print(json.dumps(result))"));
    }

    #[test]
    fn only_a_module_without_a_handler_or_a_clean_exit_is_a_script() {
        let entry = FunctionEntry::default_for(Runtime::Node, EntryMode::Handler);
        let no_handler = StartFailure::NoHandler("index.js exports nothing callable".into());
        assert!(script_reason(&entry, &no_handler).unwrap().ends_with("one process per call"));
        let clean = StartFailure::Exited { status: ExitStatus::Exited(0), output_tail: Vec::new() };
        assert!(script_reason(&entry, &clean).unwrap().contains("exit status 0"));
        let crashed = StartFailure::Exited { status: ExitStatus::Exited(1), output_tail: Vec::new() };
        assert_eq!(script_reason(&entry, &crashed), None);
        let named = FunctionEntry { function: "handle".into(), ..entry.clone() };
        assert_eq!(script_reason(&named, &no_handler), None, "a named function that is missing is an error");
        let broken = StartFailure::LoadError(crate::protocol::FunctionError {
            error_type: "SyntaxError".into(),
            message: "Unexpected token".into(),
            stack: None,
            kind: None,
        });
        assert_eq!(script_reason(&entry, &broken), None);
    }
}
