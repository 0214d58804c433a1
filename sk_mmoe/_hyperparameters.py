"""The estimators' hyperparameters: one table, and the checks beyond it.

``HYPERPARAMETERS`` holds one row per constructor argument shared by every
estimator, in signature order: its default, its scikit-learn constraints, its
docstring entry and how a saved file stores it. The rest is derived from it:
``PARAMETER_CONSTRAINTS`` (scikit-learn's ``_parameter_constraints``), the
"Parameters" section of each estimator's docstring and the saved file's
``params``. The explicit ``__init__`` signatures stay (scikit-learn reads
them); ``tests/test_hyperparameters.py`` checks that they match the table.
:func:`check_hyperparameters` does what constraints cannot express and
returns the values the net factory needs.
"""

from __future__ import annotations

import numbers
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from skorch.callbacks import Callback

from .architectures import ARCHITECTURES
from .inputs import NUMERIC_EMBEDDINGS
from .nn._modules import ACTIVATIONS

#: ``early_stopping="auto"`` stops early in ``fit`` on at least this many rows
AUTO_EARLY_STOPPING_ROWS = 1_000
#: ``batch_size="auto"``: (at least this many rows, batch size), largest first;
#: 256 below them
AUTO_BATCH_SIZES = ((100_000, 1024), (50_000, 512))
AUTO_BATCH_SIZE = 256

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def _identity(value):
    return value


#: ``Hyperparameter.legacy`` when files without the parameter trained with its default
_AS_DEFAULT = object()


@dataclass(frozen=True)
class Codec:
    """How a saved file's JSON holds a hyperparameter's value.

    ``to_json`` maps the value to what :func:`json.dumps` can write (numpy
    scalars are converted after it); ``from_json`` maps what
    :func:`json.loads` read back to the value, and may raise ``ValueError``,
    ``TypeError``, ``KeyError`` or ``AttributeError`` on a malformed entry.
    Both are the identity for JSON-native values.
    """

    to_json: Callable[[object], object] = _identity
    from_json: Callable[[object], object] = _identity


#: the codec of a JSON-native value
IDENTITY = Codec()


@dataclass(frozen=True)
class Hyperparameter:
    """One constructor argument shared by every estimator.

    ``name`` and ``default`` as in the signatures; ``constraints`` as in
    scikit-learn's ``_parameter_constraints``; ``doc_type`` and ``doc`` the
    docstring entry (``"<name> : <doc_type>, default=<default>"``, then the
    description ``doc``, dedented); ``codec`` how a saved file stores it;
    ``doc_default`` the default as the docstring writes it, when not its
    ``repr`` (strings are written in double quotes).
    """

    name: str
    default: object
    constraints: list
    doc_type: str
    doc: str
    codec: Codec = IDENTITY
    doc_default: str | None = None
    #: the value a saved file without this parameter was trained with, when
    #: not ``default`` (the default changed after such files were written)
    legacy: object = _AS_DEFAULT

    @property
    def file_default(self):
        """The value of a saved file that does not have this parameter."""
        return self.default if self.legacy is _AS_DEFAULT else self.legacy

    @property
    def doc_entry(self):
        """The numpydoc entry of this parameter, without indentation."""
        default = self.doc_default
        if default is None:
            default = f'"{self.default}"' if isinstance(self.default, str) else repr(self.default)
        description = textwrap.indent(textwrap.dedent(self.doc).strip(), "    ")
        return f"{self.name} : {self.doc_type}, default={default}\n{description}"


def _units_to_json(units):
    """One width as an int, several as a list."""
    return int(units) if isinstance(units, Integral) else list(units)


def _units_from_json(units):
    return tuple(units) if isinstance(units, list) else units


def _categorical_features_to_json(spec):
    """Names, indices or a mask (any array-like) as a list."""
    return spec if spec is None or isinstance(spec, str) else np.asarray(spec).tolist()


def _task_weights_to_json(weights):
    """Fixed weights (any array-like) as a list of float; names and None as they are."""
    return weights if weights is None or isinstance(weights, str) else [float(w) for w in weights]


