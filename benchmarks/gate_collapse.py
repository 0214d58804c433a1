"""Gate collapse, measured: a setting where MMoE gates collapse, and what prevents it.

Data: ``carData/MplsStops`` as in ``categorical.py`` (43,699 stops, two
binary tasks ``personSearch`` and ``vehicleSearch``, categorical columns
embedded), a random 80/20 split per seed. Model: ``MMoEClassifier`` with 8
experts and the defaults otherwise, 10 epochs (no early stopping). At
``lr=0.03`` the gates collapse: each row's gate puts nearly all its weight
on one expert (mean gate entropy about 0.15 nats of a possible log 8 =
2.08), and some tasks' gates pick the same expert for almost every row
(mean weight of the top expert up to 0.87). At the default ``lr=1e-3`` they do not.

Variants, each paired by seed with the collapsing baseline:

- ``lr=1e-3``: the default learning rate (the reference without collapse);
- ``gate_dropout`` 0.1 and 0.3;
- ``gate_entropy_bonus`` 0.01 and 0.1;
- ``lr=1e-3, gate_entropy_bonus=0.01``: does the bonus hurt where the gates
  do not collapse?
- with ``--rejected``, two candidates that are *not* in the library,
  patched into its private gate code here for the measurement: a gate
  softmax temperature (logits divided by 2 or 5, as NVIDIA Merlin offers),
  and a load-balancing penalty (0.01 times, per gate, the KL divergence
  from the uniform distribution to the gate's mean weights over the batch).

Prints, per variant, the mean gate entropy (nats) and the mean weight of the
top expert per task (``gate_summary`` on the test rows), the test ROC AUC per
task, and the per-seed AUC difference from the baseline (mean and 95%
t-interval).

    python benchmarks/gate_collapse.py               # 8 seeds (about 25 minutes on 2 cores)
    python benchmarks/gate_collapse.py --rejected    # also the rejected candidates
    python benchmarks/gate_collapse.py --quick       # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from categorical import TASKS, load  # noqa: E402

BASE = {
    "n_experts": 8,
    "lr": 0.03,
    "max_epochs": 10,
    "early_stopping": False,
    "gate_collapse_threshold": None,
}
VARIANTS = {
    "lr=0.03 (collapses)": {},
    "lr=1e-3 (default)": {"lr": 1e-3},
    "gate_dropout=0.1": {"gate_dropout": 0.1},
    "gate_dropout=0.3": {"gate_dropout": 0.3},
    "gate_entropy_bonus=0.01": {"gate_entropy_bonus": 0.01},
    "gate_entropy_bonus=0.1": {"gate_entropy_bonus": 0.1},
    "lr=1e-3, gate_entropy_bonus=0.01": {"lr": 1e-3, "gate_entropy_bonus": 0.01},
}
#: candidates not in the library: name -> patch settings
REJECTED = {
    "temperature 2 (not in the library)": {"temperature": 2.0},
    "temperature 5 (not in the library)": {"temperature": 5.0},
    "load balancing 0.01 (not in the library)": {"balance": 0.01},
}
PATCH = {"temperature": 1.0, "balance": 0.0}


def install_rejected_candidates():
    """Patch a gate temperature and a load-balancing penalty into the private MMoE code.

    For this measurement only: ``PATCH`` sets them, per fit.
    """
    import sk_mmoe.architectures._gated as gated
    from sk_mmoe.nn._modules import MultiTaskModule

    softmax, mix = gated._softmax, gated.MixtureOfExperts._mix

    def tempered(logits):
        return softmax(logits / PATCH["temperature"])

    def balanced_mix(self, logits):
        weights = mix(self, logits)  # (B, G, E)
        if self.training and PATCH["balance"]:
            usage = weights.mean(0).clamp_min(1e-12)  # (G, E)
            # KL(uniform || usage) per gate, summed over the gates
            kl = -usage.log().mean(-1) - math.log(weights.shape[-1])
            self._balance = PATCH["balance"] * kl.sum()
        return weights

    auxiliary = MultiTaskModule.auxiliary_loss

    def with_balance(self):
        term = auxiliary(self)
        balance = self.__dict__.pop("_balance", None)
        if balance is None:
            return term
        return balance if term is None else term + balance

    gated._softmax = tempered
    gated.MixtureOfExperts._mix = balanced_mix
    gated.MixtureOfExperts.auxiliary_loss = with_balance


def main(argv=None):
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from sk_mmoe import MMoEClassifier
    from sk_mmoe.model_selection import mean_confidence_interval

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--rejected", action="store_true", help="also the rejected candidates")
    parser.add_argument("--quick", action="store_true", help="3,000 rows, 2 seeds, 2 epochs")
    parser.add_argument("--json", help="also write every record to this file")
    args = parser.parse_args(argv)
    variants = {name: (params, {}) for name, params in VARIANTS.items()}
    if args.rejected:
        install_rejected_candidates()
        variants.update({name: ({}, patch) for name, patch in REJECTED.items()})
    X, Y = load(3000 if args.quick else None)
    seeds = 2 if args.quick else args.seeds
    base = {**BASE, "max_epochs": 2} if args.quick else BASE
    records = []
    for seed in range(seeds):
        train, test = train_test_split(np.arange(len(X)), test_size=0.2, random_state=seed)
        for name, (params, patch) in variants.items():
            PATCH.update({"temperature": 1.0, "balance": 0.0, **patch})
            started = time.perf_counter()
            model = MMoEClassifier(**{**base, **params, "random_state": seed})
            model.fit(X.iloc[train], Y.iloc[train])
            summary = model.gate_summary(X.iloc[test])
            proba = model.predict_proba(X.iloc[test])
            record = {
                "variant": name,
                "seed": seed,
                "entropy": summary["entropy"].tolist(),
                "top_weight": summary["top_weight"].tolist(),
                "auc": [roc_auc_score(Y.iloc[test, k], proba[k][:, 1]) for k in range(len(TASKS))],
                "fit_s": time.perf_counter() - started,
            }
            records.append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))

    by = {}
    for r in records:
        by.setdefault(r["variant"], {})[r["seed"]] = r
    baseline = by[next(iter(variants))]
    print(
        f"carData/MplsStops, MMoE with 8 experts, {base['max_epochs']} epochs, {seeds} seeds; "
        "gate entropy in nats (uniform over 8 experts: 2.08); top = mean weight of the "
        "top expert (max over seeds); AUC difference from lr=0.03 per seed, mean [95% interval]"
    )
    print()
    print(
        "| variant | gate entropy | top expert weight | "
        + " | ".join(f"{t} AUC (difference)" for t in TASKS)
        + " |"
    )
    print("|---" * (3 + len(TASKS)) + "|")
    for name, runs in by.items():
        seeds_ = sorted(runs)
        entropy = np.array([runs[s]["entropy"] for s in seeds_])
        top = np.array([runs[s]["top_weight"] for s in seeds_])
        auc = np.array([runs[s]["auc"] for s in seeds_])
        cells = []
        for k in range(len(TASKS)):
            diff = auc[:, k] - np.array([baseline[s]["auc"][k] for s in seeds_])
            mean, low, high = mean_confidence_interval(diff)
            cells.append(f"{auc[:, k].mean():.4f} ({mean:+.4f} [{low:+.4f}, {high:+.4f}])")
        print(
            f"| {name} | {' / '.join(f'{e:.2f}' for e in entropy.mean(0))} | "
            f"{' / '.join(f'{t:.2f}' for t in top.mean(0))} (max {top.max():.2f}) | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
