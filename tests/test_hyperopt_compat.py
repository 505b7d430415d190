"""hyperopt drop-in pieces of issue 12: install_as_hyperopt, hyperopt's Trials view, pyll nodes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mongo_server import mongo_base_uri  # noqa: F401  (fixture)

from hyperq import JOB_STATE_ERROR, Trials, fmin, hp, rand
from hyperq.base import HYPEROPT_LISTED_STATES

REPO = Path(__file__).resolve().parent.parent


def _boom(_):
    raise RuntimeError("objective failed")


def test_hyperopt_listed_states_hide_errored_trials_like_hyperopt():
    trials = Trials()
    trials.listed_states = HYPEROPT_LISTED_STATES
    assert fmin(_boom, hp.uniform("x", 0, 1), algo=rand.suggest, max_evals=2, trials=trials,
                catch_eval_exceptions=True, return_argmin=False, show_progressbar=False) is None
    assert len(trials) == 0
    assert [t["state"] for t in trials._dynamic_trials] == [JOB_STATE_ERROR] * 2
    # hyperq's default view keeps them in sight
    default = Trials()
    with pytest.raises(RuntimeError):
        fmin(_boom, hp.uniform("x", 0, 1), algo=rand.suggest, max_evals=2, trials=default,
             show_progressbar=False)
    assert len(default) == 1 and default.trials[0]["misc"]["error"]


FAKE_HYPEROPT = '''
import os
open(os.environ["FAKE_HYPEROPT_MARK"], "w").write("imported")
raise ImportError("the real hyperopt must not be imported")
'''

PROBE = '''
import sys
import hyperq
hyperq.install_as_hyperopt()
import hyperopt
# submodules are attributes without importing them, as after `import hyperopt` (Ray Tune
# calls hpo.utils.use_obj_for_literal_in_memo after `import hyperopt as hpo`)
assert callable(hyperopt.utils.use_obj_for_literal_in_memo) and hyperopt.criteria.UCB(0, 1, 1)
from hyperopt import fmin, tpe, hp, Trials, STATUS_OK, space_eval
from hyperopt.fmin import generate_trials_to_calculate
import hyperopt.pyll, hyperopt.pyll.base, hyperopt.pyll.stochastic, hyperopt.base
import hyperopt.tpe, hyperopt.rand, hyperopt.anneal, hyperopt.atpe, hyperopt.early_stop
import hyperopt.exceptions, hyperopt.hp, hyperopt.pyll_utils, hyperopt.utils
import hyperopt.criteria, hyperopt.mongoexp, hyperopt.progress
from hyperopt.mongoexp import MongoTrials, MongoJobs, MongoWorker, main_worker
from hyperopt.pyll import scope, as_apply
from hyperopt.exceptions import AllTrialsFailed, InvalidAnnotatedParameter
assert hyperopt is hyperq and callable(fmin) and fmin is hyperq.fmin
assert hyperopt.pyll.base is sys.modules["hyperq.pyll.base"]
assert sys.modules["hyperopt.tpe"] is sys.modules["hyperq.tpe"]
best = fmin(lambda x: (x - 1) ** 2, hp.uniform("x", -3, 3), algo=tpe.suggest, max_evals=15,
            show_progressbar=False, rstate=__import__("numpy").random.default_rng(0))
assert abs(best["x"] - 1) < 1.5, best
try:
    import hyperopt.no_such_module
except ImportError:
    pass
else:
    raise AssertionError("a module hyperq lacks must not import")
print("ALIAS-OK", sorted(m for m in sys.modules if m.startswith("hyperopt"))[:3])
'''


def test_install_as_hyperopt_serves_hyperq_and_never_loads_the_real_hyperopt(tmp_path):
    # A fake `hyperopt` package first on sys.path records being imported: after
    # install_as_hyperopt() every hyperopt import must be answered by hyperq instead.
    fake = tmp_path / "site" / "hyperopt"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_HYPEROPT)
    for sub in ("pyll", "tpe", "base", "fmin", "mongoexp", "spark"):
        if sub == "pyll":
            (fake / "pyll").mkdir()
            (fake / "pyll" / "__init__.py").write_text(FAKE_HYPEROPT)
        else:
            (fake / f"{sub}.py").write_text(FAKE_HYPEROPT)
    mark = tmp_path / "imported"
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{REPO}", "FAKE_HYPEROPT_MARK": str(mark),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    # Without the switch the fake one is what `import hyperopt` finds (the test can fail).
    plain = subprocess.run([sys.executable, "-c", "import hyperopt"], env=env,
                           capture_output=True, text=True)
    assert plain.returncode != 0 and mark.exists()
    mark.unlink()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ALIAS-OK" in proc.stdout
    assert not mark.exists(), "install_as_hyperopt() let the real hyperopt load"


def test_install_as_hyperopt_refuses_when_the_real_hyperopt_is_loaded(tmp_path):
    fake = tmp_path / "hyperopt"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    code = "import hyperopt, hyperq\ntry:\n    hyperq.install_as_hyperopt()\nexcept RuntimeError " \
           "as e:\n    print('REFUSED', e)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"})
    assert "REFUSED" in proc.stdout and "before anything imports hyperopt" in proc.stdout


def test_dict_nodes_have_named_args_pairs_libraries_can_extend():
    from hyperq.pyll import as_apply
    from hyperq.space import SearchSpace

    node = as_apply({"a": hp.uniform("a", 0, 1), "b": 2})
    assert node.name == "dict" and [k for k, _ in node.named_args] == ["a", "b"]
    assert node.named_args[0][1].name == "hyperopt_param"
    assert node.named_args[0][1].arg["label"].obj == "a"
    assert node.named_args[0][1].arg["obj"].name == "uniform"
    node.named_args.append(["c", as_apply(hp.choice("c", [1, 2]))])
    space = SearchSpace(node)
    assert space.labels == ["a", "c"]
    assert space.evaluate({"a": 0.5, "c": 1}) == {"a": 0.5, "b": 2, "c": 2}


def test_scope_hyperopt_param_builds_a_searchable_parameter():
    from hyperq.pyll import scope
    from hyperq.pyll.stochastic import sample

    x = scope.hyperopt_param("x", scope.uniform(2, 3))
    assert 2 <= sample({"x": x}, np.random.default_rng(0))["x"] <= 3
    best = fmin(lambda p: p["x"], {"x": x}, algo=rand.suggest, max_evals=5,
                show_progressbar=False, rstate=np.random.default_rng(0))
    assert 2 <= best["x"] <= 3


def test_hyperopt_mongo_worker_options_map_to_hyperq_worker():
    from hyperq.mongoexp import hyperopt_worker_argv

    assert hyperopt_worker_argv([]) == ["--mongo", "localhost/hyperopt", "--idle-timeout",
                                      "120.0"]
    argv = hyperopt_worker_argv(["--mongo", "h:1234/db", "--exp-key", "e", "--max-jobs", "3",
                                 "--workdir", "/tmp/w", "--poll-interval", "0.5",
                                 "--reserve-timeout", "9", "--last-job-timeout", "5",
                                 "--max-consecutive-failures", "2", "--no-subprocesses"])
    assert argv == ["--mongo", "h:1234/db", "--exp-key", "e", "--max-jobs", "3", "--workdir",
                    "/tmp/w", "--poll-interval", "0.5", "--idle-timeout", "9.0"]
    with pytest.raises(SystemExit):
        hyperopt_worker_argv(["--no-such-option"])


HYPEROPT_STYLE_OBJECTIVE = '''
import os


def objective(params):
    import hyperopt  # imported in the worker only; hyperq-mongo-worker serves it with hyperq

    with open(os.environ["HYPERQ_TEST_LOG"], "a") as fh:
        fh.write(hyperopt.__name__ + "\\n")
    return {"loss": params["x"] ** 2, "status": hyperopt.STATUS_OK}
'''


@pytest.mark.mongo
@pytest.mark.timeout(180)
def test_hyperopt_mongo_worker_command_serves_mongotrials(mongo_base_uri, tmp_path,
                                                          monkeypatch):
    """`python -m hyperq.mongoexp` (hyperq-mongo-worker) with hyperopt's options, real server,
    evaluating an objective that imports hyperopt."""
    import importlib
    import uuid

    from mongo_server import with_database, worker_env  # noqa: F811

    from hyperq.mongoexp import MongoJobs, MongoTrials

    (tmp_path / "hyperopt_style_objective.py").write_text(HYPEROPT_STYLE_OBJECTIVE)
    monkeypatch.syspath_prepend(str(tmp_path))
    objective = importlib.import_module("hyperopt_style_objective").objective
    uri = with_database(mongo_base_uri, "t_compat_" + uuid.uuid4().hex[:8])
    log_path = tmp_path / "evals.log"
    env = worker_env(HYPERQ_TEST_LOG=str(log_path))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperq.mongoexp", "--mongo", uri, "--exp-key", "compat",
         "--max-jobs", "4", "--reserve-timeout", "60", "--poll-interval", "0.05"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        trials = MongoTrials(uri, exp_key="compat")
        fmin(objective, {"x": hp.uniform("x", -5, 5)}, algo=rand.suggest, max_evals=4,
             trials=trials, show_progressbar=False)
        assert proc.wait(timeout=60) == 0  # --max-jobs 4 reached
        assert log_path.read_text().split() == ["hyperq"] * 4
        assert MongoJobs.new_from_connection_str(uri).count({"exp_key": "compat"}) == 4
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fmin_iter_runs_in_steps_like_hyperopt_sklearn_uses_it():
    from hyperq import Domain, FMinIter, fmin_pass_expr_memo_ctrl, tpe
    from hyperq.pyll import rec_eval

    @fmin_pass_expr_memo_ctrl
    def objective(expr, memo, ctrl):
        point = rec_eval(expr, memo=memo)
        return (point["x"] - 1) ** 2

    domain = Domain(objective, {"x": hp.uniform("x", -3, 3)})
    assert domain.pass_expr_memo_ctrl
    trials = Trials()
    it = FMinIter(tpe.suggest, domain, trials, rstate=np.random.default_rng(0), max_evals=12,
                  show_progressbar=False)
    it.run(3)
    assert len(trials) == 3
    assert next(it) is trials and len(trials) == 4
    it.exhaust()
    assert len(trials) == 12
    assert abs(trials.argmin["x"] - 1) < 1.5
    with pytest.raises(StopIteration):
        next(it)
    bad = FMinIter(tpe.suggest, Domain(_boom, hp.uniform("x", 0, 1)), Trials(),
                   rstate=np.random.default_rng(0), max_evals=2, show_progressbar=False)
    bad.catch_eval_exceptions = True
    bad.exhaust()
    assert [t["state"] for t in bad.trials.trials] == [JOB_STATE_ERROR] * 2



# A space pickled by hyperq 0.1.0 before issue 12 (trials_save_file, MongoDB domains) with
#   {"lr": hp.loguniform("lr", log(1e-4), log(1e-1)),
#    "layers": scope.int(hp.quniform("layers", 1, 4, 1)),
#    "model": hp.choice("model", [{"kind": "mlp", "d": hp.uniform("d", 0, 0.5)},
#                                 ["lin", 1 + hp.randint("r", 3)]]),
#    "pair": (hp.normal("n", 0, 1), "k")}
OLD_SPACE_PICKLE = (
    "gASVLQMAAAAAAAB9lCiMAmxylIwQaHlwZXJxLnB5bGwuYmFzZZSMBVBhcmFtlJOUKYGUfZQojAVsYWJlbJRoAYwE"
    "ZGlzdJSMGWh5cGVycS5weWxsLmRpc3RyaWJ1dGlvbnOUjAdVbmlmb3JtlJOUKYGUfZQojAdpbnRlZ2VylImMAXGU"
    "TowDbG9nlIiMA2xvd5RHwCJrsbu1VRWMBGhpZ2iUR8ACa7G7tVUVdWJ1YowGbGF5ZXJzlGgCjAVBcHBseZSTlCmB"
    "lH2UKIwEbmFtZZSMA2ludJSMCHBvc19hcmdzlF2UaAQpgZR9lChoB2gTaAhoCymBlH2UKGgOiWgPRz/wAAAAAAAA"
    "aBCJaBFHP/AAAAAAAABoEkdAEAAAAAAAAHVidWJhjApuYW1lZF9hcmdzlH2UdWKMBW1vZGVslGgCjAZTd2l0Y2iU"
    "k5QpgZR9lCiMBWluZGV4lGgEKYGUfZQoaAdoImgIaAmMC0NhdGVnb3JpY2FslJOUKYGUfZQoaA6JjAVwcm9ic5RH"
    "P+AAAAAAAABHP+AAAAAAAACGlHVidWKMB29wdGlvbnOUXZQoaBUpgZR9lChoGIwEZGljdJRoGl2UKGgCjAdMaXRl"
    "cmFslJOUKYGUTn2UjAV2YWx1ZZSMBGtpbmSUjAFklIaUc4aUYmg3KYGUTn2UaDqMA21scJRzhpRiaAQpgZR9lCho"
    "B2g8aAhoCymBlH2UKGgOiWgPTmgQiWgRRwAAAAAAAAAAaBJHP+AAAAAAAAB1YnViZWggfZR1YmgVKYGUfZQoaBiM"
    "BGxpc3SUaBpdlChoNymBlE59lGg6jANsaW6Uc4aUYmgVKYGUfZQoaBiMA2FkZJRoGl2UKGg3KYGUTn2UaDpLAXOG"
    "lGJoBCmBlH2UKGgHjAFylGgIaAmMB1JhbmRJbnSUk5QpgZR9lChoDoloEUsAaBJLA3VidWJlaCB9lHViZWggfZR1"
    "YmV1YowEcGFpcpRoBCmBlH2UKGgHjAFulGgIaAmMBk5vcm1hbJSTlCmBlH2UKGgOiWgPTmgQiYwCbXWURwAAAAAA"
    "AAAAjAVzaWdtYZRHP/AAAAAAAAB1YnVijAFrlIaUdS4="
)


def test_spaces_pickled_before_the_node_model_change_still_load_and_evaluate():
    import base64
    import pickle

    from hyperq.space import SearchSpace

    space = SearchSpace(pickle.loads(base64.b64decode(OLD_SPACE_PICKLE)))
    assert sorted(space.labels) == ["d", "layers", "lr", "model", "n", "r"]
    assert space.conditions["d"] == [(("model", 0),)]
    values = {"lr": 0.01, "layers": 2.0, "model": 1, "r": 2, "n": 0.5}
    assert space.evaluate(values) == {"lr": 0.01, "layers": 2, "model": ["lin", 3],
                                      "pair": (0.5, "k")}
    assert space.evaluate({**values, "model": 0, "d": 0.25})["model"] == {"kind": "mlp",
                                                                          "d": 0.25}
    assert space.expr.name == "dict" and space.expr.named_args[0][0] == "lr"
    best = fmin(lambda p: p["lr"], space.expr, algo=rand.suggest, max_evals=3,
                show_progressbar=False, rstate=np.random.default_rng(0))
    assert set(best) >= {"lr", "layers", "model", "n"}


def test_driving_suggest_by_hand_as_ray_tune_does():
    """The loop of Ray Tune's HyperOptSearch: suggest one trial, evaluate the space through a
    memo, then mark the document DONE by hand."""
    import functools

    import hyperq as hpo
    from hyperq.fmin import generate_trials_to_calculate

    space = {"x": hp.uniform("x", -5, 5), "m": hp.choice("m", ["a", "b"])}
    domain = hpo.base.Domain(lambda spc: spc, space)
    trials = generate_trials_to_calculate([{"x": 1.0, "m": 0}])
    algo = functools.partial(hpo.tpe.suggest, n_startup_jobs=5)
    rstate = np.random.default_rng(0)
    seen = []
    for i in range(20):
        if i == 0:
            trial = trials.trials[0]
        else:
            new_ids = trials.new_trial_ids(1)
            trials.refresh()
            docs = algo(new_ids, domain, trials, rstate.integers(2**31 - 1))
            trials.insert_trial_docs(docs)
            trials.refresh()
            trial = trials.trials[-1]
        config = hpo.base.spec_from_misc(trial["misc"])
        ctrl = hpo.base.Ctrl(trials, current_trial=trial)
        memo = domain.memo_from_config(config)
        hpo.utils.use_obj_for_literal_in_memo(domain.expr, ctrl, hpo.base.Ctrl, memo)
        point = hpo.pyll.rec_eval(domain.expr, memo=memo,
                                  print_node_on_error=domain.rec_eval_print_node_on_error)
        seen.append(point)
        trial["state"] = hpo.JOB_STATE_DONE
        trial["result"] = {"loss": (point["x"] - 2) ** 2 + (point["m"] == "b"), "status": "ok"}
        trials.refresh()
    assert seen[0] == {"x": 1.0, "m": "a"}
    assert len(trials) == 20 and trials.best_trial["result"]["loss"] < 0.5
    switch = space["m"]  # Ray reads the options of a choice from the node
    assert switch.name == "switch" and [a.obj for a in switch.pos_args[1:]] == ["a", "b"]


OBJECTIVE_MODULE = '''
from hyperopt import STATUS_OK  # a module written for hyperopt


def objective(params):
    return {"loss": (params["x"] - 1) ** 2, "status": STATUS_OK}
'''

PROCESS_DRIVER = '''
import hyperq
hyperq.install_as_hyperopt()
import numpy as np
from hyperopt import fmin, hp, rand
from hyperq import ProcessTrials
import hyperopt_objective

trials = ProcessTrials(n_jobs=2)
fmin(hyperopt_objective.objective, {"x": hp.uniform("x", -3, 3)}, algo=rand.suggest,
     max_evals=4, trials=trials, show_progressbar=False, rstate=np.random.default_rng(0))
print("STATES", sorted({t["state"] for t in trials.trials}), len(trials))
'''


def test_worker_processes_of_a_driver_that_installed_the_alias_import_hyperopt_modules(
        tmp_path):
    # ProcessTrials' workers are fresh interpreters: they unpickle the objective, whose module
    # imports hyperopt; HYPERQ_AS_HYPEROPT=1 (set by install_as_hyperopt) makes them alias too.
    (tmp_path / "hyperopt_objective.py").write_text(OBJECTIVE_MODULE)
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", PROCESS_DRIVER], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STATES [2] 4" in proc.stdout, proc.stdout + proc.stderr[-2000:]
