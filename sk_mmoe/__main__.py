"""``python -m sk_mmoe`` (or ``sk-mmoe``): the synthetic experiment of Ma et al. (2018).

Shared-Bottom, one-gate MoE, MMoE and PLE (Tang et al., 2020) are trained with
the same budget on :func:`~sk_mmoe.datasets.make_mmoe_tasks` tasks at several
correlations and several seeds. The command prints the parameter counts, a
markdown table of the test MSE and one of paired per-seed differences with 95%
intervals, and writes a figure: the training loss per model and correlation
(the paper's figure 4) next to the test MSE per correlation.

Only the public API is used, so this module doubles as an example.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

#: the paper's three models, then PLE, in the order they are shown; "MoE" has one gate
MODELS = ("Shared-Bottom", "MoE", "MMoE", "PLE")
#: the paired per-seed differences of test MSE reported: ``(a, b)`` is a - b
DIFFERENCES = (("MMoE", "Shared-Bottom"), ("MMoE", "MoE"), ("PLE", "MMoE"))


@dataclass
class Setup:
    """Everything that defines one run of the experiment.

    The default is a scaled-down version of the paper's experiment that runs
    in about a minute and a half on two CPU cores; :meth:`paper` is the
    paper-sized one and :meth:`quick` a smoke test. Each seed fixes the data
    (the same ``X``, directions and sine terms at every correlation) and the
    initialisation, so the models are compared on the same problems.

    Choices that differ from the paper, and why:

    - ``n_features=10`` instead of 100 (``paper()`` keeps 100): with 100
      inputs and the rows two minutes allow, every model is limited by how
      well it can find the task directions from too few rows, and the
      comparison measures overfitting rather than task relationships.
    - ``scale=2``: the tasks are harder (the sine terms oscillate twice as
      fast), so the models' shared capacity matters; at ``scale=1`` all three
      reach the noise floor and tie.
    - ``activation="elu"``: with ReLU, a task tower of 8 units sometimes
      dies at initialisation and its task stays at a constant prediction,
      a failure unrelated to the architectures that swamps the comparison.
    - The Shared-Bottom's width is set so that it has as many parameters as
      the MMoE (the paper used a bottom of 113 units for the same reason).
    - PLE, the fourth model, has two levels of 2 shared experts and 1 expert
      per task (4 experts a level, 8 in all, as many as the MMoE), their
      width set for the MMoE's parameter count. PLE rather than CGC: PLE is
      the model of Tang et al. and the one they claim beats MMoE at every
      correlation; CGC is its one-level case.
    """

    correlations: tuple = (0.5, 0.9, 1.0)
    n_seeds: int = 12
    n_train: int = 10_000
    n_test: int = 2_000
    n_features: int = 10
    n_sin: int = 5
    scale: float = 2.0
    noise: float = 0.1
    n_experts: int = 8
    expert_units: int = 16
    tower_units: int = 8
    bottom_units: int | None = None  # None: match the MMoE's parameter count
    ple_levels: int = 2
    ple_shared_experts: int = 2
    ple_task_experts: int = 1
    ple_units: int | None = None  # None: match the MMoE's parameter count
    activation: str = "elu"
    max_epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-3
    first_seed: int = 0

    @classmethod
    def paper(cls, **changes):
        """The paper's sizes: d=100, 8 experts of 16 units, towers of 8."""
        values = dict(
            n_seeds=20,
            n_train=50_000,
            n_test=10_000,
            n_features=100,
            max_epochs=60,
            batch_size=512,
        )
        return cls(**{**values, **changes})

    @classmethod
    def quick(cls, **changes):
        """A few seconds: for tests, not for conclusions."""
        values = dict(n_seeds=1, n_train=300, n_test=100, max_epochs=2, batch_size=128)
        return cls(**{**values, **changes})

    def tasks(self, correlation, seed):
        """``(X_train, Y_train, X_test, Y_test)`` of one seed at one correlation.

        The same seed gives the same X and sine terms at every correlation.
        """
        from sk_mmoe.datasets import make_mmoe_tasks

        X, Y = make_mmoe_tasks(
            self.n_train + self.n_test,
            n_features=self.n_features,
            correlation=correlation,
            n_sin=self.n_sin,
            scale=self.scale,
            noise=self.noise,
            random_state=seed,
        )
        n = self.n_train
        return X[:n], Y[:n], X[n:], Y[n:]


