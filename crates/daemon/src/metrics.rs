//! Counters and histograms, rendered in Prometheus' text format.
#![deny(clippy::arithmetic_side_effects)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histograms' buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 13] =
    [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation, in microseconds. A latency comes from a
    /// send time a peer signed, which may be anything: the sum saturates
    /// instead of wrapping (an atomic addition would wrap silently).
    pub fn observe_us(&self, us: u64) {
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_MS) {
            if us <= bound.saturating_mul(1000) {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some(sum.saturating_add(us))
            });
    }

    /// Observations at or below each bound of [`LATENCY_BUCKETS_MS`]
    /// (cumulative, as Prometheus has them), their count and their sum in
    /// microseconds.
    pub fn read(&self) -> ([u64; LATENCY_BUCKETS_MS.len()], u64, u64) {
        (
            self.buckets.each_ref().map(|b| b.load(Ordering::Relaxed)),
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed),
        )
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_MS) {
            let secs = bound as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{secs}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The daemon's own counters; the node's and the store's are read when
/// rendering.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records written through the API.
    pub records_put: AtomicU64,
    /// Messages published through the API.
    pub messages_published: AtomicU64,
    /// Messages received by gossip with a valid signature.
    pub messages_received: AtomicU64,
    /// Confirmations of this node's records, one per confirming node.
    pub receipts_received: AtomicU64,
    /// Messages subscribers missed, for falling too far behind.
    pub relay_dropped: AtomicU64,
    /// Admin API requests served.
    pub api_requests: AtomicU64,
    /// Admin API connections refused (over the caps).
    pub api_refused: AtomicU64,
    /// When (seconds since start) a refusal was last logged.
    pub api_refused_warned: AtomicU64,
    /// Author's send to arrival here, for messages.
    pub propagation: Histogram,
    /// Publication of our records to each confirmation, as learnt of.
    pub delivery: Histogram,
}

