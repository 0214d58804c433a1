"""Per-task gradients on the shared parameters: gradient surgery, GradNorm, conflict.

The training step of :class:`~sk_mmoe.training._net.MMoENet` calls these when the
loss asks for per-task gradients (``"pcgrad"``, ``"gradnorm"``) or a callback
records task conflict. Gradients are flattened over the shared parameters:
``G`` is ``(T, P)``, one row per task. This module imports nothing else from
the package.
"""

from __future__ import annotations

import torch


def task_gradients(losses, params, present):
    """Each task's gradient on ``params``, flattened: ``(T, P)``.

    One backward pass per task (the graph is kept for the next); a task
    whose ``present`` flag is False (no label in the batch) gets a zero row
    without a pass.
    """
    rows = []
    size = sum(p.numel() for p in params)
    for k, loss in enumerate(losses):
        if not present[k]:
            rows.append(losses.new_zeros(size))
            continue
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, params)
                ]
            )
        )
    return torch.stack(rows)  # (T, P)


def project_conflicting(grads, order):
    """PCGrad (Yu et al., NeurIPS 2020): the sum of the task gradients after surgery.

    For each task ``i``, its gradient is projected, one other task ``j`` at a
    time in the order ``order[i]``, onto the normal plane of ``g_j`` whenever
    the two conflict (negative dot product):
    ``g_i <- g_i - (g_i . g_j) / |g_j|^2 * g_j``. Returns the projected rows
    ``(T, P)``; their sum is the update.

    Parameters
    ----------
    grads : torch.Tensor of shape (T, P)
        The task gradients.
    order : list of list of int
        For each task, the other tasks in the order they are projected on
        (the paper shuffles it at every step).
    """
    norm2 = (grads * grads).sum(1)  # (T,)
    projected = []
    for i, others in enumerate(order):
        g = grads[i]
        for j in others:
            dot = torch.dot(g, grads[j])
            # branch-free: the coefficient is 0 without a conflict or for a zero g_j
            coef = dot.clamp(max=0) / norm2[j].clamp_min(torch.finfo(grads.dtype).tiny)
            g = g - coef * grads[j]
        projected.append(g)
    return torch.stack(projected)


def random_orders(n_tasks):
    """For each task, the other tasks in a random order (torch's generator)."""
    orders = []
    for i in range(n_tasks):
        perm = torch.randperm(n_tasks - 1).tolist()
        orders.append([j if j < i else j + 1 for j in perm])
    return orders


def gradnorm_loss(weights, norms, losses, initial_losses, alpha, present):
    """GradNorm's loss on the task weights (Chen et al., ICML 2018).

    ``L_grad = sum_k |w_k n_k - mean(w n) * r_k ** alpha|`` over the tasks
    labelled in the batch, where ``n_k`` is the norm of task ``k``'s
    unweighted loss gradient on the last shared layer, and ``r_k`` the
    task's loss ratio ``L_k / L_k(0)`` divided by the mean ratio. The target
    ``mean(w n) * r_k ** alpha`` is a constant, as in the paper: only the
    weights receive a gradient.

    Parameters
    ----------
    weights : torch.Tensor of shape (T,)
        The learnable task weights.
    norms, losses, initial_losses : torch.Tensor of shape (T,)
        ``n_k`` (detached), the batch's task losses and each task's first loss.
    alpha : float
        How strongly tasks that train slower are pulled up (0: equal norms).
    present : torch.Tensor of bool of shape (T,)
        The tasks labelled in the batch.

    Returns
    -------
    loss : torch.Tensor
        The scalar ``L_grad``.
    targets : torch.Tensor of shape (T,)
        The target norm of each task (NaN where not present).
    """
    scaled = weights * norms  # (T,) G_k
    ratio = (losses.detach() / initial_losses).masked_fill(~present, float("nan"))
    relative = ratio / ratio.nanmean()
    targets = scaled.detach().masked_fill(~present, float("nan")).nanmean() * relative**alpha
    gap = (scaled - targets).abs().masked_fill(~present, 0.0)
    return gap.sum(), targets


def cosine_and_norms(grads):
    """Cosine similarity ``(T, T)`` of each pair of task gradients and their norms ``(T,)``.

    A task with a zero gradient (e.g. no label in the batch) gets NaN
    cosines.
    """
    norms = grads.norm(dim=1)  # (T,)
    unit = grads / norms.unsqueeze(1)  # NaN rows for zero norms
    return unit @ unit.T, norms
