//! Token buckets, and the pacing they impose on a real socket.

use std::time::{Duration, Instant};

use strata_io::Clock;
use strata_socket::{Class, Config, RateLimit, SharedLimits, TokenBucket, framed};

use crate::*;

#[test]
fn a_bucket_grants_its_burst_then_its_rate() {
    let t0 = Instant::now();
    let bucket = TokenBucket::new(
        RateLimit {
            bytes_per_sec: 10_000,
            burst: 20_000,
        },
        t0,
    );
    assert_eq!(bucket.take(15_000, t0), Ok(15_000));
    assert_eq!(bucket.take(15_000, t0), Ok(5_000));
    // Empty: 4096 bytes (the smallest grant) take 409.6 ms to accrue.
    assert_eq!(
        bucket.take(15_000, t0),
        Err(t0 + Duration::from_nanos(409_600_000))
    );
    assert_eq!(
        bucket.take(15_000, t0 + Duration::from_millis(500)),
        Ok(5_000)
    );
    bucket.refund(1_000);
    assert_eq!(bucket.take(100, t0 + Duration::from_millis(500)), Ok(100));
    // Never more than the burst, however long the quiet.
    assert_eq!(
        bucket.take(1 << 30, t0 + Duration::from_secs(3600)),
        Ok(20_000)
    );
}

#[test]
fn small_wants_are_granted_whole() {
    let t0 = Instant::now();
    let bucket = TokenBucket::new(
        RateLimit {
            bytes_per_sec: 1_000,
            burst: 1_000,
        },
        t0,
    );
    assert_eq!(bucket.take(600, t0), Ok(600));
    // 400 left: a want of 300 fits, a want of 500 waits for 100 more.
    assert_eq!(bucket.take(300, t0), Ok(300));
    assert_eq!(bucket.take(500, t0), Err(t0 + Duration::from_millis(400)));
}

#[test]
fn a_limit_changed_at_run_time_rules_from_then_on() {
    let t0 = Instant::now();
    let fast = RateLimit {
        bytes_per_sec: 1_000_000,
        burst: 1_000_000,
    };
    let bucket = TokenBucket::new(fast, t0);
    assert_eq!(bucket.take(1_000_000, t0), Ok(1_000_000));
    let slow = RateLimit {
        bytes_per_sec: 1_000,
        burst: 8_192,
    };
    bucket.set_limit(slow, t0);
    assert_eq!(bucket.limit(), slow);
    // Empty, at 1000 bytes/s: 4096 bytes take 4.096 s.
    assert_eq!(
        bucket.take(100_000, t0),
        Err(t0 + Duration::from_nanos(4_096_000_000))
    );
    // A quiet spell fills it only to the new, smaller burst.
    assert_eq!(
        bucket.take(100_000, t0 + Duration::from_secs(3600)),
        Ok(8_192)
    );
    // Back to fast: tokens accrue at the fast rate again.
    let t1 = t0 + Duration::from_secs(3600);
    bucket.set_limit(fast, t1);
    assert_eq!(
        bucket.take(500_000, t1 + Duration::from_millis(500)),
        Ok(500_000)
    );
    // A rate of zero is taken as one byte a second (and a burst of one
    // byte), never a division by zero.
    bucket.set_limit(
        RateLimit {
            bytes_per_sec: 0,
            burst: 0,
        },
        t1,
    );
    assert_eq!(bucket.take(10, t1 + Duration::from_secs(3)), Ok(1));
}

#[tokio::test]
async fn uploads_are_paced_by_the_connection_limit() {
    within(async {
        let (a, mut b) = pair().await;
        let config = Config {
            upload: Some(RateLimit {
                bytes_per_sec: 8192,
                burst: 8192,
            }),
            ..long_timeouts()
        };
        let (_, writer, handle, hand) = framed_end(a, &config);
        tokio::spawn(writer.run());
        handle
            .send(Class::Bulk, frame(&vec![1; 3 * 8192 - 4]))
            .await
            .unwrap();
        let mut received = 0;
        for second in 1..=3 {
            until("the writer to use its tokens", || {
                handle.stats().bytes_out() == second * 8192
            })
            .await;
            settle().await;
            assert_eq!(
                handle.stats().bytes_out(),
                second * 8192,
                "no more than the rate allows"
            );
            received += read_some(&mut b, 8192).await;
            hand.advance(Duration::from_secs(1));
        }
        assert_eq!(received, 3 * 8192);
    })
    .await;
}

#[tokio::test]
async fn downloads_are_paced_by_a_shared_limit() {
    within(async {
        let (mut a, b) = pair().await;
        let (clock, hand) = Clock::manual(Instant::now());
        let shared = SharedLimits {
            download: Some(std::sync::Arc::new(TokenBucket::new(
                RateLimit {
                    bytes_per_sec: 4096,
                    burst: 4096,
                },
                clock.now(),
            ))),
            ..SharedLimits::default()
        };
        let (mut reader, _, handle) = framed(
            b,
            LenCodec { max: 1 << 20 },
            &long_timeouts(),
            clock,
            &shared,
        );
        tokio::io::AsyncWriteExt::write_all(&mut a, &frame(&vec![5; 3 * 4096 - 4]).head)
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut a, &vec![5; 3 * 4096 - 4])
            .await
            .unwrap();
        let reading = tokio::spawn(async move { reader.next().await });
        for second in 1..=2 {
            until("the reader to use its tokens", || {
                handle.stats().bytes_in() == second * 4096
            })
            .await;
            settle().await;
            assert_eq!(handle.stats().bytes_in(), second * 4096);
            assert!(!reading.is_finished());
            hand.advance(Duration::from_secs(1));
        }
        assert_eq!(reading.await.unwrap().unwrap().unwrap().len(), 3 * 4096 - 4);
    })
    .await;
}

/// Reads exactly `n` bytes.
async fn read_some(stream: &mut tokio::net::TcpStream, n: usize) -> usize {
    let mut buf = vec![0; n];
    tokio::io::AsyncReadExt::read_exact(stream, &mut buf)
        .await
        .unwrap();
    n
}