def model_params(setup, n_tasks=2):
    """Estimator parameters of each model; the Shared-Bottom and PLE are sized to match.

    The bottom's width is chosen so that the Shared-Bottom has about as many
    parameters as the MMoE (the paper did the same: a bottom of 113 units
    against 8 experts of 16), and so is the width of PLE's experts.
    """
    common = dict(
        tower_units=(setup.tower_units,),
        activation=setup.activation,
        max_epochs=setup.max_epochs,
        batch_size=setup.batch_size,
        lr=setup.lr,
        # the paper trains a fixed number of epochs; the defaults stop early
        early_stopping=False,
    )
    moe = dict(common, n_experts=setup.n_experts, expert_units=(setup.expert_units,))
    params = {
        "MMoE": dict(moe, architecture="mmoe"),
        "MoE": dict(moe, architecture="moe"),
    }
    target = count_parameters(params["MMoE"], setup.n_features, n_tasks)
    bottom = dict(common, architecture="shared_bottom")
    width = setup.bottom_units or _matching_width(bottom, target, setup.n_features, n_tasks)
    params["Shared-Bottom"] = dict(bottom, expert_units=(width,))
    ple = dict(
        common,
        architecture="ple",
        n_levels=setup.ple_levels,
        n_experts=setup.ple_shared_experts,
        n_task_experts=setup.ple_task_experts,
    )
    width = setup.ple_units or _matching_width(ple, target, setup.n_features, n_tasks)
    params["PLE"] = dict(ple, expert_units=(width,))
    return {name: params[name] for name in MODELS}


def _matching_width(params, target, n_features, n_tasks):
    """The expert width giving ``params`` the parameter count closest to ``target``.

    The count is a polynomial of degree 2 in the width (degree 1 with a single
    level of experts): three probes give it exactly.
    """
    widths = np.array([1.0, 2.0, 3.0])
    counts = [
        count_parameters(dict(params, expert_units=(int(w),)), n_features, n_tasks) for w in widths
    ]
    a, b, c = np.polyfit(widths, counts, 2)
    roots = np.roots([a, b, c - target]) if abs(a) > 1e-9 else np.array([(target - c) / b])
    best = max(float(r.real) for r in roots if abs(r.imag) < 1e-9)
    candidates = {max(1, math.floor(best)), max(1, math.ceil(best))}
    return min(candidates, key=lambda w: abs(a * w * w + b * w + c - target))


def count_parameters(params, n_features, n_tasks=2):
    """Trainable parameters of the network an estimator with ``params`` builds."""
    from sk_mmoe import MMoERegressor

    rng = np.random.RandomState(0)
    X, Y = rng.standard_normal((4, n_features)), rng.standard_normal((4, n_tasks))
    est = MMoERegressor(**{**params, "max_epochs": 1, "random_state": 0}).fit(X, Y)
    return sum(p.numel() for p in est.module_.parameters() if p.requires_grad)


