"""Diagrams of the five architectures, drawn with matplotlib at build time.

Used by the user guide's ``plot`` directives (``from _diagrams import draw;
draw("mmoe")``); ``python docs/_diagrams.py`` shows them all. Two tasks, A
and B, drawn bottom (the input ``x``) to top (the predictions).
"""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

SHARED, TASK_A, TASK_B, GATE, NEUTRAL = "#9ecae1", "#fdae6b", "#a1d99b", "#dadaeb", "#f0f0f0"
TASK_COLOURS = {"A": TASK_A, "B": TASK_B}


def _box(ax, x, y, text, colour, width=0.9, height=0.42):
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=colour,
            edgecolor="#444444",
            linewidth=0.8,
        )
    )
    ax.text(x, y, text, ha="center", va="center")
    return (x, y, height)


def _arrow(ax, start, end, dashed=False, colour="#555555"):
    (x0, y0, h0), (x1, y1, h1) = start, end
    ax.add_patch(
        FancyArrowPatch(
            (x0, y0 + h0 / 2),
            (x1, y1 - h1 / 2),
            arrowstyle="-|>",
            mutation_scale=7,
            linewidth=0.7,
            linestyle="--" if dashed else "-",
            color=colour,
            shrinkA=0,
            shrinkB=1,
        )
    )


def _gated_mixture(ax, gate, source, x, y, experts):
    """Draw the mixture box of ``gate`` at ``(x, y)`` and return it.

    Dashed arrows from ``source`` (what the gate reads) to the gate and from
    the gate to the mixture; grey arrows from each of ``experts``.
    """
    _arrow(ax, source, gate, dashed=True)
    mixture = _box(ax, x, y, "$\\Sigma$", "white", width=0.45, height=0.36)
    _arrow(ax, gate, mixture, dashed=True)
    for expert in experts:
        _arrow(ax, expert, mixture, colour="#888888")
    return mixture


def _towers(ax, inputs, xs, y):
    """A tower and a prediction per task above ``inputs`` (one node per task)."""
    for task, node, x in zip("AB", inputs, xs):
        tower = _box(ax, x, y, f"tower {task}", TASK_COLOURS[task])
        _arrow(ax, node, tower)
        out = _box(ax, x, y + 0.8, f"$\\hat y_{task}$", "white", width=0.6)
        _arrow(ax, tower, out)


def _experts_and_gates(ax, x_node, experts, gates, y):
    """Experts (name, colour, x) and gates (name, x, reachable expert indices) on one level.

    Returns the mixture node of each gate, placed above it.
    """
    expert_nodes = [_box(ax, x, y, name, colour, width=0.7) for name, colour, x in experts]
    for node in expert_nodes:
        _arrow(ax, x_node, node)
    mixtures = []
    for name, x, reach in gates:
        gate = _box(ax, x, y, name, GATE, width=0.7)
        mixtures.append(
            _gated_mixture(ax, gate, x_node, x, y + 0.9, [expert_nodes[k] for k in reach])
        )
    return mixtures


def draw(architecture):
    """Draw one architecture (a registry name) on a new figure and return the figure."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.set_axis_off()
    x_node = _box(ax, 3.0, 0.0, "input $x$", NEUTRAL, width=1.2)
    if architecture == "shared_bottom":
        bottom = _box(ax, 3.0, 1.1, "shared bottom $f$", SHARED, width=2.2)
        _arrow(ax, x_node, bottom)
        _towers(ax, [bottom, bottom], [2.0, 4.0], 2.2)
        top = 3.0
    elif architecture in ("moe", "mmoe"):
        experts = [(f"$f_{i}$", SHARED, x) for i, x in enumerate([2.0, 3.0, 4.0], start=1)]
        if architecture == "moe":
            gates = [("gate $g$", 0.8, range(3))]
        else:
            gates = [("gate $g_A$", 0.8, range(3)), ("gate $g_B$", 5.2, range(3))]
        mixtures = _experts_and_gates(ax, x_node, experts, gates, 1.1)
        if architecture == "moe":
            mixtures = [mixtures[0], mixtures[0]]
        _towers(ax, mixtures, [1.6, 4.4], 3.0)
        top = 3.8
    elif architecture == "cgc":
        experts = [
            ("$A_1$", TASK_A, 1.6),
            ("$S_1$", SHARED, 2.5),
            ("$S_2$", SHARED, 3.5),
            ("$B_1$", TASK_B, 4.4),
        ]
        gates = [("gate $g_A$", 0.6, [0, 1, 2]), ("gate $g_B$", 5.4, [1, 2, 3])]
        mixtures = _experts_and_gates(ax, x_node, experts, gates, 1.1)
        _towers(ax, mixtures, [0.6, 5.4], 3.0)
        top = 3.8
    elif architecture == "ple":
        fig.set_size_inches(6.4, 5.2)
        experts = [
            ("$A_1$", TASK_A, 1.6),
            ("$S_1$", SHARED, 2.5),
            ("$S_2$", SHARED, 3.5),
            ("$B_1$", TASK_B, 4.4),
        ]
        gates = [
            ("gate $g_A$", 0.6, [0, 1, 2]),
            ("shared\ngate", 3.0, [0, 1, 2, 3]),
            ("gate $g_B$", 5.4, [1, 2, 3]),
        ]
        # level 1: its shared gate sits between the shared experts, drawn lower
        nodes = [_box(ax, x, 1.1, name, colour, width=0.7) for name, colour, x in experts]
        for node in nodes:
            _arrow(ax, x_node, node)
        mixtures = []
        for name, x, reach in gates:
            gate = _box(ax, x, 1.1 if x != 3.0 else 1.75, name, GATE, width=0.7, height=0.5)
            mixtures.append(_gated_mixture(ax, gate, x_node, x, 2.35, [nodes[k] for k in reach]))
        mix_a, mix_shared, mix_b = mixtures
        # level 2 (the last): task experts read their task's mixture, shared ones the shared one
        level2 = [
            ("$A_1'$", TASK_A, 1.6, mix_a),
            ("$S_1'$", SHARED, 2.5, mix_shared),
            ("$S_2'$", SHARED, 3.5, mix_shared),
            ("$B_1'$", TASK_B, 4.4, mix_b),
        ]
        nodes2 = []
        for name, colour, x, source in level2:
            node = _box(ax, x, 3.2, name, colour, width=0.7)
            _arrow(ax, source, node)
            nodes2.append(node)
        top_mixtures = []
        for name, x, reach, source in [
            ("gate $g_A'$", 0.6, [0, 1, 2], mix_a),
            ("gate $g_B'$", 5.4, [1, 2, 3], mix_b),
        ]:
            gate = _box(ax, x, 3.2, name, GATE, width=0.7)
            top_mixtures.append(
                _gated_mixture(ax, gate, source, x, 4.1, [nodes2[k] for k in reach])
            )
        _towers(ax, top_mixtures, [1.6, 4.4], 4.9)
        ax.text(-1.3, 1.1, "level 1", ha="left", va="center", style="italic", color="#666666")
        ax.text(-1.3, 3.2, "level 2", ha="left", va="center", style="italic", color="#666666")
        top = 5.7
        ax.set_xlim(-1.4, 6.3)
    else:
        raise ValueError(f"no diagram for architecture {architecture!r}")
    if architecture != "ple":
        ax.set_xlim(-0.3, 6.3)
    ax.set_ylim(-0.35, top + 0.3)
    fig.tight_layout(pad=0.1)
    return fig


if __name__ == "__main__":
    for name in ["shared_bottom", "moe", "mmoe", "cgc", "ple"]:
        draw(name)
    plt.show()
