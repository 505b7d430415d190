"""fmin with hyperopt 0.3.0's MongoTrials (run in a venv with hyperopt and pymongo 3.x).

    python hyperopt_driver.py MONGO_URL EXP_KEY N_TRIALS MAX_QUEUE_LEN

MONGO_URL is hyperopt's ``mongo://host:port/db/jobs``. Prints one JSON line with the result.
"""
import json
import sys
import time


def main(args):
    from hyperopt import fmin, hp, rand
    from hyperopt.mongoexp import MongoTrials

    from bench_objective import trivial

    url, exp_key, n, queue_len = args[0], args[1], int(args[2]), int(args[3])
    trials = MongoTrials(url, exp_key=exp_key)
    t0 = time.time()
    fmin(trivial, {"x": hp.uniform("x", -1, 1)}, algo=rand.suggest, max_evals=n,
         trials=trials, max_queue_len=queue_len, show_progressbar=False)
    print(json.dumps({"seconds": time.time() - t0, "trials": len(trials.trials)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
