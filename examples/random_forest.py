"""Tune a RandomForestClassifier on scikit-learn's breast-cancer data set with TPE.

    python examples/random_forest.py [--max-evals 25] [--seed 0]

Written exactly as a hyperopt script would be, with ``hyperq`` in the imports.
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score

from hyperq import STATUS_OK, Trials, fmin, hp, space_eval, tpe
from hyperq.pyll import scope

SPACE = {
    "criterion": hp.choice("criterion", ["gini", "entropy", "log_loss"]),
    "n_estimators": scope.int(hp.quniform("n_estimators", 10, 150, 10)),
    "max_depth": hp.choice("max_depth", [None, scope.int(hp.quniform("depth", 2, 20, 1))]),
    "max_features": hp.choice("max_features", ["sqrt", "log2", hp.uniform("frac", 0.1, 1.0)]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-evals", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    X, y = load_breast_cancer(return_X_y=True)

    def objective(params: dict) -> dict:
        model = RandomForestClassifier(random_state=args.seed, n_jobs=1, **params)
        accuracy = cross_val_score(model, X, y, cv=3).mean()
        return {"loss": -accuracy, "status": STATUS_OK, "accuracy": accuracy}

    trials = Trials()
    best = fmin(objective, SPACE, algo=tpe.suggest, max_evals=args.max_evals, trials=trials,
                rstate=np.random.default_rng(args.seed))
    print("best trial values (choice -> index):", best)
    print("best parameters:", space_eval(SPACE, best))
    print(f"best cross-validated accuracy: {trials.best_trial['result']['accuracy']:.4f}"
          f" after {len(trials)} trials")


if __name__ == "__main__":
    main()
