"""A small torch DNN for tabular genre classification (CPU, deterministic with a seed).

Dense layers with BatchNorm, LeakyReLU and dropout; L2 regularisation through the optimiser's
``weight_decay``; class-weighted cross-entropy; early stopping on an internal stratified
validation split. Used as the last step of :class:`recsys.genres.tabular.GenreClassifier`'s
pipeline, so it receives imputed, scaled (and, when enabled, SMOTE-resampled) rows.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ModelError, first_line


def build_mlp(n_features: int, n_classes: int, hidden: Sequence[int], dropout: float):
    """Linear -> BatchNorm -> LeakyReLU -> Dropout per hidden layer, then a linear output."""
    from torch import nn

    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.BatchNorm1d(int(h)), nn.LeakyReLU(0.01), nn.Dropout(dropout)]
        width = int(h)
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


@contextlib.contextmanager
def _torch_session(seed: int, n_threads: int):
    """Seed torch's RNG and thread count for a block, restoring the caller's state afterwards."""
    import torch

    old_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if n_threads > 0:
            torch.set_num_threads(n_threads)
        try:
            yield torch
        finally:
            torch.set_num_threads(old_threads)


#: The network's hyperparameters and their defaults: written here only (GenreModelConfig reads them).
DEFAULTS: dict[str, Any] = {"hidden": (256, 128, 64), "dropout": 0.3, "weight_decay": 1e-4, "lr": 1e-3,
                            "epochs": 100, "batch_size": 256, "patience": 10, "val_fraction": 0.1}


class TorchMLPClassifier:
    """scikit-learn-style classifier on integer labels 0..K-1 (the tabular pipeline encodes them);
    keyword parameters: :data:`DEFAULTS`, ``random_state``, ``n_threads``."""

    def __init__(self, *, random_state: int = 0, n_threads: int = 1, **params: Any) -> None:
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown parameter(s) {', '.join(sorted(unknown))} for TorchMLPClassifier")
        for k, v in {**DEFAULTS, **params}.items():
            setattr(self, k, tuple(v) if k == "hidden" else v)
        self.random_state = random_state
        self.n_threads = n_threads

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn API, so the model can be cloned and grid-searched)."""
        return {k: getattr(self, k) for k in (*DEFAULTS, "random_state", "n_threads")}

    def set_params(self, **params: Any) -> "TorchMLPClassifier":
        """Set constructor parameters (scikit-learn API); returns self."""
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def _split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(len(y))
        counts = np.bincount(y)
        n_val = int(round(self.val_fraction * len(y)))
        if self.val_fraction <= 0 or n_val < len(counts) or counts[counts > 0].min() < 2:
            return idx, idx[:0]
        from sklearn.model_selection import train_test_split

        tr, va = train_test_split(idx, test_size=n_val, stratify=y, random_state=self.random_state)
        return np.sort(tr), np.sort(va)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "TorchMLPClassifier":
        """Train with class-balanced loss, stopping early on a stratified validation split; returns self."""
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        n_classes = int(y.max()) + 1
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = n_classes
        self.classes_ = np.arange(n_classes)
        tr, va = self._split(y)
        counts = np.bincount(y[tr], minlength=n_classes).astype(np.float64)
        weights = np.where(counts > 0, len(tr) / (n_classes * np.maximum(counts, 1)), 0.0)
        with _torch_session(self.random_state, self.n_threads) as torch:
            net = build_mlp(X.shape[1], n_classes, self.hidden, self.dropout)
            loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
            gen = torch.Generator().manual_seed(self.random_state)
            best_loss, best_state, best_epoch, bad = np.inf, None, 0, 0
            self.history_: list[dict[str, float]] = []
            tr_t = torch.from_numpy(tr)
            for epoch in range(self.epochs):
                net.train()
                order = tr_t[torch.randperm(len(tr_t), generator=gen)]
                total = 0.0
                for start in range(0, len(order), self.batch_size):
                    batch = order[start:start + self.batch_size]
                    if len(batch) < 2:  # BatchNorm needs two rows in training mode
                        continue
                    opt.zero_grad()
                    loss = loss_fn(net(Xt[batch]), yt[batch])
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(batch)
                record = {"epoch": epoch + 1, "train_loss": total / max(len(order), 1)}
                if len(va):
                    net.eval()
                    with torch.no_grad():
                        val_loss = float(loss_fn(net(Xt[va]), yt[va]))
                    record["val_loss"] = val_loss
                    if val_loss < best_loss - 1e-4:
                        best_loss, best_epoch, bad = val_loss, epoch + 1, 0
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    else:
                        bad += 1
                self.history_.append(record)
                if len(va) and bad >= self.patience:
                    break
            if best_state is not None:
                net.load_state_dict(best_state)
            else:
                best_epoch = len(self.history_)
            net.eval()
        self.net_ = net
        self.best_epoch_ = best_epoch
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, n_classes_)``, computed in batches of 4096 rows."""
        import torch

        X = torch.from_numpy(np.asarray(X, dtype=np.float32))
        self.net_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(X), 4096):
                out.append(torch.softmax(self.net_(X[start:start + 4096]), dim=1).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.n_classes_))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class index per row."""
        return np.argmax(self.predict_proba(X), axis=1)

    # -- persistence: torch state_dict + JSON architecture (never pickle) ----------------------
    def save_state(self, path: str | os.PathLike) -> dict[str, Any]:
        """Write the state_dict to ``path``; return the architecture to store in JSON."""
        import torch

        torch.save(self.net_.state_dict(), str(path))
        return {"n_features": int(self.n_features_in_), "n_classes": int(self.n_classes_),
                "hidden": [int(h) for h in self.hidden], "dropout": float(self.dropout),
                "best_epoch": int(self.best_epoch_)}

    @classmethod
    def load_state(cls, path: str | os.PathLike, arch: dict[str, Any], *, n_features: int,
                   n_classes: int) -> "TorchMLPClassifier":
        """Rebuild the network from ``arch`` and load weights with ``weights_only=True``."""
        import torch

        path = Path(path)
        if not path.exists():
            raise ModelError(f"{path}: model file missing")
        try:
            hidden = tuple(int(h) for h in arch["hidden"])
            dropout = float(arch["dropout"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: model architecture missing from genre_model.json") from None
        if (int(arch.get("n_features", n_features)) != n_features
                or int(arch.get("n_classes", n_classes)) != n_classes):
            raise ModelError(f"{path}: architecture does not match the saved features/classes")
        self = cls(hidden=hidden, dropout=dropout)
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            net = build_mlp(n_features, n_classes, hidden, dropout)
            net.load_state_dict(state, strict=True)
        except Exception as exc:  # truncated zip, wrong tensors, not a torch file
            raise ModelError(f"{path}: cannot load torch state_dict ({first_line(exc, 200)})") from None
        net.eval()
        self.net_ = net
        self.n_features_in_ = n_features
        self.n_classes_ = n_classes
        self.classes_ = np.arange(n_classes)
        self.best_epoch_ = int(arch.get("best_epoch", 0))
        return self
