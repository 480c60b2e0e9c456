//! Durations, rates and bounds from outside (config values) of any size:
//! saturating arithmetic, never a panic or a wrapped deadline.

use std::time::{Duration, Instant};

use strata_socket::{Class, Config, RateLimit, TokenBucket};

use crate::*;

#[test]
fn token_buckets_of_any_size_do_not_overflow() {
    let t0 = Instant::now();
    let huge = RateLimit {
        bytes_per_sec: u64::MAX,
        burst: u64::MAX,
    };
    let bucket = TokenBucket::new(huge, t0);
    assert_eq!(bucket.take(u64::MAX, t0), Ok(u64::MAX));
    let later = t0 + Duration::from_secs(1 << 40);
    assert_eq!(bucket.take(1 << 20, later), Ok(1 << 20));
    bucket.refund(u64::MAX);
    // A rate of 1 byte a second with an enormous burst: the next grant is
    // far off, but representable.
    let slow = TokenBucket::new(
        RateLimit {
            bytes_per_sec: 1,
            burst: u64::MAX,
        },
        t0,
    );
    assert_eq!(slow.take(u64::MAX, t0), Ok(u64::MAX));
    assert!(slow.take(1, t0).unwrap_err() > t0);
    assert_eq!(
        slow.take(1 << 30, t0 + Duration::from_secs(1 << 40)),
        Ok(1 << 30)
    );
}

#[tokio::test]
async fn timeouts_rates_and_bounds_of_any_size_do_not_overflow() {
    within(async {
        let config = Config {
            queue_bytes: [usize::MAX; 3],
            read_chunk: 64 * 1024,
            read_allowance: usize::MAX,
            ready_allowance: usize::MAX,
            write_batch: usize::MAX,
            handshake_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
            partial_frame_timeout: Duration::MAX,
            write_stall_timeout: Duration::MAX,
            upload: Some(RateLimit {
                bytes_per_sec: u64::MAX,
                burst: u64::MAX,
            }),
            download: Some(RateLimit {
                bytes_per_sec: u64::MAX,
                burst: u64::MAX,
            }),
        };
        let (a, b) = pair().await;
        let (_, writer, handle, hand) = framed_end(a, &config);
        let (mut reader, _, _, hand_b) = framed_end(b, &config);
        tokio::spawn(writer.run());
        for i in 0..10u8 {
            handle.send(Class::Bulk, frame(&[i; 1000])).await.unwrap();
            // A year at a time: timeouts of Duration::MAX end only 100
            // years on (strata_io::FAR_FUTURE), which is "never".
            hand.advance(Duration::from_secs(365 * 24 * 3600));
            hand_b.advance(Duration::from_secs(365 * 24 * 3600));
            assert_eq!(reader.next().await.unwrap().unwrap(), &[i; 1000][..]);
        }
        // Past the far future the idle timeout does end reading.
        let reading = tokio::spawn(async move { reader.next().await });
        settle().await;
        hand_b.advance(Duration::MAX);
        assert!(matches!(
            reading.await.unwrap(),
            Err(strata_socket::ReadError::Timeout(_))
        ));
    })
    .await;
}
