"""Unit tests of the MongoDB backend pieces that need no server (mongomock or none)."""
import math

import cloudpickle
import mongomock
import numpy as np
import pytest

from hyperq.mongo.attachments import decode_value, encode_value
from hyperq.mongo.signing import SignatureError, resolve_secret, sign, verify
from hyperq.mongo.worker import WorkerConfig, _plain


def test_signature_roundtrip_and_refusals():
    secret = b"k1"
    payload = b"payload"
    sig = sign(payload, secret)
    verify(payload, sig, secret)
    with pytest.raises(SignatureError, match="unsigned"):
        verify(payload, None, secret)
    with pytest.raises(SignatureError, match="does not match"):
        verify(payload + b"x", sig, secret)
    with pytest.raises(SignatureError, match="does not match"):
        verify(payload, sig, b"other")


def test_secret_from_environment(monkeypatch):
    monkeypatch.setenv("HYPERQ_SECRET", "abc")
    assert resolve_secret(None) == b"abc"
    assert resolve_secret("x") == b"x"
    monkeypatch.delenv("HYPERQ_SECRET")
    assert resolve_secret(None) is None


@pytest.mark.parametrize("value", [b"\x00raw", "text", {"a": [1, 2.5]}, np.arange(3)])
def test_attachment_values_roundtrip(value):
    back = decode_value(encode_value(value))
    if isinstance(value, np.ndarray):
        assert (back == value).all()
    else:
        assert back == value and type(back) is type(value)


def test_numpy_results_become_plain():
    out = _plain({"loss": np.float32(0.5), "v": np.arange(2), "n": (np.int64(3),)})
    assert out == {"loss": 0.5, "v": [0, 1], "n": [3]}
    assert type(out["loss"]) is float and type(out["n"][0]) is int


def test_lease_defaults_to_ten_heartbeats():
    assert WorkerConfig(heartbeat=2.0).lease_s == 20.0
    assert WorkerConfig(heartbeat=0.05).lease_s == pytest.approx(1.05)
    assert WorkerConfig(heartbeat=0.2, lease=1.5).lease_s == 1.5


@pytest.fixture
def mock_store():
    from hyperq.mongo.store import JobStore
    from hyperq.mongo.uri import parse_mongo_uri

    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()
    client = mongomock.MongoClient()
    return JobStore(client, parse_mongo_uri("mongodb://localhost/unit"), reconnect_timeout=1)


def test_claims_are_distinct_and_fenced(mock_store):
    from hyperq.mongo.store import ANY_EXP

    mock_store.insert([{"tid": t, "state": 0, "exp_key": "e", "misc": {}} for t in (2, 0, 1)])
    first = mock_store.claim("w1", "e", lease_s=5)
    second = mock_store.claim("w2", ANY_EXP, lease_s=5)
    assert first["tid"] != second["tid"] and {first["tid"], second["tid"]} < {0, 1, 2}
    assert first["_id"] == f"{first['tid']}:e"  # trial_id: the tid is unique through _id
    assert first["state"] == 1 and first["attempt"] == 1 and first["lease_token"]
    assert mock_store.heartbeat(first["_id"], first["lease_token"])
    assert not mock_store.heartbeat(first["_id"], "stale-token")
    # a worker holding an old token cannot write the result
    assert not mock_store.finish(first["_id"], "stale-token", 2, {"status": "ok", "loss": 1.0})
    assert mock_store.finish(first["_id"], first["lease_token"], 2, {"status": "ok", "loss": 1.0})
    # hand-back returns the trial without using up its retry budget
    assert mock_store.hand_back(second["_id"], second["lease_token"])
    doc = mock_store.jobs.find_one({"_id": second["_id"]})
    assert doc["state"] == 0 and doc["attempt"] == 0


def test_new_tids_are_unique_and_skip_existing(mock_store):
    mock_store.insert([{"tid": 7, "state": 2, "exp_key": "e", "misc": {}}])
    a = mock_store.new_tids("e", 3)
    b = mock_store.new_tids("e", 2)
    assert a == [8, 9, 10] and b == [11, 12]
    assert mock_store.new_tids("other", 2) == [0, 1]


def test_domain_cache_refuses_tampered_and_unsigned(mock_store):
    from hyperq.mongo.domain import DomainCache
    from hyperq.mongo.signing import content_hash

    payload = cloudpickle.dumps(lambda x: x + 1)
    key = content_hash(payload)
    mock_store.fs.put(payload, _id="domain:" + key, metadata={"signature": sign(payload, b"s")})
    assert DomainCache(mock_store, b"s").get(key)(1) == 2
    with pytest.raises(SignatureError, match="does not match"):
        DomainCache(mock_store, b"wrong").get(key)
    unsigned = cloudpickle.dumps(math.sqrt)
    ukey = content_hash(unsigned)
    mock_store.fs.put(unsigned, _id="domain:" + ukey, metadata={"signature": None})
    with pytest.raises(SignatureError, match="unsigned"):
        DomainCache(mock_store, b"s").get(ukey)
    assert DomainCache(mock_store, None).get(ukey)(4.0) == 2.0
