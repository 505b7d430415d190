"""Parsing of every MongoDB address form the driver and the worker accept."""
import pytest

from hyperq.mongo.uri import InvalidMongoURI, parse_mongo_uri, redact_uri


@pytest.mark.parametrize(
    "address, uri, db, coll",
    [
        ("mongodb://localhost:27017/hyperq", "mongodb://localhost:27017/hyperq", "hyperq", "jobs"),
        ("mongodb://u:p@h1:1,h2:2/exp?replicaSet=rs0&tls=true&authSource=admin",
         "mongodb://u:p@h1:1,h2:2/exp?replicaSet=rs0&tls=true&authSource=admin", "exp", "jobs"),
        ("mongodb+srv://u:p@cluster0.example.net/exp?retryWrites=true&w=majority",
         "mongodb+srv://u:p@cluster0.example.net/exp?retryWrites=true&w=majority", "exp", "jobs"),
        ("mongodb://localhost/exp/trials2", "mongodb://localhost/exp", "exp", "trials2"),
        ("mongodb://localhost/exp?collection=c1&w=1", "mongodb://localhost/exp?w=1", "exp", "c1"),
        ("mongo://localhost:1234/foo_db/jobs", "mongodb://localhost:1234/foo_db", "foo_db", "jobs"),
        ("mongo://u:p@localhost:1234/foo_db/other", "mongodb://u:p@localhost:1234/foo_db",
         "foo_db", "other"),
        ("localhost:1234/foo_db", "mongodb://localhost:1234/foo_db", "foo_db", "jobs"),
        ("db.example.org/foo_db/jobs2", "mongodb://db.example.org/foo_db", "foo_db", "jobs2"),
    ],
)
def test_accepted_forms(address, uri, db, coll):
    target = parse_mongo_uri(address)
    assert (target.uri, target.database, target.collection) == (uri, db, coll)


@pytest.mark.parametrize(
    "address, words",
    [
        ("mongodb://localhost:27017", "names no database"),
        ("mongodb://localhost:27017/", "names no database"),
        ("localhost:27017", "names no database"),
        ("http://localhost/db", "unsupported scheme"),
        ("mongodb://localhost/a/b/c", "expected /database or /database/collection"),
        ("", "no MongoDB address"),
    ],
)
def test_rejected_forms_say_why(address, words):
    with pytest.raises(InvalidMongoURI, match=words):
        parse_mongo_uri(address)


def test_passwords_are_hidden_in_messages():
    with pytest.raises(InvalidMongoURI) as info:
        parse_mongo_uri("mongodb://alice:s3cret@localhost:27017")
    assert "s3cret" not in str(info.value)
    assert redact_uri("mongodb://alice:s3cret@h/db") == "mongodb://alice:***@h/db"
    assert "s3cret" not in parse_mongo_uri("mongodb://alice:s3cret@h/db").display


def test_worker_options_come_from_the_environment(monkeypatch):
    from hyperq.mongo.cli import worker_command

    monkeypatch.setenv("HYPERQ_MONGO_URI", "mongodb://db.example.org:27017/hq")
    monkeypatch.setenv("HYPERQ_EXP_KEY", "exp7")
    monkeypatch.setenv("HYPERQ_MAX_JOBS", "3")
    monkeypatch.setenv("HYPERQ_HEARTBEAT", "0.5")
    ctx = worker_command.make_context("hyperq-worker", [])
    assert ctx.params["mongo"] == "mongodb://db.example.org:27017/hq"
    assert ctx.params["exp_key"] == "exp7"
    assert ctx.params["max_jobs"] == 3 and ctx.params["heartbeat"] == 0.5
    ctx = worker_command.make_context("hyperq-worker", ["--exp-key", "other"])
    assert ctx.params["exp_key"] == "other"  # the command line wins