def run_experiment(setup, *, progress=True, n_jobs=None):
    """Train every model at every correlation and seed.

    Every fit computes on one thread (``n_jobs=1``: these networks are too
    small to gain from more, and a thread count fixed per fit keeps the
    results the same on every machine); ``n_jobs`` processes run the
    correlation-seed pairs side by side. A fit's result depends only on its
    seed, so the records are the same whatever ``n_jobs``.

    Parameters
    ----------
    setup : Setup
    progress : bool, default=True
        Show a tqdm progress bar on stderr.
    n_jobs : int or None, default=None
        Processes (joblib's meaning: -1 one per core this process may use).
        None: one per such core, one for a run as small as
        :meth:`Setup.quick`.

    Returns
    -------
    records : list of dict
        One per fit: ``model``, ``correlation``, ``seed``, ``test_mse``
        (mean over tasks, original units) and ``train_loss`` (per epoch, the
        training objective on standardised targets).
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    params = model_params(setup)
    seeds = range(setup.first_seed, setup.first_seed + setup.n_seeds)
    pairs = [(correlation, seed) for correlation in setup.correlations for seed in seeds]
    if n_jobs is None:
        n_jobs = 1 if setup.n_train * setup.max_epochs <= _ONE_PROCESS_WORK else -1
    records = []
    n_fits = len(pairs) * len(MODELS)
    with tqdm(total=n_fits, desc="training", unit="fit", disable=not progress) as bar:
        # results in order, as they come; loky gives each worker its share of the cores
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
        for pair_records in parallel(delayed(_fit_pair)(setup, params, *pair) for pair in pairs):
            records.extend(pair_records)
            bar.update(len(pair_records))
    return records


#: ``run_experiment(n_jobs=None)`` runs in this process up to this many
#: training rows x epochs (starting worker processes takes seconds)
_ONE_PROCESS_WORK = 100_000


def _fit_pair(setup, params, correlation, seed):
    """The records of every model at one correlation and seed (see :func:`run_experiment`)."""
    from sk_mmoe import MMoERegressor

    X_train, Y_train, X_test, Y_test = setup.tasks(correlation, seed)
    records = []
    for name in MODELS:
        est = MMoERegressor(**params[name], random_state=seed, n_jobs=1)
        est.fit(X_train, Y_train)
        mse = np.mean((est.predict(X_test) - Y_test) ** 2)
        records.append(
            dict(
                model=name,
                correlation=correlation,
                seed=seed,
                test_mse=float(mse),
                train_loss=np.asarray(est.net_.history[:, "train_loss"]),
            )
        )
    return records


def summarize(records):
    """Mean, standard error, per-seed wins and paired differences of the test MSE.

    Returns
    -------
    summary : dict
        ``summary[model][correlation]`` is ``(mean, standard error)`` for each
        model in the records; ``summary["wins"][correlation]`` counts the seeds
        where each model had the lowest test MSE;
        ``summary["differences"][(a, b)][correlation]`` is the mean over seeds
        of ``a``'s test MSE minus ``b``'s on the same seed, with the 95%
        t-interval of that mean: ``(mean, low, high)`` (for each pair of
        ``DIFFERENCES`` in the records).
    """
    from sk_mmoe.model_selection import mean_confidence_interval

    correlations = sorted({r["correlation"] for r in records})
    models = [name for name in MODELS if any(r["model"] == name for r in records)]
    summary = {name: {} for name in models}
    summary["wins"] = {}
    pairs = [(a, b) for a, b in DIFFERENCES if a in models and b in models]
    summary["differences"] = {pair: {} for pair in pairs}
    for p in correlations:
        runs = [r for r in records if r["correlation"] == p]
        by_seed = {}
        for r in runs:
            by_seed.setdefault(r["seed"], {})[r["model"]] = r["test_mse"]
        for name in models:
            mse = np.array([r["test_mse"] for r in runs if r["model"] == name])
            sem = mse.std(ddof=1) / math.sqrt(len(mse)) if len(mse) > 1 else float("nan")
            summary[name][p] = (float(mse.mean()), float(sem))
        wins = dict.fromkeys(models, 0)
        for seed in sorted(by_seed):
            wins[min(by_seed[seed], key=by_seed[seed].get)] += 1
        summary["wins"][p] = wins
        for a, b in pairs:
            diff = np.array([m[a] - m[b] for m in by_seed.values() if a in m and b in m])
            summary["differences"][(a, b)][p] = mean_confidence_interval(diff)
    return summary


def _models(summary):
    return [name for name in MODELS if name in summary]


def markdown_table(summary, n_parameters=None):
    """The summary as a markdown table: one row per model, one column per correlation."""
    correlations = sorted(summary["wins"])
    models = _models(summary)
    header = ["model"] + (["parameters"] if n_parameters else [])
    header += [f"p = {float(p)}" for p in correlations]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in models:
        row = [name] + ([f"{n_parameters[name]:,}"] if n_parameters else [])
        for p in correlations:
            mean, sem = summary[name][p]
            best = min(summary[m][p][0] for m in models) == mean
            cell = f"{mean:.4f}" + ("" if math.isnan(sem) else f" ± {sem:.4f}")
            row.append(f"**{cell}**" if best else cell)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def differences_table(summary):
    """Paired per-seed differences as a markdown table: mean and 95% interval per correlation.

    A negative difference ``a - b`` means ``a`` had the lower test MSE; an
    interval that excludes 0 means the seeds agree on the sign.
    """
    correlations = sorted(summary["wins"])
    header = ["paired difference"] + [f"p = {float(p)}" for p in correlations]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (a, b), by_p in summary["differences"].items():
        cells = []
        for p in correlations:
            mean, low, high = by_p[p]
            interval = "" if math.isnan(low) else f" [{low:+.4f}, {high:+.4f}]"
            cells.append(f"{mean:+.4f}{interval}")
        lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(records, path):
    """Write the figure: training loss per correlation, then test MSE.

    One panel per correlation shows each model's training loss per epoch
    (mean over seeds), as in the paper's figure 4; the last panel shows the
    test MSE (mean and standard error over seeds) against the correlation.
    """
    # a bare Figure: no pyplot, so no GUI backend and no global state
    from matplotlib.figure import Figure

    summary = summarize(records)
    correlations = sorted(summary["wins"])
    models = _models(summary)
    colors = dict(zip(MODELS, ("tab:gray", "tab:orange", "tab:blue", "tab:green")))
    n_panels = len(correlations) + 1
    fig = Figure(figsize=(3.4 * n_panels, 3.4), layout="constrained")
    axes = fig.subplots(1, n_panels)
    for ax, p in zip(axes, correlations):
        for name in models:
            curves = np.stack(
                [r["train_loss"] for r in records if r["model"] == name and r["correlation"] == p]
            )
            epochs = np.arange(1, curves.shape[1] + 1)
            ax.plot(epochs, curves.mean(axis=0), color=colors[name], label=name)
        ax.set(title=f"correlation = {float(p)}", xlabel="epoch", yscale="log")
    axes[0].set_ylabel("training loss (standardised targets)")
    axes[0].legend()
    ax = axes[-1]
    # models side by side at each correlation, so that the error bars do not overlap
    dodge = 0.03 * (max(correlations) - min(correlations) or 1.0)
    offsets = dodge * (np.arange(len(models)) - (len(models) - 1) / 2)
    for offset, name in zip(offsets, models):
        mean, sem = np.array([summary[name][p] for p in correlations]).T
        x = np.asarray(correlations) + offset
        ax.errorbar(x, mean, yerr=sem, color=colors[name], marker="o", capsize=3)
    n_seeds = len({r["seed"] for r in records})
    ax.set(
        title="test MSE",
        xlabel="task correlation",
        ylabel=f"mean ± s.e. over {n_seeds} seed(s)",
        xticks=correlations,
    )
    fig.savefig(path, dpi=120)
    return path


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m sk_mmoe",
        description=(
            "Reproduce the synthetic experiment of Ma et al. (KDD 2018): Shared-Bottom, "
            "one-gate MoE, MMoE and PLE (Tang et al., 2020) trained with the same budget "
            "on two regression tasks of controlled correlation. Prints the test MSE per "
            "model and correlation, paired per-seed differences with 95% intervals, and "
            "writes a figure."
        ),
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--full",
        action="store_true",
        help="paper-sized run: d=100, 50,000 training rows, 60 epochs, 20 seeds "
        "(about 90 s per seed on one core)",
    )
    size.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument(
        "--output",
        default="mmoe_correlation.png",
        help="where to write the figure (default: %(default)s)",
    )
    default, paper = Setup(), Setup.paper()
    parser.add_argument(
        "--seeds",
        type=_positive_int,
        help=f"number of seeds (default {default.n_seeds}; {paper.n_seeds} with --full)",
    )
    parser.add_argument("--first-seed", type=int, help="first seed (default 0)")
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        help=f"training epochs of every model (default {default.max_epochs}; "
        f"{paper.max_epochs} with --full)",
    )
    _add_output_options(parser, default, paper)
    return parser


def _add_output_options(parser, default, paper):
    """The options of the data, the training and the output (``default`` / ``paper``: the
    default and ``--full`` setups, for the help texts)."""
    parser.add_argument(
        "--correlations",
        type=float,
        nargs="+",
        help="task correlations in [-1, 1] (default 0.5 0.9 1.0)",
    )
    parser.add_argument(
        "--n-train",
        type=_positive_int,
        help=f"training rows per seed (default {default.n_train:,}; "
        f"{paper.n_train:,} with --full)",
    )
    parser.add_argument(
        "--n-features",
        type=_positive_int,
        help=f"input dimension d (default {default.n_features}; {paper.n_features} with --full)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        help=f"norm c of the task weight vectors (default {default.scale:g})",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help="processes training side by side, one thread each (default: one per core; "
        "the results do not depend on it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def setup_from_args(args):
    changes = {
        "n_seeds": args.seeds,
        "first_seed": args.first_seed,
        "max_epochs": args.epochs,
        "correlations": tuple(args.correlations) if args.correlations else None,
        "n_train": args.n_train,
        "n_features": args.n_features,
        "scale": args.scale,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.full:
        return Setup.paper(**changes)
    if args.quick:
        return Setup.quick(**changes)
    return Setup(**changes)


def print_setup(setup, params, n_parameters):
    """The experiment's settings and each model's size."""
    print(
        f"Ma et al. (2018) synthetic tasks: d={setup.n_features}, scale c={setup.scale:g}, "
        f"{setup.n_sin} sine terms, {setup.n_train:,} training / {setup.n_test:,} test "
        f"rows, {setup.n_seeds} seed(s) from {setup.first_seed}; every model trains "
        f"{setup.max_epochs} epochs, batch {setup.batch_size}, Adam lr={setup.lr:g}, "
        f"{setup.activation} activations."
    )
    for name in MODELS:
        units = params[name]["expert_units"][0]
        if name == "Shared-Bottom":
            shape = f"bottom of {units} units"
        elif name == "PLE":
            shape = (
                f"{setup.ple_levels} levels of {setup.ple_shared_experts} shared + "
                f"{setup.ple_task_experts} per-task experts of {units} units"
            )
        else:
            shape = f"{setup.n_experts} experts of {units} units"
        print(
            f"  {name:<13} {n_parameters[name]:>7,} parameters ({shape}, towers of "
            f"{setup.tower_units})"
        )


def print_results(summary, setup, n_parameters):
    """The test-MSE table, the paired differences and the per-seed winners."""
    print()
    print(f"Test MSE (mean over both tasks; mean ± standard error over {setup.n_seeds} seed(s)):")
    print()
    print(markdown_table(summary, n_parameters))
    print()
    print(
        "Paired per-seed differences of test MSE (mean over seeds [95% t-interval]; "
        "negative: the first model is better):"
    )
    print()
    print(differences_table(summary))
    print()
    for p in sorted(summary["wins"]):
        wins = ", ".join(f"{name} {n}" for name, n in summary["wins"][p].items())
        print(f"lowest test MSE per seed at p = {float(p)}: {wins}")
    lowest = ", ".join(
        f"p = {float(p)}: {min(MODELS, key=lambda m: summary[m][p][0])}"
        for p in sorted(summary["wins"])
    )
    print(f"lowest mean test MSE: {lowest}")


def main(argv=None):
    """Entry point of ``python -m sk_mmoe`` and of the ``sk-mmoe`` script."""
    args = build_parser().parse_args(argv)
    setup = setup_from_args(args)
    start = time.perf_counter()
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    if not has_matplotlib:
        print(
            "matplotlib is not installed: the table will be printed but no figure "
            "written (pip install 'sk-mmoe[plot]').",
            file=sys.stderr,
        )
    params = model_params(setup)
    n_parameters = {name: count_parameters(params[name], setup.n_features) for name in MODELS}
    print_setup(setup, params, n_parameters)
    records = run_experiment(setup, progress=not args.no_progress, n_jobs=args.jobs)
    summary = summarize(records)
    print_results(summary, setup, n_parameters)
    elapsed = f"{time.perf_counter() - start:.0f} s in all"
    if not has_matplotlib:
        print(f"no figure written: matplotlib is not installed ({elapsed})")
        return 1
    path = plot_results(records, args.output)
    print(f"figure written to {path} ({elapsed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
