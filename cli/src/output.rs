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
            rows.iter().map(|row| columns.iter().map(|column| table_cell(column, &row[*column])).collect()).collect();
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

/// A table cell: times (`*_at`, Unix milliseconds) as UTC dates, the rest as they are.
fn table_cell(column: &str, value: &Value) -> String {
    match value.as_i64() {
        Some(ms) if column.ends_with("_at") && ms > 0 => utc_date(ms),
        _ => cell(value),
    }
}

/// `2026-11-29 23:05:01` (UTC) from Unix milliseconds (the civil calendar from days, Howard
/// Hinnant's algorithm).
pub fn utc_date(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
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

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc_date(1_796_338_727_000), "2026-12-03 22:58:47");
        assert_eq!(super::utc_date(951_782_400_000), "2000-02-29 00:00:00");
    }
}
