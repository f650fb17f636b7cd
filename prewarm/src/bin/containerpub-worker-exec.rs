//! `containerpub-worker-exec`: applies a worker's limits to itself, then execs the runtime.
//! See `prewarm::exec_wrapper` for the steps and why this is a separate program.

use prewarm::exec_wrapper::{apply_and_exec, WrapperPlan, WRAPPER_FAILURE_STATUS};

fn main() {
    let failure = match WrapperPlan::parse(std::env::args_os().skip(1)) {
        Ok(plan) => apply_and_exec(plan),
        Err(usage) => format!("usage: {usage}"),
    };
    eprintln!("containerpub-worker-exec: {failure}");
    std::process::exit(WRAPPER_FAILURE_STATUS);
}
