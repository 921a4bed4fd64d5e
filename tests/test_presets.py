"""like=: queue presets with real brokers' documented defaults; explicit arguments win."""

import pytest

import evbroker as eb
from evbroker import scenarios as sc
from evbroker.core.presets import PRESETS


def settings(b, name="q"):
    q = b._queues[name]
    return q.crash_detection, q.ack_timeout, q.max_deliveries, q.default_prefetch


@pytest.mark.parametrize(
    ("like", "expected"),
    [
        ("rabbitmq", ("disconnect", 1800.0, None, None)),
        ("rabbitmq-quorum", ("disconnect", 1800.0, 20, None)),
        ("sqs", ("timeout", 30.0, None, 1)),
        ("redis-streams", ("timeout", 60.0, None, 1)),
    ],
)
def test_each_preset_sets_its_documented_defaults(like, expected):
    b = eb.Broker()
    b.queue("q", like=like)
    assert settings(b) == expected


def test_without_a_preset_the_defaults_stay():
    b = eb.Broker()
    b.queue("q")
    assert settings(b) == ("timeout", 5.0, None, 1)


def test_explicit_arguments_win_over_the_preset_even_when_equal_to_the_plain_default():
    b = eb.Broker()
    b.queue("q", like="rabbitmq-quorum", ack_timeout=5.0, max_deliveries=None, crash_detection="timeout")
    assert settings(b) == ("timeout", 5.0, None, None)


def test_a_worker_takes_the_presets_prefetch_unless_it_names_its_own():
    b = eb.Broker()
    b.queue("q", like="rabbitmq")
    b.worker("q", lambda m, c: None, name="pushed")
    b.worker("q", lambda m, c: None, name="fair", prefetch=1)
    assert [w.prefetch for w in b._queues["q"].workers] == [None, 1]


def test_an_at_most_once_queue_keeps_prefetch_one_under_a_preset():
    b = eb.Broker()
    b.queue("q", like="rabbitmq", guarantee="at-most-once")
    b.worker("q", lambda m, c: None)
    assert b._queues["q"].workers[0].prefetch == 1


def test_an_unknown_preset_gets_a_did_you_mean_and_the_list():
    with pytest.raises(eb.EvbrokerError, match=r"'rabbitmq', 'rabbitmq-quorum', 'sqs', 'redis-streams'.*'rabbitmq'\?"):
        eb.Broker().queue("q", like="rabbitqm")


def test_kafka_is_named_as_not_modelled():
    with pytest.raises(eb.EvbrokerError, match="partitioned log, which the kit does not model yet"):
        eb.Broker().queue("q", like="kafka")


def test_every_preset_names_its_source():
    doc = eb.core.presets.__doc__
    for name, preset in PRESETS.items():
        assert f'``"{name}"``' in doc
        assert preset.source


def test_the_preset_table_runs_every_fault_under_every_preset():
    lines = sc.preset_table().splitlines()
    assert lines[0].split() == ["fault", *PRESETS]
    rows = {line[:25].strip(): line[25:].split("  ") for line in lines[1:]}
    rows = {k: [c.strip() for c in v if c.strip()] for k, v in rows.items()}
    assert list(rows) == list(sc.PRESET_FAULTS)
    twice = "1 twice, back +"
    assert rows["crash before ack"] == [twice + "1", twice + "1", twice + "30", twice + "60"]
    assert rows["slow consumer"] == ["ok", "ok", "1 twice, back +30", "1 twice, back +60"]
    assert rows["poison message"] == ["forever", "dead letter at 20", "forever", "forever"]
    assert rows["producer retry"] == ["1 twice"] * 4
