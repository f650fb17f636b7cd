//! The concurrency caps, the bounded queue and both rejections, with real workers.

use std::time::Duration;

use prewarm::Outcome;

use crate::fixture::Fixture;

const SLEEP_PY: &str = "import time\ndef handler(body):\n    time.sleep(body.get('s', 0.5))\n    return 'slept'\n";

#[tokio::test]
async fn per_function_cap_queue_full_and_wait_exceeded_are_distinct() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("sleepy", SLEEP_PY);
    spec.limits.max_concurrency = 2;
    spec.limits.min_idle_workers = 2;
    spec.limits.max_queue_length = 1;
    spec.limits.max_queue_wait = Duration::from_millis(200);
    fixture.prewarm.prepare(spec).await.unwrap();

    let calls = (0..4).map(|_| fixture.call("sleepy@1", r#"{"s":0.6}"#));
    let mut outcomes: Vec<Outcome> =
        futures_util::future::join_all(calls).await.into_iter().map(|invocation| invocation.outcome).collect();
    outcomes.sort_by_key(|outcome| outcome.as_str());
    assert_eq!(outcomes, vec![Outcome::Ok, Outcome::Ok, Outcome::QueueFull, Outcome::WaitExceeded]);
    let stats = &fixture.prewarm.stats()[0];
    assert_eq!((stats.outcomes["queue_full"], stats.outcomes["wait_exceeded"]), (1, 1));
}

#[tokio::test]
async fn the_global_cap_bounds_all_functions_together() {
    let fixture = Fixture::with(|config| config.global_max_concurrency = 2);
    for name in ["one", "two", "three"] {
        let mut spec = fixture.python(name, SLEEP_PY);
        spec.limits.max_queue_wait = Duration::from_secs(5);
        fixture.prewarm.prepare(spec).await.unwrap();
    }
    let started = tokio::time::Instant::now();
    let calls = ["one@1", "two@1", "three@1"].map(|key| fixture.call(key, r#"{"s":0.3}"#));
    let invocations = futures_util::future::join_all(calls).await;
    assert!(invocations.iter().all(|invocation| invocation.outcome == Outcome::Ok));
    // Two run at once, the third waits for a slot: it queued for about one call's duration.
    let longest_queue = invocations.iter().map(|invocation| invocation.queue_us).max().unwrap();
    assert!(longest_queue >= 250_000, "the third call queued {longest_queue} µs");
    assert!(started.elapsed() >= Duration::from_millis(550));
}
