//! Pending requests matched to responses.

use std::time::{Duration, Instant};

use strata_levin::{Error, InvokeTracker, command};

#[test]
fn responses_match_requests_in_order() {
    let t0 = Instant::now();
    let mut tracker = InvokeTracker::new(4);
    tracker
        .request_sent(command::PING, t0 + Duration::from_secs(5))
        .unwrap();
    tracker
        .request_sent(command::TIMED_SYNC, t0 + Duration::from_secs(3))
        .unwrap();
    // The second request's response cannot come first.
    assert_eq!(
        tracker.response_received(command::TIMED_SYNC),
        Err(Error::UnexpectedResponse {
            command: command::TIMED_SYNC
        })
    );
    tracker.response_received(command::PING).unwrap();
    tracker.response_received(command::TIMED_SYNC).unwrap();
    assert!(tracker.is_empty());
    assert_eq!(
        tracker.response_received(command::PING),
        Err(Error::UnexpectedResponse {
            command: command::PING
        })
    );
}

#[test]
fn deadlines_come_from_the_caller() {
    let t0 = Instant::now();
    let mut tracker = InvokeTracker::new(4);
    assert_eq!(tracker.poll_timeout(), None);
    tracker
        .request_sent(command::PING, t0 + Duration::from_secs(5))
        .unwrap();
    tracker
        .request_sent(command::TIMED_SYNC, t0 + Duration::from_secs(3))
        .unwrap();
    assert_eq!(tracker.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    assert_eq!(tracker.timed_out(t0 + Duration::from_secs(2)), None);
    assert_eq!(
        tracker.timed_out(t0 + Duration::from_secs(3)),
        Some(command::TIMED_SYNC)
    );
    assert_eq!(
        tracker.timed_out(t0 + Duration::from_secs(9)),
        Some(command::TIMED_SYNC)
    );
}

#[test]
fn pending_requests_are_bounded() {
    let mut tracker = InvokeTracker::new(2);
    let t = Instant::now();
    tracker.request_sent(1, t).unwrap();
    tracker.request_sent(2, t).unwrap();
    assert_eq!(tracker.request_sent(3, t), Err(Error::TooManyPending(2)));
    assert_eq!(tracker.len(), 2);
}
