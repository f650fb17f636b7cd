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

/// A refusal's `Retry-After` comes from the queue and the rate calls have been completing: with
/// nothing completed yet it is the function's timeout; once calls complete at about 3 a second,
/// one waiting call means about a second.
#[tokio::test]
async fn a_refusal_says_when_the_queue_should_have_room_from_the_drain_rate() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("drain", SLEEP_PY);
    spec.limits.max_concurrency = 1;
    spec.limits.max_queue_length = 1;
    spec.limits.timeout = Duration::from_secs(7);
    spec.limits.max_queue_wait = Duration::from_secs(20);
    fixture.prewarm.prepare(spec).await.unwrap();

    let fixture = &fixture;
    let refused_while = |body: &'static str| async move {
        let running = fixture.call("drain@1", body);
        let queued = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fixture.call("drain@1", body).await
        };
        let refused = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fixture.call("drain@1", "{}").await
        };
        let (_, _, refused) = tokio::join!(running, queued, refused);
        refused
    };
    let first = refused_while(r#"{"s":0.6}"#).await;
    assert_eq!(first.outcome, Outcome::QueueFull);
    assert_eq!(first.retry_after_seconds, Some(7), "nothing completed yet: the timeout");

    // Calls of 0.3 s back to back, then a refusal while one runs and one waits.
    for _ in 0..3 {
        assert_eq!(fixture.call("drain@1", r#"{"s":0.3}"#).await.outcome, Outcome::Ok);
    }
    let later = refused_while(r#"{"s":0.3}"#).await;
    assert_eq!(later.outcome, Outcome::QueueFull);
    let seconds = later.retry_after_seconds.unwrap();
    assert!((1..=2).contains(&seconds), "about 3 calls a second, one waiting: {seconds} s");
}