/// Values read from the node and the store at render time.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Peers by direction.
    pub peers_in: u64,
    /// Outbound peers.
    pub peers_out: u64,
    /// Address book: new table.
    pub book_new: u64,
    /// Address book: tried table.
    pub book_tried: u64,
    /// Bytes queued to peers now, per class: control, relay, bulk.
    pub queued: [u64; 3],
    /// The highest misbehaviour score of a connected peer.
    pub score_max: u32,
    /// Connected peers with a misbehaviour score above 0.
    pub scored: u64,
    /// The upload and download rate limits, bytes per second (0: none).
    pub rates: (u64, u64),
    /// Gossip counters.
    pub gossip: Option<strata_node::gossip::Stats>,
    /// The node's counters and the frames its driver dropped.
    pub counters: strata_node::driver::Counters,
    /// Records stored.
    pub store_records: u64,
    /// Bytes the store takes.
    pub store_bytes: u64,
    /// The store's tombstones and what it has collected.
    pub collection: strata_store::Collection,
    /// The sync layer's counters, on strata's network.
    pub sync: Option<strata_sync::Stats>,
    /// Seconds since start.
    pub uptime_secs: u64,
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// One sample per class: control, relay, bulk.
fn per_class(out: &mut String, name: &str, kind: &str, help: &str, values: [u64; 3]) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n\
         {name}{{class=\"control\"}} {}\n{name}{{class=\"relay\"}} {}\n{name}{{class=\"bulk\"}} {}",
        values[0], values[1], values[2]
    );
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

impl Metrics {
    /// The Prometheus text exposition of everything.
    pub fn render(&self, s: &Snapshot) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP strata_peers Connected peers by direction.\n# TYPE strata_peers gauge\n\
             strata_peers{{direction=\"inbound\"}} {}\nstrata_peers{{direction=\"outbound\"}} {}",
            s.peers_in, s.peers_out
        );
        let _ = writeln!(
            out,
            "# HELP strata_address_book Addresses in the address book by table.\n\
             # TYPE strata_address_book gauge\n\
             strata_address_book{{table=\"new\"}} {}\nstrata_address_book{{table=\"tried\"}} {}",
            s.book_new, s.book_tried
        );
        let g = s.gossip.unwrap_or_default();
        let c = &s.counters;
        let t = &c.traffic;
        per_class(
            &mut out,
            "strata_sent_bytes_total",
            "counter",
            "Bytes sent to peers since start, by class.",
            t.bytes_out,
        );
        per_class(
            &mut out,
            "strata_sent_frames_total",
            "counter",
            "Frames sent to peers since start, by class.",
            t.frames_out,
        );
        counter(
            &mut out,
            "strata_received_bytes_total",
            "Bytes received from peers since start (the socket does not tell classes apart).",
            t.bytes_in,
        );
        counter(
            &mut out,
            "strata_received_frames_total",
            "Whole frames received from peers since start.",
            t.frames_in,
        );
        per_class(
            &mut out,
            "strata_queued_bytes",
            "gauge",
            "Bytes queued to peers now, by class.",
            s.queued,
        );
        let _ = writeln!(
            out,
            "# HELP strata_gossip_payload_bytes_total Gossip payload bytes by direction.\n\
             # TYPE strata_gossip_payload_bytes_total counter\n\
             strata_gossip_payload_bytes_total{{direction=\"in\"}} {}\n\
             strata_gossip_payload_bytes_total{{direction=\"out\"}} {}",
            g.payload_bytes_in, g.payload_bytes_out
        );
        let _ = writeln!(
            out,
            "# HELP strata_connections_opened_total Connections that came up, by direction.\n\
             # TYPE strata_connections_opened_total counter\n\
             strata_connections_opened_total{{direction=\"inbound\"}} {}\n\
             strata_connections_opened_total{{direction=\"outbound\"}} {}",
            c.opened[0], c.opened[1]
        );
        counter(
            &mut out,
            "strata_connections_closed_total",
            "Connections that ended.",
            c.closed,
        );
        let _ = writeln!(
            out,
            "# HELP strata_connections_refused_total Connections refused before a byte was read: \
             inbound for a ban, the subnet's rate or the limits; dials for a ban, the limits or a \
             key without TLS.\n\
             # TYPE strata_connections_refused_total counter\n\
             strata_connections_refused_total{{reason=\"banned\"}} {}\n\
             strata_connections_refused_total{{reason=\"rate\"}} {}\n\
             strata_connections_refused_total{{reason=\"limit\"}} {}\n\
             strata_connections_refused_total{{reason=\"dial\"}} {}",
            c.conn.refused_banned, c.conn.refused_rate, c.conn.refused_limit, c.conn.refused_dials
        );
        counter(
            &mut out,
            "strata_unfinished_evicted_total",
            "Inbound connections closed before their handshake finished, to make room.",
            c.conn.evicted_unfinished,
        );
        gauge(
            &mut out,
            "strata_peer_score_max",
            "The highest misbehaviour score of a connected peer's address.",
            u64::from(s.score_max),
        );
        gauge(
            &mut out,
            "strata_peers_scored",
            "Connected peers whose address has a misbehaviour score above 0.",
            s.scored,
        );
        let _ = writeln!(
            out,
            "# HELP strata_rate_limit_bytes_per_second The node's rate limits (0: none).\n\
             # TYPE strata_rate_limit_bytes_per_second gauge\n\
             strata_rate_limit_bytes_per_second{{direction=\"upload\"}} {}\n\
             strata_rate_limit_bytes_per_second{{direction=\"download\"}} {}",
            s.rates.0, s.rates.1
        );
        let _ = writeln!(
            out,
            "# HELP strata_gossip_messages_total Gossip messages by outcome.\n\
             # TYPE strata_gossip_messages_total counter\n\
             strata_gossip_messages_total{{outcome=\"delivered\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"duplicate\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"announced\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"requested\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"overflow\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"repeat_request\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"waited\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"released\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"wait_dropped\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"dependency_fetched\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"dependency_unserved\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"dependency_served\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"wait_refused\"}} {}\n\
             strata_gossip_messages_total{{outcome=\"unservable\"}} {}",
            g.delivered,
            g.duplicates,
            g.announced,
            g.requested,
            g.overflow,
            g.repeat_requests,
            g.waited,
            g.released,
            g.waits_dropped,
            g.deps_fetched,
            g.deps_unserved,
            g.deps_served,
            g.waits_refused,
            g.unservable
        );
        counter(
            &mut out,
            "strata_records_put_total",
            "Records written through the admin API.",
            load(&self.records_put),
        );
        let sync = s.sync.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP strata_records_stored_total Records received from peers and stored, by way.\n\
             # TYPE strata_records_stored_total counter\n\
             strata_records_stored_total{{via=\"gossip\"}} {}\n\
             strata_records_stored_total{{via=\"reconciliation\"}} {}\n\
             strata_records_stored_total{{via=\"catchup\"}} {}",
            sync.gossip_records, sync.fetched_records, sync.catchup_records
        );
        counter(
            &mut out,
            "strata_records_invalid_total",
            "Records received from peers and refused as invalid.",
            sync.invalid_records,
        );
        let _ = writeln!(
            out,
            "# HELP strata_sync_reconciliations_total Reconciliations this node started, by outcome.\n\
             # TYPE strata_sync_reconciliations_total counter\n\
             strata_sync_reconciliations_total{{outcome=\"decoded\"}} {}\n\
             strata_sync_reconciliations_total{{outcome=\"failed\"}} {}",
            sync.reconciliations, sync.failed_reconciliations
        );
        counter(
            &mut out,
            "strata_messages_published_total",
            "Messages published through the admin API.",
            load(&self.messages_published),
        );
        counter(
            &mut out,
            "strata_messages_received_total",
            "Messages received by gossip with a valid signature.",
            load(&self.messages_received),
        );
        counter(
            &mut out,
            "strata_receipts_signed_total",
            "Delivery receipts this node signed, each confirming one or more records.",
            sync.receipts_signed,
        );
        counter(
            &mut out,
            "strata_receipts_received_total",
            "Confirmations of this node's records, one per confirming node.",
            load(&self.receipts_received),
        );
        let _ = writeln!(
            out,
            "# HELP strata_receipts_dropped_total Receipts from peers dropped unchecked, by reason.\n\
             # TYPE strata_receipts_dropped_total counter\n\
             strata_receipts_dropped_total{{reason=\"replay\"}} {}\n\
             strata_receipts_dropped_total{{reason=\"over_budget\"}} {}",
            sync.receipts_replayed, sync.receipts_over_budget
        );
        counter(
            &mut out,
            "strata_relay_dropped_total",
            "Messages subscribers missed, for falling more than the backlog behind.",
            load(&self.relay_dropped),
        );
        let _ = writeln!(
            out,
            "# HELP strata_frames_dropped_total Frames to peers dropped because the peer's queue \
             for their class was full (a control frame also closes the connection).\n\
             # TYPE strata_frames_dropped_total counter\n\
             strata_frames_dropped_total{{class=\"control\"}} {}\n\
             strata_frames_dropped_total{{class=\"relay\"}} {}\n\
             strata_frames_dropped_total{{class=\"bulk\"}} {}",
            c.dropped[0], c.dropped[1], c.dropped[2]
        );
        counter(
            &mut out,
            "strata_dials_failed_total",
            "Dials that failed: refused, timed out, or a peer that did not prove its pinned or allowed key.",
            c.dials_failed,
        );
        counter(
            &mut out,
            "strata_addresses_refused_total",
            "Addresses from peers not taken for a rate limit (peer lists and handshakes).",
            c.node.addresses_refused,
        );
        counter(
            &mut out,
            "strata_bans_total",
            "Addresses banned for misbehaviour.",
            c.node.bans,
        );
        counter(
            &mut out,
            "strata_subnet_bans_total",
            "Subnets banned because their addresses together misbehaved.",
            c.node.subnet_bans,
        );
        counter(
            &mut out,
            "strata_evictions_total",
            "Inbound peers evicted to make room for a newcomer.",
            c.node.evictions,
        );
        counter(
            &mut out,
            "strata_fast_passed_over_total",
            "Connections of the low-latency slots closed after the handshake for a round trip over the typical one.",
            c.node.fast_passed_over,
        );
        counter(
            &mut out,
            "strata_sync_catchup_stopped_total",
            "Catch-ups stopped unfinished because no peer was left to serve them.",
            sync.catchup_stopped,
        );
        counter(
            &mut out,
            "strata_api_requests_total",
            "Admin API requests served.",
            load(&self.api_requests),
        );
        counter(
            &mut out,
            "strata_api_refused_total",
            "Admin API connections refused: over the total or the per-client cap.",
            load(&self.api_refused),
        );
        self.propagation.render(
            &mut out,
            "strata_propagation_seconds",
            "Time from a message's publication by its author to its arrival here.",
        );
        self.delivery.render(
            &mut out,
            "strata_delivery_seconds",
            "Time from the publication of this node's records to each confirmation, as learnt of.",
        );
        gauge(
            &mut out,
            "strata_store_records",
            "Records in the store.",
            s.store_records,
        );
        gauge(
            &mut out,
            "strata_store_bytes",
            "Bytes the store takes on disk.",
            s.store_bytes,
        );
        gauge(
            &mut out,
            "strata_store_tombstones",
            "Tombstones in the store, kept until their horizon.",
            s.collection.tombstones,
        );
        counter(
            &mut out,
            "strata_store_collected_tombstones_total",
            "Tombstones collected since the store was made.",
            s.collection.collected_tombstones,
        );
        counter(
            &mut out,
            "strata_store_collected_expired_total",
            "Expired records collected since the store was made.",
            s.collection.collected_expired,
        );
        gauge(
            &mut out,
            "strata_sync_catching_up",
            "1 while a catch-up runs, else 0.",
            u64::from(sync.catching_up),
        );
        gauge(
            &mut out,
            "strata_sync_catchup_spans_left",
            "Key-hash spans a catch-up has still to fetch.",
            sync.spans_left as u64,
        );
        gauge(
            &mut out,
            "strata_sync_relay_busy",
            "1 while relay has work and serving and catching up keep their busy share, else 0.",
            u64::from(sync.relay_busy),
        );
        gauge(
            &mut out,
            "strata_sync_serve_waiting",
            "Requests of peers waiting to be served.",
            sync.serve_waiting as u64,
        );
        gauge(
            &mut out,
            "strata_uptime_seconds",
            "Seconds since the daemon started.",
            s.uptime_secs,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::default();
        m.propagation.observe_us(1500);
        m.propagation.observe_us(20_000_000);
        let text = m.render(&Snapshot::default());
        assert!(text.contains("strata_propagation_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("strata_propagation_seconds_bucket{le=\"0.002\"} 1"));
        assert!(text.contains("strata_propagation_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("strata_propagation_seconds_count 2"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "{line}");
        }
    }

    #[test]
    fn messages_signed_as_sent_at_the_epoch_do_not_wrap_the_latency_sum() {
        // Anyone can sign a message "sent" at time zero: each is a latency of
        // some fifty years, and about ten thousand of them pass u64::MAX µs.
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let message = crate::relay::decode(&crate::relay::encode_message(&key, b"x", 0)).unwrap();
        let m = Metrics::default();
        let mut last = 0;
        for _ in 0..20_000 {
            m.propagation
                .observe_us(crate::relay::now_us().saturating_sub(message.sent_at_us));
            let (_, count, sum) = m.propagation.read();
            assert!(sum >= last, "the sum went back from {last} to {sum}");
            last = sum;
            assert!(count > 0);
        }
        assert_eq!(last, u64::MAX);
    }
}
