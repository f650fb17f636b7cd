//! The soak's load: `wrk` calling every function in turn for an epoch (steady load from a real
//! load generator, its answers tallied and its 200s' invocation ids kept by its Lua script), and
//! the soak's own calls (bursts over a function's cap, calls in flight at a SIGTERM), each with
//! its status, id and time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What the clients saw: answers by status, the invocation ids of the 200s, and failures
/// (no answer at all, or later than its bound).
#[derive(Debug, Default)]
pub struct Tally {
    pub statuses: BTreeMap<u16, u64>,
    pub ok_ids: Vec<String>,
    /// Calls with no answer (connection refused or reset, timeout), by what happened.
    pub unanswered: BTreeMap<String, u64>,
    /// Answers that came later than the call's bound, as "function: seconds".
    pub late: Vec<String>,
    pub slowest: Duration,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.ok_ids.extend(other.ok_ids);
        for (what, count) in other.unanswered {
            *self.unanswered.entry(what).or_default() += count;
        }
        self.late.extend(other.late);
        self.slowest = self.slowest.max(other.slowest);
    }

    pub fn answers(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// The `wrk` script: every function in turn, a 200's `x-invocation-id` kept per thread, and at
/// the end every thread's tally written to `SOAK_WRK_OUT`.
fn script(dir: &Path, paths: &[String]) -> PathBuf {
    let list = paths.iter().map(|path| format!("\"{path}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        r#"local paths = {{{list}}}
local threads = {{}}
setup = function(thread) table.insert(threads, thread) end
init = function(args) ids = {{}}; statuses = {{}}; turn = 0 end
request = function()
  turn = turn % #paths + 1
  return wrk.format("POST", paths[turn], {{["Content-Type"] = "application/json"}}, '{{"soak":1}}')
end
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then ids[#ids + 1] = headers["x-invocation-id"] or "?" end
end
done = function(summary, latency, requests)
  local out = io.open(os.getenv("SOAK_WRK_OUT"), "w")
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do out:write("status ", status, " ", count, "\n") end
    for _, id in ipairs(thread:get("ids")) do out:write("ok ", id, "\n") end
  end
  out:write("max_us ", latency.max, "\n")
  out:write("timeouts ", summary.errors.timeout, "\n")
  out:write("connect_errors ", summary.errors.connect, "\n")
  out:write("read_errors ", summary.errors.read, "\n")
  out:write("write_errors ", summary.errors.write, "\n")
  out:close()
end
"#
    );
    let path = dir.join("soak.lua");
    std::fs::write(&path, text).expect("the wrk script");
    path
}

/// Runs `wrk` with `connections` against the functions at `paths` for `length`; answers later
/// than `bound` count as late (`wrk` times a call out at the bound, and says so).
pub fn wrk_epoch(base: &str, paths: &[String], connections: usize, length: Duration, bound: Duration) -> Tally {
    let dir = tempfile::tempdir().expect("a temp dir");
    let script = script(dir.path(), paths);
    let out = dir.path().join("tally");
    let output = Command::new("wrk")
        .args(["-t1", "-c", &connections.to_string(), "-d", &format!("{}s", length.as_secs().max(1))])
        .args(["--timeout", &format!("{}s", bound.as_secs() + 1), "-s"])
        .arg(&script)
        .arg(base)
        .env("SOAK_WRK_OUT", &out)
        .output()
        .expect("wrk runs (scripts/soak installs it)");
    let mut tally = Tally::default();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        output.status.success() && !text.is_empty(),
        "wrk failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["status", status, count] => {
                *tally.statuses.entry(status.parse().unwrap_or(0)).or_default() += count.parse::<u64>().unwrap_or(0)
            }
            ["ok", id] => tally.ok_ids.push(id.to_string()),
            ["max_us", micros] => tally.slowest = Duration::from_micros(micros.parse::<f64>().unwrap_or(0.0) as u64),
            [what, count] if count.parse::<u64>().is_ok_and(|count| count > 0) => {
                tally.unanswered.insert(format!("wrk {what}"), count.parse().unwrap_or(0));
            }
            _ => {}
        }
    }
    if tally.slowest > bound {
        tally.late.push(format!("wrk's slowest call: {:.2} s", tally.slowest.as_secs_f64()));
    }
    tally
}

/// One call's status and invocation id, or what happened instead of an answer; and its time.
type Answer = (Result<(u16, Option<String>), String>, Duration);

/// Calls `url` from `calls` threads at once; each call's answer, id and time against `bound`.
pub fn burst(url: &str, calls: usize, bound: Duration) -> Tally {
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..calls)
            .map(|_| {
                scope.spawn(|| {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(bound + Duration::from_secs(5))
                        .build()
                        .expect("a client");
                    let sent = Instant::now();
                    let answer = client
                        .post(url)
                        .header("content-type", "application/json")
                        .body(r#"{"soak":"burst"}"#)
                        .send()
                        .map(|answer| {
                            let id = answer
                                .headers()
                                .get("x-invocation-id")
                                .and_then(|id| id.to_str().ok())
                                .map(String::from);
                            (answer.status().as_u16(), id)
                        })
                        .map_err(
                            |error| if error.is_timeout() { "timeout".to_string() } else { "no answer".to_string() },
                        );
                    (answer, sent.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("a burst call")).collect()
    });
    let mut tally = Tally::default();
    for (answer, took) in answers {
        tally.slowest = tally.slowest.max(took);
        if took > bound {
            tally.late.push(format!("{url}: {:.2} s", took.as_secs_f64()));
        }
        match answer {
            Ok((status, id)) => {
                *tally.statuses.entry(status).or_default() += 1;
                if status == 200 {
                    tally.ok_ids.push(id.unwrap_or_else(|| "?".into()));
                }
            }
            Err(what) => *tally.unanswered.entry(format!("burst {what}")).or_default() += 1,
        }
    }
    tally
}
