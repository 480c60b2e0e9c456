//! Hostile peers over real sockets: slowloris, idle, no handshake, an
//! oversized frame, a peer that never reads, half-closed and cut streams.

use std::time::Duration;

use strata_socket::{Class, Config, ReadError, Refused, Timeout, WriteError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

use crate::*;

fn timeouts(handshake: u64, idle: u64, partial: u64) -> Config {
    Config {
        handshake_timeout: Duration::from_secs(handshake),
        idle_timeout: Duration::from_secs(idle),
        partial_frame_timeout: Duration::from_secs(partial),
        ..long_timeouts()
    }
}

#[tokio::test]
async fn a_header_trickled_byte_by_byte_hits_the_partial_frame_timeout() {
    within(async {
        let (mut peer, ours) = pair().await;
        let (mut reader, _, handle, hand) = framed_end(ours, &timeouts(1000, 1000, 5));
        let reading = tokio::spawn(async move { reader.next().await });
        for sent in 1..=3u64 {
            peer.write_all(&[9]).await.unwrap();
            until("the byte to be read", || handle.stats().bytes_in() == sent).await;
            settle().await;
            hand.advance(Duration::from_secs(1));
        }
        settle().await;
        assert!(
            !reading.is_finished(),
            "3 s into a 5 s partial-frame timeout"
        );
        hand.advance(Duration::from_secs(2));
        assert!(matches!(
            reading.await.unwrap(),
            Err(ReadError::Timeout(Timeout::PartialFrame))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_silent_peer_hits_the_idle_timeout() {
    within(async {
        let (_peer, ours) = pair().await;
        let (mut reader, _, handle, hand) = framed_end(ours, &timeouts(1000, 60, 1000));
        handle.handshake_complete();
        let reading = tokio::spawn(async move { reader.next().await });
        settle().await;
        hand.advance(Duration::from_secs(59));
        settle().await;
        assert!(!reading.is_finished());
        hand.advance(Duration::from_secs(1));
        assert!(matches!(
            reading.await.unwrap(),
            Err(ReadError::Timeout(Timeout::Idle))
        ));
    })
    .await;
}

#[tokio::test]
async fn frames_do_not_replace_the_handshake() {
    within(async {
        let (mut peer, ours) = pair().await;
        let (mut reader, _, _handle, hand) = framed_end(ours, &timeouts(10, 1000, 1000));
        for _ in 0..9 {
            peer.write_all(&[1, 0, 0, 0, 42]).await.unwrap();
            assert_eq!(reader.next().await.unwrap().unwrap(), &[42][..]);
            hand.advance(Duration::from_secs(1));
        }
        let reading = tokio::spawn(async move { reader.next().await });
        settle().await;
        hand.advance(Duration::from_secs(1));
        assert!(matches!(
            reading.await.unwrap(),
            Err(ReadError::Timeout(Timeout::Handshake))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_handshake_completed_while_the_reader_waits_ends_its_timeout() {
    within(async {
        let (_peer, ours) = pair().await;
        let (mut reader, _, handle, hand) = framed_end(ours, &timeouts(10, 60, 1000));
        // The reader is already waiting under the handshake deadline.
        let reading = tokio::spawn(async move { reader.next().await });
        settle().await;
        handle.handshake_complete();
        hand.advance(Duration::from_secs(30));
        settle().await;
        assert!(!reading.is_finished(), "the handshake deadline was lifted");
        hand.advance(Duration::from_secs(30));
        assert!(matches!(
            reading.await.unwrap(),
            Err(ReadError::Timeout(Timeout::Idle))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_completed_handshake_ends_its_timeout() {
    within(async {
        let (_peer, ours) = pair().await;
        let (mut reader, _, handle, hand) = framed_end(ours, &timeouts(10, 60, 1000));
        handle.handshake_complete();
        let reading = tokio::spawn(async move { reader.next().await });
        settle().await;
        hand.advance(Duration::from_secs(30));
        settle().await;
        assert!(!reading.is_finished(), "no handshake timeout once complete");
        hand.advance(Duration::from_secs(30));
        assert!(matches!(
            reading.await.unwrap(),
            Err(ReadError::Timeout(Timeout::Idle))
        ));
    })
    .await;
}

#[tokio::test]
async fn an_oversized_frame_is_refused_from_its_header() {
    within(async {
        let (mut peer, ours) = pair().await;
        let (mut reader, _, handle, _hand) = framed_end(ours, &long_timeouts());
        peer.write_all(&(2u32 << 20).to_le_bytes()).await.unwrap();
        assert!(matches!(reader.next().await, Err(ReadError::Codec(TooLarge(n))) if n == 2 << 20));
        assert_eq!(handle.stats().bytes_in(), 4, "no body byte was read");
    })
    .await;
}

#[tokio::test]
async fn a_stream_cut_inside_a_frame_is_truncated() {
    within(async {
        let (mut peer, ours) = pair().await;
        let (mut reader, _, _, _hand) = framed_end(ours, &long_timeouts());
        peer.write_all(&[10, 0, 0, 0, 1, 2, 3]).await.unwrap();
        drop(peer);
        assert!(matches!(reader.next().await, Err(ReadError::Truncated)));
    })
    .await;
}

#[tokio::test]
async fn a_half_closed_peer_still_gets_our_frames() {
    within(async {
        let (peer, ours) = pair().await;
        let (mut reader, writer, handle, _hand) = framed_end(ours, &long_timeouts());
        let (mut peer_read, mut peer_write) = peer.into_split();
        peer_write.write_all(&[2, 0, 0, 0, 7, 7]).await.unwrap();
        peer_write.shutdown().await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), &[7, 7][..]);
        assert_eq!(
            reader.next().await.unwrap(),
            None,
            "the peer's half-close ends reading cleanly"
        );
        tokio::spawn(writer.run());
        handle
            .send(Class::Control, frame(b"still here"))
            .await
            .unwrap();
        handle.close();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut peer_read, &mut got)
            .await
            .unwrap();
        assert_eq!(&got[4..], b"still here");
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_never_reads_holds_the_queue_bound_then_stalls_out() {
    within(async {
        // Small kernel buffers on both sides, so the peer's window fills fast.
        let listener = {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            socket.listen(1).unwrap()
        };
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let (ours, accepted) = tokio::join!(
            socket.connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (_never_reads, _) = accepted.unwrap();
        let config = Config {
            queue_bytes: [4096, 4096, 64 * 1024],
            write_stall_timeout: Duration::from_secs(60),
            ..long_timeouts()
        };
        let (_, writer, handle, hand) = framed_end(ours.unwrap(), &config);
        let writing = tokio::spawn(writer.run());
        let body = vec![0u8; 4 * 1024 - 4];
        let mut queued = 0u64;
        for _ in 0..100_000 {
            match handle.try_send(Class::Bulk, frame(&body)) {
                Ok(()) => queued += 1,
                Err(Refused::Full(Class::Bulk)) => break,
                Err(other) => panic!("{other}"),
            }
            tokio::task::yield_now().await;
        }
        assert!(
            handle.try_send(Class::Bulk, frame(&body)).is_err(),
            "the queue filled"
        );
        assert!(
            handle.stats().class(Class::Bulk).queued() <= 64 * 1024,
            "the bound holds"
        );
        assert!(queued < 1000, "the peer's window took {queued} frames");
        // The writer sits in a write that makes no progress; a minute later it
        // gives up.
        settle().await;
        assert!(!writing.is_finished());
        hand.advance(Duration::from_secs(61));
        assert!(matches!(writing.await.unwrap(), Err(WriteError::Stalled)));
        assert!(handle.is_closed());
        assert_eq!(
            handle.try_send(Class::Control, frame(b"x")),
            Err(Refused::Closed)
        );
    })
    .await;
}
