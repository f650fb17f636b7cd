//! Prometheus metrics: counters kept here on the invocation path, pool figures read from
//! prewarm when scraped. Written in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use prewarm::Outcome;

/// Duration histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One function's series: calls by outcome and the duration histogram.
#[derive(Debug, Default)]
struct FunctionSeries {
    /// Indexed like `Outcome::ALL`.
    outcomes: [AtomicU64; Outcome::ALL.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// By function name. Once a function's series exist, a call takes a shard's read lock and
    /// allocates nothing (the first call makes them).
    functions: DashMap<String, FunctionSeries>,
    /// Login attempts by result: `ok`, `failed` (wrong email or password), `throttled`.
    logins: DashMap<&'static str, AtomicU64>,
}

impl Metrics {
    pub fn observe(&self, function: &str, outcome: Outcome, duration_us: u64) {
        let series = match self.functions.get(function) {
            Some(series) => series,
            None => self.functions.entry(function.to_string()).or_default().downgrade(),
        };
        let index = Outcome::ALL.iter().position(|known| *known == outcome).expect("ALL lists every outcome");
        series.outcomes[index].fetch_add(1, Ordering::Relaxed);
        let seconds = duration_us as f64 / 1e6;
        for (bound, bucket) in BUCKETS.iter().zip(&series.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        series.count.fetch_add(1, Ordering::Relaxed);
        series.sum_us.fetch_add(duration_us, Ordering::Relaxed);
    }

    pub fn forget(&self, function: &str) {
        self.functions.remove(function);
    }

    pub fn count_login(&self, result: &'static str) {
        self.logins.entry(result).or_default().fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP containerpub_logins_total Login attempts by result (ok, failed, throttled).\n");
        out.push_str("# TYPE containerpub_logins_total counter\n");
        for result in ["ok", "failed", "throttled"] {
            let count = self.logins.get(result).map_or(0, |count| count.load(Ordering::Relaxed));
            let _ = writeln!(out, "containerpub_logins_total{{result=\"{result}\"}} {count}");
        }
        out.push_str("# HELP containerpub_invocations_total Invocations by function and outcome.\n");
        out.push_str("# TYPE containerpub_invocations_total counter\n");
        let mut rows: Vec<(String, &str, u64)> = Vec::new();
        for entry in self.functions.iter() {
            for (outcome, count) in Outcome::ALL.iter().zip(&entry.value().outcomes) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    rows.push((entry.key().clone(), outcome.as_str(), count));
                }
            }
        }
        rows.sort();
        for (function, outcome, count) in rows {
            let _ = writeln!(
                out,
                "containerpub_invocations_total{{function=\"{function}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        out.push_str("# HELP containerpub_invocation_duration_seconds Queue plus execution time of invocations.\n");
        out.push_str("# TYPE containerpub_invocation_duration_seconds histogram\n");
        let mut names: Vec<String> = self.functions.iter().map(|e| e.key().clone()).collect();
        names.sort();
        for function in names {
            let Some(histogram) = self.functions.get(&function) else { continue };
            for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                let _ = writeln!(
                    out,
                    "containerpub_invocation_duration_seconds_bucket{{function=\"{function}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = histogram.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "containerpub_invocation_duration_seconds_bucket{{function=\"{function}\",le=\"+Inf\"}} {count}"
            );
            let sum = histogram.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "containerpub_invocation_duration_seconds_sum{{function=\"{function}\"}} {sum}");
            let _ = writeln!(out, "containerpub_invocation_duration_seconds_count{{function=\"{function}\"}} {count}");
        }
    }
}

/// Writes one gauge or counter family from `(labels, value)` rows.
/// The same exposition with the `function` and `key` labels removed and the samples that then
/// share a series summed (counts, gauges and histogram buckets all add up over functions).
pub fn summed_over_functions(text: &str) -> String {
    let mut out = String::with_capacity(text.len() / 2);
    let mut family: Vec<(String, f64)> = Vec::new();
    let flush = |out: &mut String, family: &mut Vec<(String, f64)>| {
        for (series, value) in family.drain(..) {
            let _ = writeln!(out, "{series} {value}");
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut out, &mut family);
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let series = match series.split_once('{') {
            Some((name, labels)) => {
                let kept: Vec<&str> = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|label| !label.is_empty() && !label.starts_with("function=") && !label.starts_with("key="))
                    .collect();
                if kept.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}{{{}}}", kept.join(","))
                }
            }
            None => series.to_string(),
        };
        match family.iter_mut().find(|(known, _)| *known == series) {
            Some((_, total)) => *total += value,
            None => family.push((series, value)),
        }
    }
    flush(&mut out, &mut family);
    out
}

pub fn family(out: &mut String, name: &str, kind: &str, help: &str, rows: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in rows {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn series_by_function_are_summed_and_name_no_function() {
        let text = "# HELP containerpub_in_flight Invocations running.\n# TYPE containerpub_in_flight gauge\n\
                    containerpub_in_flight{function=\"shop\",key=\"fn_1@1\"} 2\n\
                    containerpub_in_flight{function=\"blog\",key=\"fn_2@3\"} 3\n\
                    containerpub_invocations_total{function=\"shop\",outcome=\"ok\"} 5\n\
                    containerpub_invocations_total{function=\"blog\",outcome=\"ok\"} 1\n\
                    containerpub_invocations_total{function=\"blog\",outcome=\"timeout\"} 1\n\
                    containerpub_logins_total{result=\"ok\"} 4\n";
        let summed = super::summed_over_functions(text);
        assert_eq!(
            summed,
            "# HELP containerpub_in_flight Invocations running.\n# TYPE containerpub_in_flight gauge\n\
             containerpub_in_flight 5\ncontainerpub_invocations_total{outcome=\"ok\"} 6\n\
             containerpub_invocations_total{outcome=\"timeout\"} 1\ncontainerpub_logins_total{result=\"ok\"} 4\n"
        );
        assert!(!summed.contains("shop") && !summed.contains("blog"));
    }
}
