//! Tests of the io loop: runtimes, the clock, and graceful shutdown, driven
//! by a manual clock instead of sleeps.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use strata_io::{Clock, Drained, Elapsed, Supervisor, runtime};
use tokio::sync::{mpsc, oneshot};

/// Lets every other ready task on the current-thread runtime run.
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn runtimes_of_both_kinds_run_tasks() {
    let single = runtime(None).unwrap();
    assert_eq!(single.block_on(async { 2 + 2 }), 4);
    let multi = runtime(Some(2)).unwrap();
    let name = multi.block_on(async {
        tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap()
    });
    assert_eq!(name.as_deref(), Some("strata-io"));
}

#[tokio::test]
async fn manual_sleep_ends_only_when_time_reaches_its_deadline() {
    let t0 = Instant::now();
    let (clock, hand) = Clock::manual(t0);
    let sleeper = tokio::spawn({
        let clock = clock.clone();
        async move { clock.sleep_until(t0 + Duration::from_secs(5)).await }
    });
    settle().await;
    hand.advance(Duration::from_secs(4));
    settle().await;
    assert!(!sleeper.is_finished(), "woke a second early");
    hand.advance(Duration::from_secs(1));
    sleeper.await.unwrap();
    assert_eq!(clock.now(), t0 + Duration::from_secs(5));
    assert_eq!(hand.now(), clock.now());
}

#[tokio::test]
async fn timeout_at_on_a_manual_clock() {
    let t0 = Instant::now();
    let (clock, hand) = Clock::manual(t0);
    assert_eq!(
        clock.timeout_at(t0, async { 7 }).await,
        Ok(7),
        "a ready future wins"
    );
    let pending = tokio::spawn({
        let clock = clock.clone();
        async move {
            clock
                .timeout_at(t0 + Duration::from_secs(3), std::future::pending::<()>())
                .await
        }
    });
    settle().await;
    hand.advance(Duration::from_secs(3));
    assert_eq!(pending.await.unwrap(), Err(Elapsed));
}

#[tokio::test]
async fn real_clock_deadlines_in_the_past_are_immediate() {
    let clock = Clock::real();
    let past = clock.now();
    clock.sleep_until(past).await;
    assert_eq!(
        clock.timeout_at(past, std::future::pending::<()>()).await,
        Err(Elapsed)
    );
}

#[tokio::test]
async fn shutdown_drains_then_cancels_stragglers() {
    let t0 = Instant::now();
    let (clock, hand) = Clock::manual(t0);
    let supervisor = Supervisor::new();
    let (stopped_tx, mut stopped_rx) = mpsc::channel(8);
    for _ in 0..3 {
        let mut shutdown = supervisor.shutdown_signal();
        let stopped = stopped_tx.clone();
        supervisor.spawn("cooperative", async move {
            shutdown.requested().await;
            stopped.send(()).await.unwrap();
        });
    }
    // This one ignores the signal.
    let (_never_tx, never_rx) = oneshot::channel::<()>();
    supervisor.spawn("straggler", async move {
        let _ = never_rx.await;
    });
    assert!(!supervisor.shutdown_signal().is_requested());
    let signal = supervisor.shutdown_signal();

    let deadline = t0 + Duration::from_secs(10);
    let drain = tokio::spawn(async move {
        let drained = supervisor.shutdown(&clock, deadline).await;
        assert!(
            !supervisor.spawn("late", async {}),
            "nothing starts after shutdown"
        );
        drained
    });
    for _ in 0..3 {
        stopped_rx.recv().await.unwrap();
    }
    assert!(signal.is_requested());
    settle().await;
    assert!(
        !drain.is_finished(),
        "the straggler holds the drain until the deadline"
    );
    hand.advance(Duration::from_secs(10));
    assert_eq!(
        drain.await.unwrap(),
        Drained {
            finished: 3,
            cancelled: 1
        }
    );
}

#[tokio::test]
async fn finished_tasks_are_reaped() {
    let supervisor = Supervisor::new();
    for _ in 0..100 {
        let (done_tx, done_rx) = oneshot::channel();
        supervisor.spawn("quick", async move {
            done_tx.send(()).unwrap();
        });
        done_rx.await.unwrap();
        settle().await;
    }
    assert!(supervisor.len() <= 2, "{} tasks kept", supervisor.len());
    let drained = supervisor.shutdown(&Clock::real(), Instant::now()).await;
    assert_eq!(drained.cancelled, 0);
}

#[tokio::test]
async fn dropping_the_supervisor_counts_as_shutdown() {
    let supervisor = Supervisor::new();
    let mut signal = supervisor.shutdown_signal();
    drop(supervisor);
    signal.requested().await;
}

#[tokio::test]
async fn a_wait_of_any_length_does_not_overflow_the_clock() {
    let t0 = Instant::now();
    assert_eq!(
        strata_io::saturating_add(t0, Duration::MAX),
        t0 + strata_io::FAR_FUTURE
    );
    let (clock, hand) = Clock::manual(t0);
    assert_eq!(clock.after(Duration::MAX), t0 + strata_io::FAR_FUTURE);
    // A sleep of Duration::MAX is a sleep until the far future, not a panic.
    let sleeper = tokio::spawn({
        let clock = clock.clone();
        async move { clock.sleep(Duration::MAX).await }
    });
    settle().await;
    assert!(!sleeper.is_finished());
    hand.advance(Duration::MAX);
    hand.advance(Duration::MAX);
    sleeper.await.unwrap();
    assert!(clock.now() > t0 + strata_io::FAR_FUTURE);
    // The real clock too.
    let real = Clock::real();
    assert!(real.after(Duration::MAX) > Instant::now());
    assert_eq!(
        real.timeout_at(real.after(Duration::MAX), async { 7 })
            .await,
        Ok(7)
    );
}