def _optimizer_to_json(optimizer):
    """A name as it is, a ``torch.optim`` class as ``{"torch.optim": name}``."""
    if isinstance(optimizer, str):
        return optimizer
    if getattr(torch.optim, optimizer.__name__, None) is not optimizer:
        raise TypeError(
            f"Cannot save optimizer={optimizer!r}: only names and torch.optim classes are "
            "stored. Use pickle (trusted sources only) for custom optimizers."
        )
    return {"torch.optim": optimizer.__name__}


def _optimizer_from_json(optimizer):
    if not isinstance(optimizer, dict):
        return optimizer
    name = optimizer["torch.optim"]
    if not isinstance(name, str):
        raise ValueError("optimizer")
    return getattr(torch.optim, name)


# ``stacklevel``: this function, the file codec, ``save``, the estimator's
# ``save``, the caller
def _callbacks_to_json(callbacks):
    """Callbacks are not saved: None, with a warning when there were some."""
    if callbacks:
        warnings.warn(
            "callbacks are not saved; the loaded estimator has callbacks=None.",
            UserWarning,
            stacklevel=5,
        )
        return None
    return callbacks


def _accelerator_to_json(accelerator):
    """The accelerator is not saved: None, with a warning when there was one."""
    if accelerator is not None:
        warnings.warn(
            "the accelerator is not saved; the loaded estimator has accelerator=None.",
            UserWarning,
            stacklevel=5,
        )
    return None


def _random_state_to_json(random_state):
    """An int or None as it is; a ``RandomState`` instance is not saved (None)."""
    return random_state if isinstance(random_state, (int, type(None))) else None


def _task_sequence_to_json(sequence):
    """Task names (any sequence of them) as a list of str; None as it is."""
    return None if sequence is None else [str(name) for name in sequence]


def _task_sequence_from_json(sequence):
    if sequence is None:
        return None
    if not isinstance(sequence, list) or not all(isinstance(n, str) for n in sequence):
        raise ValueError("task_sequence must be a list of task names")
    return sequence


_UNITS = Codec(_units_to_json, _units_from_json)
_CATEGORICAL_FEATURES = Codec(to_json=_categorical_features_to_json)
_TASK_WEIGHTS = Codec(to_json=_task_weights_to_json)
_OPTIMIZER = Codec(_optimizer_to_json, _optimizer_from_json)
_CALLBACKS = Codec(to_json=_callbacks_to_json)
_DEVICE = Codec(to_json=str)
_ACCELERATOR = Codec(to_json=_accelerator_to_json)
_RANDOM_STATE = Codec(to_json=_random_state_to_json)
_TASK_SEQUENCE = Codec(_task_sequence_to_json, _task_sequence_from_json)

