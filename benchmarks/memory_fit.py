"""Peak memory (RSS) of ``fit`` and ``predict`` for float32 and float64 ``X``.

Each case runs in its own Python process: build ``X`` (n_samples x
n_features) directly in the case's dtype, warm up (import, a small fit and
predict), reset the kernel's peak-RSS counter, then time one ``fit`` (or one
``predict`` of all rows by a model fitted on 2,000 of them). "extra" is the
peak RSS during that call minus the RSS before it: the memory the call needs
on top of the data already held.

    python benchmarks/memory_fit.py                 # 200,000 x 100, 1 epoch
    python benchmarks/memory_fit.py --n-samples 1000000 --max-epochs 3
    python benchmarks/memory_fit.py --sparse --n-features 5000   # CSR, 1% density

With ``--sparse``, ``X`` is a float32 CSR matrix of the given density
(``--density``, default 0.01); its dense float32 copy would take
``n_samples * n_features * 4`` bytes, which the "dense MB" column shows.

Linux only (reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _rss import reset_peak as _reset_peak
from _rss import status_mb as _status_mb

SPARSE_CASES = {
    "fit sparse CSR float32": {"dtype": "float32", "phase": "fit", "sparse": True},
    "predict sparse CSR float32": {"dtype": "float32", "phase": "predict", "sparse": True},
}
CASES = {
    "fit float32": {"dtype": "float32", "phase": "fit"},
    "fit float64": {"dtype": "float64", "phase": "fit"},
    "fit float32, early_stopping": {"dtype": "float32", "phase": "fit", "early_stopping": True},
    "predict float32": {"dtype": "float32", "phase": "predict"},
    "predict float64": {"dtype": "float64", "phase": "predict"},
}


def _nbytes(X):
    if hasattr(X, "indptr"):  # CSR: what it holds, not its dense size
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes


def run_case(case, n_samples, n_features, max_epochs, batch_size, density):
    import numpy as np
    import scipy.sparse

    from sk_mmoe import MMoERegressor

    spec = {**CASES, **SPARSE_CASES}[case]
    rng = np.random.default_rng(0)
    if spec.get("sparse"):
        X = scipy.sparse.random(
            n_samples, n_features, density=density, format="csr", dtype=np.float32, rng=rng
        )
        head = X[:, :20].toarray()
        Y = np.column_stack([head[:, :10].sum(axis=1), np.sin(head[:, 10:]).sum(axis=1)])
    else:
        X = rng.standard_normal((n_samples, n_features), dtype=np.dtype(spec["dtype"]))
        Y = np.column_stack([X[:, :10].sum(axis=1), np.sin(X[:, 10:20]).sum(axis=1)])
    params = {
        "max_epochs": max_epochs,
        "batch_size": batch_size,
        "early_stopping": spec.get("early_stopping", False),
        "random_state": 0,
    }
    reg = MMoERegressor(**{**params, "max_epochs": 1}).fit(X[:2000], Y[:2000])
    reg.predict(X[:5000])

    resettable = _reset_peak()
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    if spec["phase"] == "fit":
        MMoERegressor(**params).fit(X, Y)
    else:
        reg.predict(X)
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    return {
        "X_mb": _nbytes(X) / 2**20,
        "dense_mb": n_samples * n_features * 4 / 2**20,
        "before_mb": before,
        "peak_mb": peak,
        "extra_mb": peak - before,
        "seconds": seconds,
        "peak_reset": resettable,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--sparse", action="store_true", help="X as a CSR matrix")
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument(
        "--case", choices=sorted({**CASES, **SPARSE_CASES}), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    sizes = [args.n_samples, args.n_features, args.max_epochs, args.batch_size, args.density]

    if args.case:  # child process: one measurement, as JSON
        print(json.dumps(run_case(args.case, *sizes)))
        return

    print(
        f"sk_mmoe MMoERegressor (defaults), X {args.n_samples:,} x {args.n_features}, "
        f"2 tasks, {args.max_epochs} epoch(s), batch_size {args.batch_size}"
    )
    header = f"{'case':<30} {'X MB':>7} {'dense MB':>9} {'before MB':>10} {'peak MB':>8} "
    print(header + f"{'extra MB':>9} {'extra/X':>8} {'s':>6}")
    names = ["n-samples", "n-features", "max-epochs", "batch-size", "density"]
    for case in SPARSE_CASES if args.sparse else CASES:
        command = [sys.executable, __file__, "--case", case] + [
            f"--{name}={value}" for name, value in zip(names, sizes)
        ]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        note = "" if r["peak_reset"] else "  (peak not resettable: includes setup)"
        print(
            f"{case:<30} {r['X_mb']:>7.0f} {r['dense_mb']:>9.0f} {r['before_mb']:>10.0f} "
            f"{r['peak_mb']:>8.0f} "
            f"{r['extra_mb']:>9.0f} {r['extra_mb'] / r['X_mb']:>8.2f} {r['seconds']:>6.1f}{note}"
        )


if __name__ == "__main__":
    main()
