"""Saving and loading an estimator: :class:`Persistence`, a mixin of ``_BaseMMoE``.

The file format itself (a zip of JSON and tensors, safe to load) is
:mod:`sk_mmoe.persistence._archive`; here the estimator gives it a
:class:`~sk_mmoe.persistence._archive.Saved` record and assembles itself from one.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..training._distributed import writes_files
from ..training._net import seeded
from . import _archive as _persistence
from ._checkpoint import restore_net


class Persistence:
    """``save``, ``load`` and the record both use (a mixin of ``_BaseMMoE``)."""

    def save(self, path):
        """Save the fitted estimator to a file that is safe to load.

        The file is a zip archive of JSON (hyperparameters, fitted attributes,
        target encodings, training history, the batch size the net trained
        with) and tensors (the network weights, the loss's learned state and
        the optimizer's state) read with ``torch.load(weights_only=True)``;
        loading it never runs code, unlike pickle or joblib, which must only
        be loaded from trusted sources. A loaded estimator predicts
        identically and, with ``warm_start`` or ``partial_fit``, trains on
        exactly as the saved one would have. Callbacks are not saved (the
        loaded estimator has ``callbacks=None``); to resume a fit interrupted
        mid-way, see :class:`sk_mmoe.callbacks.TrainingCheckpoint`.

        The write is atomic: the file is written under a temporary name in
        the same directory, flushed to disk and then renamed over ``path``.
        If the save fails (a full disk, an interrupt), the temporary file is
        removed and a file already at ``path`` is left as it was.

        Fitted with an ``accelerator`` in several processes, only the main
        process (``accelerator.is_main_process``) writes the file; on the
        others ``save`` does nothing (they hold the same model).

        Parameters
        ----------
        path : str or path-like
            Where to write the file.
        """
        check_is_fitted(self)
        if not writes_files(self.accelerator):
            return
        _persistence.save(
            path,
            self._saved(
                self.net_,
                self.target_encoder_,
                self.random_seed_,
                self.target_names_,
                self._single_output,
            ),
        )

    def _saved(self, net, encoder, random_seed, target_names, single_output):
        """The :class:`~sk_mmoe.persistence._archive.Saved` record of this estimator with this net.

        Fitted attributes come as arguments, so that a training checkpoint can
        record a fit in progress.
        """
        fitted = {
            "n_features_in_": int(self.n_features_in_),
            "feature_names_in_": (
                [str(n) for n in self.feature_names_in_]
                if hasattr(self, "feature_names_in_")
                else None
            ),
            "n_tasks_": len(target_names),
            "target_names_": [str(n) for n in target_names],
            "single_output": bool(single_output),
            "random_seed_": int(random_seed),
            "train_batch_size": int(net.batch_size),
        }
        return _persistence.Saved(
            class_name=type(self).__name__,
            params=self.get_params(deep=False),
            fitted=fitted,
            encoder=encoder,
            history=net.history.to_list(),
            state={
                "module": net.module_.state_dict(),
                "criterion": net.criterion_.state_dict(),
                "optimizer": net.optimizer_.state_dict(),
            },
            inputs=self.input_encoder_,
        )

    @classmethod
    def load(cls, path):
        """Load an estimator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save` of this class.

        Returns
        -------
        estimator : object
            A fitted estimator of this class.

        Raises
        ------
        ValueError
            If the file is not an sk_mmoe file of this class, is truncated or
            altered, its weights do not fit the saved model, or it is built
            to exhaust memory (a zip bomb, shapes beyond its weights, deep or
            duplicate JSON, unexpected or duplicate members).
        """
        saved = _persistence.load(path, cls)
        try:
            estimator = cls(**saved.params)
            fitted = saved.fitted
            names = np.asarray(fitted["target_names_"], dtype=object)
            estimator.n_features_in_ = fitted["n_features_in_"]
            inputs = saved.inputs
            hyper = estimator._check_hyperparameters()
            # the fit stopped early if it recorded validation losses
            hyper["early_stopping"] = bool(saved.history) and "valid_loss" in saved.history[-1]
            hyper["batch_size"] = fitted["train_batch_size"]
            estimator.input_encoder_ = inputs
            net = estimator._build_net(hyper, saved.encoder, names)
            with seeded(0, net.device):  # the weights are overwritten: leave torch's RNG alone
                net.initialize()
            restore_net(net, saved, path)
            if fitted["feature_names_in_"] is not None:
                estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
            estimator._set_fitted(
                net,
                saved.encoder,
                fitted["random_seed_"],
                names,
                fitted["single_output"],
                inputs,
            )
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{path} is not a valid sk_mmoe file: missing or bad {exc}") from None
        return estimator
