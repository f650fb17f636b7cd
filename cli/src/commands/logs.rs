//! `logs`: prints a function's lines, and keeps following with `-f`.

use std::io::BufRead;

use reqwest::Method;
use serde_json::Value;

use crate::client::Api;
use crate::output::Output;

pub fn logs(
    api: &Api,
    output: &Output,
    name: &str,
    follow: bool,
    since: Option<String>,
    lines: u32,
) -> anyhow::Result<()> {
    let mut query = vec![("limit", lines.to_string())];
    if let Some(since) = since {
        query.push(("since", since));
    }
    if follow {
        query.push(("follow", "true".into()));
    }
    let mut request = api.authed(Method::GET, &format!("/api/functions/{name}/logs"))?.query(&query);
    if follow {
        request = request.timeout(std::time::Duration::from_secs(u64::MAX / 4));
    }
    let response = api.send(request)?;
    for line in std::io::BufReader::new(response).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue; // a keep-alive
        }
        let Ok(entry) = serde_json::from_str::<Value>(&line) else { continue };
        if output.json() {
            output.line(&entry);
            continue;
        }
        let micros = entry["timestamp_us"].as_i64().unwrap_or(0);
        let stream = entry["stream"].as_str().unwrap_or("");
        let stamp = format_time(micros);
        let prefix = output.paint(&format!("{stamp} v{}", entry["version"]), "2");
        let message = entry["message"].as_str().unwrap_or("");
        if stream == "stderr" {
            println!("{prefix} {}", output.paint(message, "33"));
        } else {
            println!("{prefix} {message}");
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, from Unix microseconds.
fn format_time(micros: i64) -> String {
    let millis = micros.rem_euclid(1_000_000) / 1000;
    format!("{}.{millis:03}", crate::output::utc_date(micros.div_euclid(1000)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(super::format_time(1_795_441_832_541_509), "2026-11-23 13:50:32.541");
        assert_eq!(super::format_time(951_782_400_000_000), "2000-02-29 00:00:00.000");
    }
}