#: every shared hyperparameter, in signature order
HYPERPARAMETERS = (
    Hyperparameter(
        "architecture",
        "mmoe",
        [StrOptions(ARCHITECTURES.keys())],
        '{"mmoe", "moe", "shared_bottom", "cgc", "ple"}',
        """
        The network (see ``sk_mmoe.architectures.ARCHITECTURES``). ``"mmoe"``:
        one softmax gate per task over shared experts (Ma et al., 2018).
        ``"moe"``: one gate shared by all tasks. ``"shared_bottom"``: one
        shared MLP (of widths ``expert_units``) under the task towers.
        ``"cgc"``: shared experts plus ``n_task_experts`` experts per task;
        task k's gate mixes the shared experts and task k's own only (Tang
        et al., 2020). ``"ple"``: CGC levels stacked ``n_levels`` deep, each
        level but the last with a shared gate over all its experts that feeds
        the next level's shared experts.
        """,
    ),
    Hyperparameter(
        "n_experts",
        8,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        Number of experts (ignored by ``"shared_bottom"``); for ``"cgc"`` and
        ``"ple"`` the number of shared experts per level (each level then has
        ``n_experts + n_tasks * n_task_experts`` experts).
        """,
    ),
    Hyperparameter(
        "n_task_experts",
        1,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        ``"cgc"`` and ``"ple"`` only (ignored by the others): experts of each
        task per level.
        """,
    ),
    Hyperparameter(
        "n_levels",
        2,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        ``"ple"`` only (ignored by the others, so one grid can search it
        with ``architecture``): number of extraction levels; ``"cgc"`` is one
        level, and ``"ple"`` with ``n_levels=1`` is the same network.
        """,
    ),
    Hyperparameter(
        "categorical_features",
        "from_dtype",
        [None, StrOptions({"from_dtype"}), "array-like"],
        '"from_dtype", array-like or None',
        """
        Which columns of ``X`` are categorical and get a learned embedding, as
        in ``HistGradientBoostingClassifier``: ``"from_dtype"`` (the category,
        object, string and bool columns of a DataFrame; none of a numeric
        array), column names, indices or a boolean mask, or None for none.
        """,
        codec=_CATEGORICAL_FEATURES,
    ),
    Hyperparameter(
        "embedding_dim",
        "auto",
        [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), dict],
        'int, dict or "auto"',
        """
        Embedding width of each categorical column: one int for all, a dict
        by column name (other columns get ``"auto"``), or ``"auto"``:
        ``round(1.6 * n_codes ** 0.56)`` capped at 32, where ``n_codes`` is the
        column's number of categories plus 2 ("missing" and "other"); e.g. 2 for
        a boolean column, 6 for 8 categories, 21 for 100.
        """,
    ),
    Hyperparameter(
        "min_frequency",
        1,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        Categories seen in fewer than this many training rows share one
        embedding (code "other") with the categories never seen in fit; that
        embedding starts at zero and is learnt from the rare categories. A
        missing value (NaN, None, ``pd.NA``) in a categorical column is a
        category of its own.
        """,
    ),
    Hyperparameter(
        "one_hot_max_categories",
        9,
        [None, Interval(Integral, 0, None, closed="left")],
        "int or None",
        """
        Categorical columns with at most this many categories (counted after
        ``min_frequency`` grouping, not counting "missing" and "other") are
        one-hot encoded inside the network, the others embedded (as RealMLP
        does with 9). A one-hot column of ``n`` categories feeds the experts
        and gates ``n + 2`` columns of 0 and 1 ("missing" and "other" are
        categories of their own); a column named in an ``embedding_dim`` dict
        is always embedded. None or 0: every categorical column is embedded.
        The default, 9, was chosen on the real-data suite (benchmarks/README,
        "Default hyperparameters"); files saved before it keep None.
        """,
        legacy=None,
    ),
    Hyperparameter(
        "numeric_scaling",
        "auto",
        [None, StrOptions({"auto", "standard"})],
        '{"auto", "standard"} or None',
        """
        Standardisation of the numeric columns inside the estimator (mean and
        scale learnt in ``fit``, saved with the model). ``"auto"``: when ``X``
        has categorical columns, so a raw DataFrame of ages and dollar amounts
        trains as well as after a ``StandardScaler``; an all-numeric ``X``
        (array or DataFrame) is used as given, like a plain MLP would.
        ``"standard"``: always. None: never.
        """,
    ),
    Hyperparameter(
        "numeric_embedding",
        "auto",
        [None, StrOptions(NUMERIC_EMBEDDINGS)],
        '{"auto", "piecewise_linear", "periodic"} or None',
        """
        A learned vector per numeric column, fed to the experts and gates
        instead of the number itself (Gorishniy et al., 2022), for all columns
        in one batched op. ``"piecewise_linear"``: the value encoded against
        its column's quantile bins (``n_bins``, learnt in ``fit``; the
        encoding TabM uses). ``"periodic"``: PLR, ``ReLU(Linear([cos, sin]))``
        of learned frequencies (``frequency_scale``) on standardised values.
        None: numbers, scaled as ``numeric_scaling`` says. ``"auto"``:
        ``"periodic"`` when ``X`` has categorical columns (a raw table, where
        it was ahead on the real-data suite: benchmarks/README, "Default
        hyperparameters"), None for an all-numeric ``X`` (used as given, like
        a plain MLP). The bins and statistics are fitted state: ``partial_fit``
        and ``warm_start`` keep them, and save/load, pickle and ONNX export
        carry them. Files saved before this parameter keep None.
        """,
        legacy=None,
    ),
    Hyperparameter(
        "n_bins",
        "auto",
        [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        'int >= 2 or "auto"',
        """
        ``numeric_embedding="piecewise_linear"`` only: quantile bins per
        numeric column. ``"auto"``: 48, or fewer for a column with fewer
        distinct values (one less than their number). An int larger than a
        column's number of distinct values raises ``ValueError``; so does a
        constant column (nothing to bin).
        """,
    ),
    Hyperparameter(
        "numeric_embedding_dim",
        16,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        Width of each numeric column's embedding (with ``numeric_embedding``).
        """,
    ),
    Hyperparameter(
        "frequency_scale",
        0.01,
        [Interval(Real, 0, None, closed="neither")],
        "float > 0",
        """
        ``numeric_embedding="periodic"`` only: the standard deviation of the
        initial frequencies (larger: faster-varying functions of each value).
        """,
    ),
    Hyperparameter(
        "expert_units",
        (64,),
        [Interval(Integral, 1, None, closed="left"), tuple, list],
        "tuple of int",
        """
        Hidden widths of each expert; the last is the expert output width.
        """,
        codec=_UNITS,
    ),
    Hyperparameter(
        "tower_units",
        (32,),
        [Interval(Integral, 1, None, closed="left"), tuple, list],
        "tuple of int",
        """
        Hidden widths of each task tower (may be empty).
        """,
        codec=_UNITS,
    ),
    Hyperparameter(
        "n_ensemble",
        1,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        Members of an efficient ensemble (TabM-style: Gorishniy et al., ICLR
        2025). The members share every weight and differ by rank-1 adapters:
        a scale of the input, of each tower's input (random signs at first),
        and a scale and bias of each head's output. They are trained on the
        mean of their losses in one forward pass over ``n_ensemble`` times
        the rows, and predict the mean of their predictions (probabilities
        for classification tasks). 1 is the plain network.
        """,
    ),
    Hyperparameter(
        "activation",
        "relu",
        [StrOptions(set(ACTIVATIONS))],
        '{"relu", "gelu", "silu", "tanh", "elu", "selu", "leaky_relu", "sigmoid"}',
        """
        Activation after every hidden layer of the experts and towers.
        """,
    ),
    Hyperparameter(
        "dropout",
        0.0,
        [Interval(Real, 0, 1, closed="left")],
        "float in [0, 1)",
        """
        Dropout after every hidden layer of the experts and towers.
        """,
    ),
    Hyperparameter(
        "gate_dropout",
        0.0,
        [Interval(Real, 0, 1, closed="left")],
        "float in [0, 1)",
        """
        During training, drop each expert from each gate's mixture with this
        probability and renormalise (expert-utilisation dropout, Zhao et al.,
        RecSys 2019). It does not prevent gate collapse: in our measurements
        (user guide, "Gates and their diagnostics") 0.1 left the gates' entropy where it was and
        0.3 raised it only a little; use ``gate_entropy_bonus``.
        """,
    ),
    Hyperparameter(
        "gate_entropy_bonus",
        0.0,
        [Interval(Real, 0, None, closed="left")],
        "float >= 0",
        """
        Subtract this times the gates' entropy (in nats: each gate's entropy
        averaged over the rows, summed over the gates of every level) from the
        training loss, so that gates keep mixing experts instead of collapsing
        onto one. Gated architectures only. 0.01 prevented the collapse we
        measured without a measurable change of test ROC AUC (user guide,
        "Gates and their diagnostics"); 0.1 makes the gates almost uniform.
        """,
    ),
    Hyperparameter(
        "gate_collapse_threshold",
        0.95,
        [None, Interval(Real, 0, 1, closed="right")],
        "float in (0, 1] or None",
        """
        After ``fit``, warn (``GateCollapseWarning``) when a task's gate puts
        more than this mean weight on one expert (for ``"ple"``, the gates of
        the last level, which feed the towers); None disables the check. See
        ``gate_summary``.
        """,
    ),
    Hyperparameter(
        "task_weights",
        None,
        [None, "array-like", StrOptions({"uncertainty", "dwa", "gradnorm", "pcgrad"})],
        'array-like of shape (n_tasks,) or {"uncertainty", "dwa", "gradnorm", "pcgrad"}',
        """
        Fixed non-negative loss weight per task (None: all 1), or a balancing
        method (see "Balancing tasks" in the user guide): ``"uncertainty"`` learns
        the weights (Kendall et al., 2018); ``"dwa"`` sets them each epoch from
        the ratio of each task's last two epoch losses (Liu et al., 2019);
        ``"gradnorm"`` learns them so that the tasks' gradient norms on the last
        shared layer follow their training rates (Chen et al., 2018);
        ``"pcgrad"`` keeps equal weights and removes, at every step, the part of
        each task's gradient on the shared parameters that conflicts with
        another's (Yu et al., 2020). ``"gradnorm"`` and ``"pcgrad"`` run one
        backward pass per task. The learned weights are in
        ``net_.history[:, "task_weights"]``; for the learned weights
        (``"uncertainty"``, ``"dwa"``, ``"gradnorm"``) ``valid_loss`` is the
        unweighted sum of the task losses.
        """,
        codec=_TASK_WEIGHTS,
    ),
    Hyperparameter(
        "dwa_temperature",
        2.0,
        [Interval(Real, 0, None, closed="neither")],
        "float > 0",
        """
        ``task_weights="dwa"`` only: the softmax temperature; larger is closer
        to equal weights.
        """,
    ),
    Hyperparameter(
        "gradnorm_alpha",
        1.5,
        [Interval(Real, 0, None, closed="left")],
        "float >= 0",
        """
        ``task_weights="gradnorm"`` only: how strongly tasks whose loss falls
        slower are given larger gradients (0: equal gradient norms).
        """,
    ),
    Hyperparameter(
        "track_task_conflict",
        False,
        ["boolean"],
        "bool",
        """
        Record, each epoch, the cosine similarity between each pair of tasks'
        gradients on the shared parameters and each task's gradient norm
        (``net_.history`` keys ``task_grad_cosine``, ``task_grad_conflict``, the
        share of steps where a pair's cosine was negative, and
        ``task_grad_norm``; see ``sk_mmoe.plotting.TaskConflictDisplay``).
        Costs one backward pass per task at every step.
        """,
    ),
    Hyperparameter(
        "max_epochs",
        100,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        Epochs per ``fit`` (``partial_fit`` runs one).
        """,
    ),
    Hyperparameter(
        "batch_size",
        "auto",
        [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        'int or "auto"',
        """
        Rows per training step. ``"auto"``: 256, or 512 when ``fit`` gets
        50,000 rows or more, 1,024 from 100,000 rows (fewer, larger steps keep
        large fits fast). Prediction uses its own, larger chunks.
        """,
    ),
    Hyperparameter(
        "lr",
        0.001,
        [Interval(Real, 0, None, closed="neither")],
        "float",
        """
        Learning rate.
        """,
        doc_default="1e-3",
    ),
    Hyperparameter(
        "optimizer",
        "adam",
        [StrOptions(set(OPTIMIZERS)), type],
        '{"adam", "adamw", "sgd", "rmsprop", "adagrad"} or torch.optim.Optimizer subclass',
        """
        The optimizer, by name or class.
        """,
        codec=_OPTIMIZER,
    ),
    Hyperparameter(
        "weight_decay",
        0.0,
        [Interval(Real, 0, None, closed="left")],
        "float",
        """
        The optimizer's ``weight_decay`` (L2 penalty; decoupled for
        ``"adamw"``).
        """,
    ),
    Hyperparameter(
        "early_stopping",
        "auto",
        ["boolean", StrOptions({"auto"})],
        '"auto" or bool',
        """
        Hold out ``validation_fraction`` of the rows, stop after
        ``n_iter_no_change`` epochs without an improvement of the validation
        loss by at least ``tol``, and restore the best weights. ``"auto"``
        stops early when ``fit`` gets at least 1,000 labelled rows (a hold-out
        of 100 rows or more) and trains all ``max_epochs`` otherwise: on the
        real-data suite (``benchmarks/choose_defaults.py``) 100 epochs without
        it overfit badly, down to negative R² on 3,000 rows. ``True`` is not available with
        ``partial_fit``; ``"auto"`` never stops early there, and ``partial_fit``
        cannot continue a model that ``fit`` stopped early.
        """,
    ),
    Hyperparameter(
        "validation_fraction",
        0.1,
        [Interval(Real, 0, 1, closed="neither")],
        "float in (0, 1)",
        """
        Share of the rows held out for early stopping (ignored otherwise).
        """,
    ),
    Hyperparameter(
        "n_iter_no_change",
        10,
        [Interval(Integral, 1, None, closed="left")],
        "int",
        """
        Epochs without improvement before early stopping ends the fit.
        """,
    ),
    Hyperparameter(
        "tol",
        0.0001,
        [Interval(Real, 0, None, closed="left")],
        "float",
        """
        Smallest decrease of the validation loss that counts as an improvement.
        """,
        doc_default="1e-4",
    ),
    Hyperparameter(
        "missing_targets",
        "error",
        [StrOptions({"error", "ignore"})],
        '{"error", "ignore"}',
        """
        ``"error"``: missing labels (NaN, None, ``pd.NA``) in ``y`` raise.
        ``"ignore"``: a missing cell adds no loss for its task; rows missing
        every task are dropped with a warning.
        """,
    ),
    Hyperparameter(
        "task_sequence",
        None,
        [None, list, tuple],
        "list of str or None",
        """
        A funnel: names of binary tasks (``target_names_``; ``"task_0"``, ...
        for arrays) in the order a row passes them, e.g. ``["click",
        "convert"]``. A later step's label only means something where the
        earlier ones are positive (the positive class is a task's second
        class in ``classes_``: 1, True, "yes"). Each step's tower learns the
        step's probability given the earlier one, and the loss is a binary
        cross-entropy on the joint probability (the product of the
        conditionals) over every row, as ESMM does (Ma et al., SIGIR 2018);
        ``predict_proba`` and ``predict`` give the joint, ``conditional_proba``
        the conditional. A row with a later step positive and an earlier one
        negative raises ``ValueError``. Not for ``MMoERegressor``. See
        "Funnels" in the user guide.
        """,
        codec=_TASK_SEQUENCE,
    ),
    Hyperparameter(
        "callbacks",
        None,
        [None, list],
        "list of skorch callbacks",
        """
        Extra skorch callbacks (copied before use) or ``(name, callback)``
        pairs.
        """,
        codec=_CALLBACKS,
    ),
    Hyperparameter(
        "device",
        "cpu",
        [str, torch.device],
        "str or torch.device",
        """
        Where the network trains and predicts, e.g. ``"cuda"`` or
        ``"cuda:1"``.
        """,
        codec=_DEVICE,
    ),
    Hyperparameter(
        "accelerator",
        None,
        [None, HasMethods(["prepare", "backward"])],
        "accelerate.Accelerator or None",
        """
        Train in several processes (GPUs, or CPU processes with gloo) through
        Hugging Face ``accelerate`` and skorch's ``AccelerateMixin``: create
        it with ``Accelerator(device_placement=False)``, pass each process's
        device (``device=str(accelerator.device)``) and run ``fit`` in every
        process launched by ``torchrun`` or ``accelerate launch``, with the
        same ``X``, ``y`` (or the same Parquet source) and the same int
        ``random_state``: each process trains on its share of the batches
        (of a source: its own row groups), gradients are averaged, and every
        process ends with the same model (different rows raise
        ``ValueError`` in every process). Only the main process writes
        ``save`` files and checkpoints. Nets trained this way are not
        guaranteed to pickle; use ``save``. See the user guide, "Several
        processes or machines", and ``examples/multi_gpu_accelerate.py``.
        """,
        codec=_ACCELERATOR,
    ),
    Hyperparameter(
        "n_jobs",
        None,
        [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "int or None",
        """
        Threads each ``fit``, ``partial_fit``, ``predict``, ``predict_proba``,
        ``score`` and ``gate_weights`` call computes with (torch's OpenMP
        threads), set for the call on the calling thread alone and given back
        after: torch's global setting is not changed. -1 means all the cores
        this process may use (CPU affinity, cgroup quotas and
        ``OMP_NUM_THREADS`` counted, so a joblib or Dask worker gets its
        share), ``-k`` that many plus 1 minus k. None: one thread for small
        work, where more threads wait for each other and stall when other
        processes keep the cores busy (training steps of less than 1e9
        batch rows x parameters, which covers the default network up to
        batches of 1,024 rows and wide inputs; predictions on at most 1,024
        rows), and otherwise torch's current thread count, at most those
        cores.
        """,
    ),
    Hyperparameter(
        "random_state",
        None,
        ["random_state"],
        "int, RandomState instance or None",
        """
        Seeds initialisation, shuffling and dropout without touching torch's
        global random state. The same int gives identical predictions.
        """,
        codec=_RANDOM_STATE,
    ),
    Hyperparameter(
        "verbose",
        0,
        ["verbose"],
        "int",
        """
        0 silent; 1 progress bar and one log line per epoch.
        """,
    ),
    Hyperparameter(
        "warm_start",
        False,
        ["boolean"],
        "bool",
        """
        If True, ``fit`` continues training the current network.
        """,
    ),
)

#: scikit-learn's ``_parameter_constraints`` for every estimator; the
#: architecture's ``StrOptions`` is a live view of the registry, so a newly
#: registered architecture is valid
PARAMETER_CONSTRAINTS = {row.name: list(row.constraints) for row in HYPERPARAMETERS}


def check_hyperparameters(params):
    """Checks that ``PARAMETER_CONSTRAINTS`` cannot express.

    ``params`` is ``get_params(deep=False)``. Returns it with the widths as
    lists of int and the optimizer as a class.
    """
    expert_units = _units(params["expert_units"], "expert_units", allow_empty=False)
    tower_units = _units(params["tower_units"], "tower_units", allow_empty=True)
    optimizer = params["optimizer"]
    if isinstance(optimizer, str):
        optimizer = OPTIMIZERS[optimizer]
    elif not issubclass(optimizer, torch.optim.Optimizer):
        raise TypeError(
            "optimizer must be one of "
            f"{sorted(OPTIMIZERS)} or a torch.optim.Optimizer subclass, got {optimizer!r}."
        )
    device = params["device"]
    try:
        device_type = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    if device_type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available.")
    accelerator = params["accelerator"]
    if accelerator is not None and getattr(accelerator, "device_placement", False):
        raise ValueError(
            "accelerator must be created with device_placement=False; pass each "
            "process's device as device=str(accelerator.device)."
        )
    if accelerator is not None and (
        params["task_weights"] in ("gradnorm", "pcgrad") or params["track_task_conflict"]
    ):
        raise ValueError(
            "task_weights='gradnorm' or 'pcgrad' and track_task_conflict=True need "
            "sk_mmoe's own training step, which accelerator= runs replace; train "
            "without the accelerator or use fixed, 'uncertainty' or 'dwa' task weights."
        )
    for cb in params["callbacks"] or []:
        obj = cb[1] if isinstance(cb, tuple) and len(cb) == 2 else cb
        if not isinstance(obj, Callback):
            raise TypeError(
                "callbacks must be skorch Callback instances or (name, Callback) "
                f"pairs, got {cb!r}."
            )
    return {
        **params,
        "expert_units": expert_units,
        "tower_units": tower_units,
        "optimizer": optimizer,
    }


def check_task_weights(task_weights, n_tasks):
    """Fixed task weights as a list of float, or None (equal or learned weights)."""
    if task_weights is None or isinstance(task_weights, str):
        return None
    try:
        weights = np.asarray(task_weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"task_weights must be numbers, got {task_weights!r}.") from None
    if weights.ndim != 1 or len(weights) != n_tasks:
        raise ValueError(f"task_weights has {weights.size} entries but y has {n_tasks} tasks.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not weights.any():
        raise ValueError(
            f"task_weights must be finite, non-negative and not all zero, got {weights.tolist()}."
        )
    return weights.tolist()


def _units(value, name, allow_empty):
    """Hidden widths as a list of positive ints."""
    values = [value] if isinstance(value, numbers.Integral) else list(value)
    if not values and not allow_empty:
        raise ValueError(f"{name} must have at least one layer width, got {value!r}.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be positive integers, got {value!r}.")
    return [int(v) for v in values]


def resolve_batch_size(batch_size, n_rows):
    """``batch_size`` with "auto" replaced by its size for ``n_rows`` training rows."""
    if not isinstance(batch_size, str):
        return batch_size
    for rows, size in AUTO_BATCH_SIZES:
        if n_rows >= rows:
            return size
    return AUTO_BATCH_SIZE
