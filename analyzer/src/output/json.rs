//! The JSON report: `verdict`, `runtime`, `entry` (`file`, `function`, `mode`, `reason`), `findings`.

use crate::report::Report;

pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("reports always serialize")
}
