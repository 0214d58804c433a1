"""Training: the skorch net and its step, the loss and task weighting, callbacks, the fit run.

Internal. :class:`~sk_mmoe.training._fit_run.FitRun` is one ``fit`` /
``partial_fit`` call; :func:`~sk_mmoe.training._factory.build_net` turns
hyperparameters into the skorch net it trains.
"""
