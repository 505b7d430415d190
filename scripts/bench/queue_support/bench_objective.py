"""The objective of the queue benchmark, importable by hyperq and hyperopt workers alike."""


def trivial(params):
    """A quadratic that returns at once: the benchmark measures the queue, not the objective."""
    return (params["x"] - 0.3) ** 2
