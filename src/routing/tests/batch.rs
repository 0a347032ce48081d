//! Batch lines: reservations that yield to interactive requests, one attempt per line,
//! and the cluster share of an endpoint's limits.

use super::*;

fn line() -> LlmRequest {
    prompt()
}

async fn reserve(r: &Router, within: Duration) -> Option<Reservation> {
    r.reserve("r", &line(), Instant::now() + within).await
}

/// The batch failure of one attempt at an endpoint that does `step`.
async fn failed_with(step: Step, timeout: Duration) -> BatchFailure {
    let a = ep("a", Step::Answer);
    a.fake.script([step]);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(3));
    let reservation = reserve(&r, SEC).await.expect("capacity is free");
    let err = r
        .complete_reserved(reservation, line(), timeout)
        .await
        .unwrap_err();
    assert_eq!(a.fake.calls(), 1, "one attempt, no retries");
    assert_eq!(err.endpoint, "a");
    err
}

#[tokio::test(start_paused = true)]
async fn a_reserved_line_is_answered_with_the_targets_model_in_one_attempt() {
    let a = ep("a", Step::Answer);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(3));
    let reservation = reserve(&r, SEC).await.unwrap();
    assert_eq!(reservation.endpoint(), "a");
    let done = r
        .complete_reserved(reservation, line(), 5 * SEC)
        .await
        .unwrap();
    assert_eq!((done.endpoint.as_str(), done.attempts), ("a", 1));
    assert_eq!(done.response.model(), "a-model");
    assert!(r
        .reserve("nope", &line(), Instant::now() + SEC)
        .await
        .is_none());
    assert!(!r.has_spare("nope"));
}

#[tokio::test(start_paused = true)]
async fn has_spare_is_false_at_the_concurrency_cap() {
    let mut a = ep("a", Step::AnswerAfter(10 * SEC));
    a.limits.max_concurrency = Some(1);
    let r = Arc::new(router(&[&a], vec![target("a", 1, 1)], retry(1)));
    assert!(r.has_spare("r"));
    let held = reserve(&r, SEC).await.unwrap();
    assert!(!r.has_spare("r"), "the only slot is reserved");
    assert!(reserve(&r, SEC).await.is_none(), "gave up at the deadline");
    drop(held);
    assert!(r.has_spare("r"), "the slot came back");
    let interactive = tokio::spawn({
        let r = Arc::clone(&r);
        async move { ask(&r, 60 * SEC).await }
    });
    tokio::task::yield_now().await;
    assert!(!r.has_spare("r"), "an interactive request holds the slot");
    interactive.await.unwrap().unwrap();
    assert!(r.has_spare("r"));
}

#[tokio::test(start_paused = true)]
async fn reserve_waits_while_interactive_requests_wait_and_proceeds_after() {
    let mut a = ep("a", Step::AnswerAfter(10 * SEC));
    a.limits.max_concurrency = Some(1);
    let r = Arc::new(router(&[&a], vec![target("a", 1, 1)], retry(1)));
    let start = Instant::now();
    let asks: Vec<_> = (0..2)
        .map(|_| {
            let r = Arc::clone(&r);
            tokio::spawn(async move { ask(&r, 60 * SEC).await.map(|_| Instant::now()) })
        })
        .collect();
    tokio::task::yield_now().await;
    let reserved = reserve(&r, 60 * SEC).await.map(|_| Instant::now());
    for done in asks {
        assert!(done.await.unwrap().unwrap() <= start + 20 * SEC);
    }
    assert_eq!(
        reserved,
        Some(start + 20 * SEC),
        "only after both interactive requests"
    );
}

#[tokio::test(start_paused = true)]
async fn an_interactive_request_waiting_for_rate_budget_goes_before_batch() {
    let mut a = ep("a", Step::Answer);
    a.limits.requests_per_minute = Some(60);
    let r = Arc::new(router(&[&a], vec![target("a", 1, 1)], retry(1)));
    ask(&r, SEC).await.unwrap();
    assert!(
        reserve(&r, Duration::ZERO).await.is_none(),
        "the burst is spent"
    );
    assert!(!r.has_spare("r"), "known to be spent after a refusal");
    let interactive = tokio::spawn({
        let r = Arc::clone(&r);
        async move { ask(&r, 60 * SEC).await.map(|_| Instant::now()) }
    });
    tokio::task::yield_now().await;
    let batch = reserve(&r, 60 * SEC).await.map(|_| Instant::now()).unwrap();
    let interactive = interactive.await.unwrap().unwrap();
    assert!(interactive < batch, "{interactive:?} vs {batch:?}");
    let times = a.fake.call_times();
    assert_eq!(times.len(), 2, "the reservation made no call");
}

#[tokio::test(start_paused = true)]
async fn a_503_with_retry_after_goes_back_to_the_queue_with_the_delay() {
    let err = failed_with(fake::retry_after(503, 7 * SEC), 5 * SEC).await;
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(7 * SEC));
    assert_eq!(err.status, Some(503));
    assert_eq!(err.message, "route 'r': a 503 after 1 attempt");
}

