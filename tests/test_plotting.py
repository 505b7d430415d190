"""hyperq.plotting: hyperopt's three plots keep their API; every plot saves without a display."""
import inspect

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hyperq import STATUS_FAIL, Trials, fmin, hp, plotting, rand  # noqa: E402

SPACE = {"x": hp.uniform("x", -2, 2), "lr": hp.loguniform("lr", -5, 0),
         "act": hp.choice("act", ["relu", "tanh"]),
         "depth": hp.choice("depth", [None, hp.uniformint("d", 1, 8)])}

PNG = b"\x89PNG\r\n\x1a\n"


def objective(p):
    if p["x"] > 1.7:
        return {"status": STATUS_FAIL, "failure": "diverged"}
    return p["x"] ** 2 + (0.3 if p["act"] == "tanh" else 0.0)


@pytest.fixture(scope="module")
def trials():
    t = Trials()
    fmin(objective, SPACE, algo=rand.suggest, max_evals=30, trials=t,
         rstate=np.random.default_rng(5), show_progressbar=False)
    return t


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


ALL = [
    ("main_plot_history", {"do_show": False}),
    ("main_plot_histogram", {"do_show": False}),
    ("main_plot_vars", {"do_show": False}),
    ("plot_history", {}),
    ("plot_histogram", {}),
    ("plot_vars", {}),
    ("plot_parallel_coordinates", {}),
    ("plot_loss_vs_params", {}),
    ("plot_param_importance", {}),
]


@pytest.mark.parametrize("name,kwargs", ALL)
def test_each_plot_saves_a_png_without_touching_pyplot(trials, tmp_path, name, kwargs):
    path = tmp_path / f"{name}.png"
    before = plt.get_fignums()
    fig = getattr(plotting, name)(trials, path=str(path), **kwargs)
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    assert plt.get_fignums() == before  # a standalone figure, no GUI, no global state
    assert fig.axes, "the figure should have drawn axes"


def test_format_follows_the_extension(trials, tmp_path):
    plotting.plot_parallel_coordinates(trials, path=str(tmp_path / "p.svg"))
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")


def test_hyperopt_signatures_are_kept():
    expected = {
        "main_plot_history": ["trials", "do_show", "status_colors", "title"],
        "main_plot_histogram": ["trials", "do_show", "title"],
        "main_plot_vars": ["trials", "do_show", "fontsize", "colorize_best", "columns",
                           "arrange_by_loss"],
    }
    for name, params in expected.items():
        sig = inspect.signature(getattr(plotting, name))
        assert list(sig.parameters)[:len(params)] == params, name
        assert sig.parameters["do_show"].default is True
    sig = inspect.signature(plotting.main_plot_vars)
    assert sig.parameters["fontsize"].default == 10 and sig.parameters["columns"].default == 5


def test_hyperopt_style_draws_on_the_current_pyplot_figure(trials, tmp_path):
    plt.figure()
    plotting.main_plot_history(trials, do_show=False)
    plt.savefig(tmp_path / "h.png")  # the way hyperopt users save it
    assert plt.gca().get_title() == "Loss History"
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG


def test_history_shows_statuses_and_best_so_far(trials):
    fig = plotting.plot_history(trials)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    n_ok = sum(r["status"] == "ok" for r in trials.results)
    assert f"ok ({n_ok})" in labels and "best so far" in labels
    assert n_ok < len(trials), "the fixture should contain failed trials"
    assert f"fail or error ({len(trials) - n_ok})" in labels


def test_vars_shows_choice_names_and_log_axes(trials):
    fig = plotting.main_plot_vars(trials, do_show=False, colorize_best=3, path="/dev/null")
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert sorted(axes) == ["act", "d", "depth", "lr", "x"]
    assert [t.get_text() for t in axes["act"].get_yticklabels()] == ["relu", "tanh"]
    assert axes["lr"].get_yscale() == "log"
    fig = plotting.plot_vars(trials, arrange_by_loss=True)
    assert fig.axes[0].get_xlabel() == "loss"


def test_loss_vs_params_marks_inactive_trials(trials):
    fig = plotting.plot_loss_vs_params(trials)
    axes = {ax.get_xlabel(): ax for ax in fig.axes}
    assert axes["lr"].get_xscale() == "log"
    n_inactive = int(trials.to_dataframe()["d"].isna().sum())
    assert n_inactive > 0
    # the title counts successful trials where d was inactive
    assert axes["d"].get_title().endswith("trials inactive")


def test_importance_plot_names_its_method(trials):
    fig = plotting.plot_param_importance(trials, method="anova")
    assert "epsilon-squared" in fig.axes[0].get_xlabel()
    bars = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert sorted(bars) == ["act", "d", "depth", "lr", "x"]


@pytest.mark.parametrize("name,kwargs", ALL)
def test_plots_of_no_trials_say_so(tmp_path, name, kwargs):
    fig = getattr(plotting, name)(Trials(), path=str(tmp_path / "e.png"), **kwargs)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(s.startswith(("no trial", "no successful", "no hyperparameters",
                             "parameter importance needs")) for s in texts), texts
