//! How results are printed: a table for people, JSON lines for programs (the default when stdout
//! is not a terminal), colour only on a terminal and never with `--no-color` or `NO_COLOR`.

use std::io::IsTerminal;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
    pub color: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Output {
    pub fn new(format: Option<Format>, no_color: bool, quiet: bool, verbose: bool) -> Output {
        let terminal = std::io::stdout().is_terminal();
        let format = format.unwrap_or(if terminal { Format::Table } else { Format::Json });
        let color = terminal && !no_color && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
        Output { format, color, quiet, verbose }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A progress or status line for people, on stderr (silent with `-q`).
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    pub fn detail(&self, message: &str) {
        if self.verbose {
            eprintln!("{message}");
        }
    }

    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Prints one JSON value as a line.
    pub fn line(&self, value: &Value) {
        println!("{value}");
    }

    /// Prints rows: aligned columns, or one JSON object per row.
    pub fn table(&self, columns: &[&str], rows: &[Value]) {
        if self.json() {
            for row in rows {
                self.line(row);
            }
            return;
        }
        let cells: Vec<Vec<String>> =
            rows.iter().map(|row| columns.iter().map(|column| cell(&row[*column])).collect()).collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| cells.iter().map(|row| row[i].chars().count()).chain([column.len()]).max().unwrap_or(0))
            .collect();
        let header: Vec<String> =
            columns.iter().zip(&widths).map(|(c, w)| format!("{:<w$}", c.to_uppercase())).collect();
        println!("{}", self.paint(header.join("  ").trim_end(), "1"));
        for row in cells {
            let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            println!("{}", line.join("  ").trim_end());
        }
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Prints analyzer findings (from the local analyzer or a server's 422) like a compiler does.
pub fn findings(output: &Output, findings: &[Value]) {
    for finding in findings {
        let severity = finding["severity"].as_str().unwrap_or("error");
        let label = output.paint(severity, if severity == "error" { "31;1" } else { "33;1" });
        eprintln!(
            "{}:{}:{}: {label}[{}]: {}",
            finding["file"].as_str().unwrap_or("?"),
            finding["line"],
            finding["column"],
            finding["rule"].as_str().unwrap_or("?"),
            finding["message"].as_str().unwrap_or("")
        );
        if let Some(help) = finding["help"].as_str().filter(|help| !help.is_empty()) {
            for (index, line) in help.lines().enumerate() {
                eprintln!("{}{line}", if index == 0 { "  help: " } else { "        " });
            }
        }
    }
}