#[tokio::test(start_paused = true)]
async fn a_400_is_the_lines_own_fault() {
    let err = failed_with(fake::status(400), 5 * SEC).await;
    assert!(!err.retryable);
    assert_eq!((err.status, err.retry_after), (Some(400), None));
    assert_eq!(
        err.message,
        "route 'r': a rejected the request: HTTP 400: status 400"
    );
}

#[tokio::test(start_paused = true)]
async fn a_401_is_retried_and_names_the_key_variable() {
    let err = failed_with(fake::status(401), 5 * SEC).await;
    assert!(err.retryable, "another target may take it next time");
    assert_eq!(err.status, Some(401));
    assert_eq!(
        err.message,
        "route 'r': a 401 after 1 attempt (check A_KEY)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried_and_capped_by_the_callers_timeout() {
    let start = Instant::now();
    let err = failed_with(Step::Hang, 2 * SEC).await;
    assert_eq!(start.elapsed(), 2 * SEC);
    assert!(err.retryable);
    assert_eq!((err.status, err.retry_after), (None, None));
    assert!(
        err.message.starts_with("route 'r': a timed out after 2s"),
        "{}",
        err.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_third_share_of_120_rpm_admits_under_40_a_minute_and_no_burst() {
    let mut a = ep("a", Step::Answer);
    a.limits.requests_per_minute = Some(120);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(1));
    ask(&r, SEC).await.unwrap();
    r.set_replicas(3);
    assert_eq!(r.replicas(), 3);
    let changed = Instant::now();
    let end = changed + 300 * SEC;
    while let Some(reservation) = r.reserve("r", &line(), end).await {
        r.complete_reserved(reservation, line(), SEC).await.unwrap();
    }
    let times: Vec<Instant> = a.fake.call_times().into_iter().skip(1).collect();
    assert!(
        times[0] - changed >= SEC,
        "no burst after the change: first call after {:?}",
        times[0] - changed
    );
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().filter(|u| **u - *t < 60 * SEC).count();
        assert!(in_window < 40, "{in_window} calls within 60s from call {i}");
    }
    assert!(times.len() >= 5 * 38, "{} calls in 5 minutes", times.len());
}

#[tokio::test(start_paused = true)]
async fn drained_budgets_grant_no_burst() {
    let mut a = ep("a", Step::Answer);
    a.limits.requests_per_minute = Some(600);
    let r = router(&[&a], vec![target("a", 1, 1)], retry(1));
    r.drain_budgets();
    let start = Instant::now();
    ask(&r, 10 * SEC).await.unwrap();
    let period = Duration::from_nanos(60_500_000_000 / 588);
    assert!(start.elapsed() >= period, "waited {:?}", start.elapsed());
    assert_eq!(r.replicas(), 1);
}

/// Three replicas' batch loops on a 6,000 rpm endpoint, with a trickle of interactive
/// requests: together under the limit in every minute, close to it over the run, and
/// interactive requests never wait behind batch for more than a couple of periods.
#[tokio::test(start_paused = true)]
async fn three_replicas_keep_a_shared_limit_nearly_saturated_and_interactive_first() {
    let mut a = ep("a", Step::Answer);
    a.limits.requests_per_minute = Some(6000);
    let start = Instant::now();
    let end = start + 300 * SEC;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let r = Arc::new(router(&[&a], vec![target("a", 1, 1)], retry(1)));
        r.set_replicas(3);
        for _ in 0..4 {
            let r = Arc::clone(&r);
            tasks.spawn(async move {
                while let Some(reservation) = r.reserve("r", &line(), end).await {
                    r.complete_reserved(reservation, line(), SEC).await.unwrap();
                }
                Duration::ZERO
            });
        }
        tasks.spawn(async move {
            let mut longest = Duration::ZERO;
            while Instant::now() + 2 * SEC < end {
                tokio::time::sleep(2 * SEC).await;
                let asked = Instant::now();
                ask(&r, 10 * SEC).await.unwrap();
                longest = longest.max(asked.elapsed());
            }
            longest
        });
    }
    let mut longest_interactive = Duration::ZERO;
    while let Some(waited) = tasks.join_next().await {
        longest_interactive = longest_interactive.max(waited.unwrap());
    }
    let times = a.fake.call_times();
    let mut first = 0;
    let mut most = 0;
    for (last, t) in times.iter().enumerate() {
        while *t - times[first] >= 60 * SEC {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    assert!(most < 6000, "{most} calls in one minute");
    let per_minute = times.len() as f64 / 5.0;
    assert!(per_minute >= 0.95 * 6000.0, "{per_minute} a minute");
    assert!(
        longest_interactive <= Duration::from_millis(100),
        "an interactive request waited {longest_interactive:?}"
    );
}
