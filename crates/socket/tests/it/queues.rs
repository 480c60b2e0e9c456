//! Frames in and out, priorities and queue bounds.

use strata_socket::{Class, Config, FRAME_OVERHEAD, Refused};

use crate::*;

#[tokio::test]
async fn frames_round_trip_with_counters() {
    within(async {
        let (a, b) = pair().await;
        let config = long_timeouts();
        let (_, writer, handle, _hand) = framed_end(a, &config);
        let (mut reader, _, _, _hand_b) = framed_end(b, &config);
        let writing = tokio::spawn(writer.run());
        let bodies: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; i * 37]).collect();
        for (i, body) in bodies.iter().enumerate() {
            let class = Class::ALL[i % 3];
            handle.send(class, frame(body)).await.unwrap();
        }
        // Classes may reorder frames: compare them sorted.
        let mut received = Vec::new();
        for _ in &bodies {
            received.push(reader.next().await.unwrap().unwrap().to_vec());
        }
        received.sort();
        let mut sent = bodies.clone();
        sent.sort();
        assert_eq!(received, sent);
        handle.close();
        writing.await.unwrap().unwrap();
        assert_eq!(
            reader.next().await.unwrap(),
            None,
            "a clean end between frames"
        );
        let total: u64 = bodies.iter().map(|b| 4 + b.len() as u64).sum();
        assert_eq!(handle.stats().bytes_out(), total);
        let frames: u64 = Class::ALL
            .iter()
            .map(|c| handle.stats().class(*c).frames_out())
            .sum();
        assert_eq!(frames, 50);
        assert_eq!(handle.stats().class(Class::Relay).frames_out(), 17);
        assert_eq!(reader.handle().stats().bytes_in(), total);
        assert_eq!(reader.handle().stats().frames_in(), 50);
        assert!(matches!(
            handle.try_send(Class::Control, frame(b"late")),
            Err(Refused::Closed)
        ));
    })
    .await;
}

#[tokio::test]
async fn control_overtakes_queued_bulk_and_relay() {
    within(async {
        let (a, b) = pair().await;
        let config = long_timeouts();
        let (_, writer, handle, _hand) = framed_end(a, &config);
        let (mut reader, _, _, _hand_b) = framed_end(b, &config);
        // Everything is queued before the writer starts.
        for i in 0..10u8 {
            handle.try_send(Class::Bulk, frame(&[b'b', i])).unwrap();
            handle.try_send(Class::Relay, frame(&[b'r', i])).unwrap();
            handle.try_send(Class::Control, frame(&[b'c', i])).unwrap();
        }
        tokio::spawn(writer.run());
        let mut order = Vec::new();
        for _ in 0..30 {
            order.push(reader.next().await.unwrap().unwrap()[0]);
        }
        let expected: Vec<u8> = [b'c'; 10]
            .into_iter()
            .chain([b'r'; 10])
            .chain([b'b'; 10])
            .collect();
        assert_eq!(order, expected);
    })
    .await;
}

#[tokio::test]
async fn a_full_class_refuses_or_waits_and_others_still_flow() {
    within(async {
        let (a, b) = pair().await;
        let config = Config {
            queue_bytes: [4 * FRAME_OVERHEAD, 4 * FRAME_OVERHEAD, 1000],
            ..long_timeouts()
        };
        let (_, writer, handle, _hand) = framed_end(a, &config);
        let (mut reader, _, _, _hand_b) = framed_end(b, &config);
        let body = [7u8; 196];
        for _ in 0..5 {
            handle.try_send(Class::Bulk, frame(&body)).unwrap();
        }
        assert_eq!(
            handle.try_send(Class::Bulk, frame(&body)),
            Err(Refused::Full(Class::Bulk))
        );
        assert_eq!(handle.stats().class(Class::Bulk).queued(), 1000);
        assert!(matches!(
            handle.try_send(Class::Bulk, frame(&[0; 2000])),
            Err(Refused::TooLarge {
                class: Class::Bulk,
                ..
            })
        ));
        // Empty frames count too: the control lane holds four.
        for _ in 0..4 {
            handle
                .try_send(Class::Control, Outgoing::default())
                .unwrap();
        }
        assert_eq!(
            handle.try_send(Class::Control, Outgoing::default()),
            Err(Refused::Full(Class::Control))
        );
        handle.try_send(Class::Relay, frame(b"relay")).unwrap();

        // A waiting send completes once the writer makes room.
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.send(Class::Bulk, frame(b"waited")).await }
        });
        settle().await;
        assert!(!waiting.is_finished());
        tokio::spawn(writer.run());
        waiting.await.unwrap().unwrap();
        // Empty frames put no bytes on the wire: 1 relay, 5 bulk, then the one
        // that waited.
        let mut bodies = Vec::new();
        for _ in 0..(1 + 5 + 1) {
            bodies.push(reader.next().await.unwrap().unwrap());
        }
        assert_eq!(&bodies[0][..], b"relay");
        assert_eq!(&bodies[6][..], b"waited");
        assert_eq!(handle.stats().class(Class::Control).frames_out(), 4);
    })
    .await;
}

#[tokio::test]
async fn heads_and_bodies_arrive_whole_and_in_order() {
    within(async {
        let (a, mut b) = pair().await;
        let (_, writer, handle, _hand) = framed_end(a, &long_timeouts());
        tokio::spawn(writer.run());
        let mut expected = Vec::new();
        for i in 0..200usize {
            let head = vec![i as u8; i % 7];
            let body = vec![!(i as u8); (i * 131) % 5000];
            expected.extend_from_slice(&head);
            expected.extend_from_slice(&body);
            handle
                .send(Class::Relay, Outgoing::new(head, body))
                .await
                .unwrap();
        }
        handle.close();
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut received)
            .await
            .unwrap();
        assert!(
            received == expected,
            "the bytes on the wire are the frames, in order"
        );
    })
    .await;
}
