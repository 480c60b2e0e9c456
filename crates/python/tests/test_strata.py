"""The strata module from Python: building, running, roles, faults, metrics
as numpy arrays, and errors that name the bad parameter."""

import numpy as np
import pytest

import strata


def small(**kw):
    kw.setdefault("seed", 1)
    return strata.Network(20, **kw)


def test_gossip_reaches_every_node_and_metrics_are_arrays():
    net = small()
    net.run_until(20)
    m = net.inject(0, b"\x02hello")
    net.run_until(25)
    d = net.deliveries()
    assert isinstance(d["delay"], np.ndarray)
    mine = d["message"] == m
    assert sorted(d["node"][mine].tolist()) == list(range(1, 20))
    assert (d["delay"][mine] > 0).all()
    assert (d["hops"][mine] >= 1).all()
    s = net.node_stats()
    assert s["sent_bytes"].shape == (20, len(strata.CATEGORIES))
    assert s["delivered"].sum() == 19
    assert net.stats()["events"] > 0
    assert net.now == 25


def test_the_same_seed_gives_the_same_trace_and_another_seed_another():
    def run(seed):
        net = small(seed=seed)
        net.add_publisher(1.0, 100)
        net.partition_at(10, 0.5)
        net.heal_at(20)
        net.run_until(30)
        return net.trace_hash

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_push_sends_more_payload_bytes_than_ask_then_send():
    def payload_bytes(gossip):
        net = strata.Network(20, seed=2, gossip=gossip)
        net.run_until(20)
        for k in range(5):
            net.inject(k, bytes([2, k]) * 100)
        net.run_until(30)
        assert len(net.deliveries()["node"]) == 5 * 19
        return net.node_stats()["payload_bytes_in"].sum()

    assert payload_bytes("push") > 2 * payload_bytes("ask")


def test_records_and_partitions_and_convergence():
    net = small()
    net.add_publisher(0.5, 64, record=True)
    net.partition_at(20, 0.5)
    net.heal_at(60)
    net.run_until(160)
    c = net.convergence()
    assert (c["distinct"][(c["time"] > 25) & (c["time"] < 60)] > 1).any()
    assert (c["agree"][c["time"] > 120] > 0.95).any()
    assert len(net.reconciliations()["node"]) > 0


def test_expiring_and_deleted_records_are_collected_everywhere():
    net = small()
    net.run_until(20)
    net.put_record(2, b"brief", b"v", ttl=20)
    net.put_record(2, b"doomed", b"v")
    net.run_until(30)
    assert (net.node_stats()["records"] == 2).all()
    net.delete_record(2, b"doomed", horizon=30)
    net.run_until(45)
    s = net.node_stats()
    assert (s["records"] == 1).all() and (s["collected"] == 1).all()
    net.run_until(70)
    s = net.node_stats()
    assert (s["records"] == 0).all() and (s["collected"] == 2).all()
    with pytest.raises(ValueError, match="ttl"):
        net.put_record(2, b"k", b"v", ttl=0)


def test_a_message_that_depends_on_another_is_delivered_after_it_everywhere():
    net = small()
    net.run_until(20)
    pairs = []
    for k in range(10):
        first = net.inject(k, bytes([2, k, 1]) + bytes(3000))
        pairs.append((first, net.inject(k, bytes([2, k, 2]), after=[first])))
    net.run_until(40)
    d = net.deliveries()
    for first, second in pairs:
        for node in range(20):
            a = d["time"][(d["message"] == first) & (d["node"] == node)]
            b = d["time"][(d["message"] == second) & (d["node"] == node)]
            if len(a) and len(b):
                assert a[0] <= b[0]
    with pytest.raises(ValueError, match="after"):
        net.inject(0, b"\x02x", after=[10**6])


def test_churn_crash_restart_join():
    net = small()
    net.set_churn(5.0, 10.0, 0.5)
    net.crash_at(10, 3)
    net.restart_at(20, 3)
    net.join_at(15, 2)
    net.run_until(60)
    st = net.stats()
    assert st["crashes"] >= 1 and st["restarts"] >= 1 and st["joins"] == 2
    assert net.nodes_count == 22


def test_attackers():
    net = strata.Network(30, seed=5)
    net.run_until(20)
    eclipse = net.add_eclipse(500, 2, [0, 1], dial_interval=0.5)
    sybils = net.add_sybils(10, 1, [2])
    liar = net.add_liar([3], junk=True)
    spammer = net.add_spammer(interval=1.0)
    deaf = net.add_deaf([4], dial_interval=300)
    net.place_attacker_near(eclipse, 0)
    with pytest.raises(ValueError, match="no honest node"):
        net.place_attacker_near(eclipse, 30)
    net.run_until(200)
    sh = net.shares()
    assert (sh["attacker"] <= 2).all()
    assert (sh["attacker_inbound"][sh["victim"] <= 1] > 0).any()
    assert (sh["attacker_inbound"][sh["victim"] == 2] > 0).any()
    assert net.attacker_standing(3, liar)[1]
    assert sum(net.attacker_standing(i, spammer)[1] for i in range(30)) > 0
    assert not net.connected_to_attacker(4, deaf)
    assert net.stats()["stalled"] > 0
    assert eclipse != sybils


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(jitter=-1.0), "jitter"),
        (dict(loss=0.9), "loss"),
        (dict(outbound=100), "outbound"),
        (dict(fast_slots=9), "fast_slots"),
        (dict(latency="moon"), "latency"),
        (dict(gossip="shout"), "gossip"),
        (dict(latency="uniform", latency_min_ms=50, latency_max_ms=10), "latency"),
        (dict(sketch_len=3), "sketch_len"),
        (dict(timed_sync_interval=float("nan")), "timed_sync_interval"),
        (dict(bandwidth=10), "bandwidth"),
    ],
)
def test_bad_parameters_raise_value_errors_that_name_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        small(**kwargs)


def test_bad_arguments_raise_and_the_network_still_works():
    with pytest.raises(ValueError, match="nodes"):
        strata.Network(0)
    with pytest.raises(OverflowError):
        strata.Network(-5)
    with pytest.raises(TypeError):
        strata.Network("many")
    net = small()
    with pytest.raises(ValueError, match="rate"):
        net.add_publisher(-1)
    with pytest.raises(ValueError, match="rate"):
        net.add_publisher(float("inf"))
    with pytest.raises(ValueError, match="size"):
        net.add_publisher(1.0, size=10**9)
    with pytest.raises(ValueError, match="no honest node 99"):
        net.inject(99, b"\x02x")
    with pytest.raises(ValueError, match="payload"):
        net.inject(0, b"")
    with pytest.raises(ValueError, match="payload"):
        net.inject(0, b"\x01not a record")
    with pytest.raises(ValueError, match="addresses"):
        net.add_eclipse(10**6, 1, [0])
    with pytest.raises(ValueError, match="no honest node"):
        net.add_liar([50])
    with pytest.raises(ValueError, match="no attacker 7"):
        net.place_attacker_near(7, 0)
    with pytest.raises(ValueError, match="share"):
        net.partition_at(5, 1.5)
    with pytest.raises(ValueError, match="at"):
        net.run_until(float("nan"))
    net.run_until(5)
    with pytest.raises(ValueError, match="before"):
        net.run_until(1)
    with pytest.raises(ValueError, match="before"):
        net.crash_at(1, 0)
    with pytest.raises(RuntimeError, match="no connected peers"):
        lonely = strata.Network(1)
        lonely.inject(0, b"\x02x")
    net.run_until(25)
    net.inject(0, b"\x02still works")
    net.run_until(30)
    assert len(net.deliveries()["node"]) == 19
