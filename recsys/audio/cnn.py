"""Chunk CNN genre classifier: log-mel chunks -> small CNN -> per-chunk softmax -> song vector + vote.

Training splits by *song* (StratifiedKFold over songs), so no chunk of a test song is ever seen in
training; each fold also fits a classical baseline (MFCC/chroma statistics + logistic regression)
on the same songs, and the report gives per-chunk and per-song accuracy/macro-F1 for both.
A model directory holds ``model.pt`` (state_dict, loaded with ``weights_only=True``),
``manifest.json`` (classes, front-end settings, checksums) and ``metrics.json`` (the cross-validation report).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.special import softmax
import pandas as pd

from ..errors import InputError, ModelError, RecsysError, SchemaError, first_line
from ..io import artifact_dir, read_manifest, read_table, write_json
from .frontend import chroma_stft, log_mel, mel_power, mfcc, prepare, stft_magnitude
from .load import AUDIO_SUFFIXES, chunk, load_excerpt

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: io manifest (kind, version, SHA-256 per file)
KIND = "recsys.cnn_model"
BACKBONES = ("musicnn", "scratch")
MODEL_NAMES = {"musicnn": "musicnn head (frozen pretrained tagger + logistic regression)",
               "scratch": "chunk CNN (trained from scratch)"}


@dataclass(frozen=True)
class CNNConfig:
    """Front-end, architecture and training settings (the front-end part is saved with the model)."""

    sr: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    chunk_seconds: float = 3.0
    train_hop_seconds: float | None = 1.5  # overlapping training chunks (inference uses no overlap)
    excerpt_seconds: float | None = 30.0
    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 6
    val_fraction: float = 0.2
    folds: int = 5
    augment: bool = True
    seed: int = 0
    # "musicnn": frozen pretrained tagger features (penultimate layer + tag logits per chunk) and a
    # logistic-regression head; "scratch": the small chunk CNN above, trained from zero
    backbone: str = "musicnn"
    head_c: float = 0.5  # inverse L2 strength of the musicnn head

    def frontend(self) -> dict[str, Any]:
        """The settings inference must reproduce exactly."""
        return {k: getattr(self, k) for k in ("sr", "n_fft", "hop_length", "n_mels", "chunk_seconds",
                                              "excerpt_seconds", "backbone")}


# ----------------------------------------------------------------------------- features

def chunk_logmel(y: np.ndarray, sr: int, *, target_sr: int = 22050, n_fft: int = 1024, hop_length: int = 512,
                 n_mels: int = 64, chunk_seconds: float = 3.0, hop_seconds: float | None = None,
                 baseline: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """dB log-mel of every chunk, shape ``(n_chunks, n_mels, frames)`` (zero chunks when too short).

    With ``baseline=True`` also returns per-chunk MFCC and chroma mean/std (the classical baseline's
    input), computed from the same STFT.
    """
    y = prepare(y, sr, target_sr)
    chunks = chunk(y, target_sr, seconds=chunk_seconds, hop_seconds=hop_seconds)
    if len(chunks) == 0:
        frames = 1 + int(round(chunk_seconds * target_sr)) // hop_length
        return (np.zeros((0, n_mels, frames), np.float32),
                (np.zeros((0, 64), np.float32) if baseline else None))
    S = stft_magnitude(chunks, n_fft=n_fft, hop_length=hop_length)
    M_db = log_mel(M=mel_power(S=S, sr=target_sr, n_fft=n_fft, n_mels=n_mels), top_db=80.0).astype(np.float32)
    base = None
    if baseline:
        mf = mfcc(M_db=M_db, n_mfcc=20)
        ch = chroma_stft(S=S, sr=target_sr, n_fft=n_fft)
        base = np.concatenate([mf.mean(-1), mf.std(-1), ch.mean(-1), ch.std(-1)], axis=1).astype(np.float32)
    return M_db, base


def chunk_tagger_features(y: np.ndarray, sr: int, *, target_sr: int = 22050, chunk_seconds: float = 3.0,
                          hop_seconds: float | None = None) -> np.ndarray:
    """Frozen musicnn features of every chunk (the same chunks as :func:`chunk_logmel`), ``(n, 250)``."""
    from .musicnn import chunk_features

    y = prepare(y, sr, target_sr)
    return chunk_features(chunk(y, target_sr, seconds=chunk_seconds, hop_seconds=hop_seconds), target_sr)


# ----------------------------------------------------------------------------- model

def _torch():
    import torch

    return torch


def build_model(n_mels: int, n_classes: int, *, channels: Sequence[int] = (16, 32, 64), dropout: float = 0.3):
    """Small 2-D CNN over (mel, time) with per-band input standardisation stored as buffers."""
    torch = _torch()
    nn = torch.nn

    class ChunkCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mu", torch.zeros(n_mels))
            self.register_buffer("sigma", torch.ones(n_mels))
            layers: list[nn.Module] = []
            c_in = 1
            for c in channels:
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                           nn.MaxPool2d(2)]
                c_in = c
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, n_classes))

        def forward(self, x):  # x: (batch, n_mels, frames) in dB
            x = (x - self.mu[None, :, None]) / self.sigma[None, :, None]
            h = self.features(x.unsqueeze(1))
            h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
            return self.head(h)

    return ChunkCNN()


def build_head(dim: int, n_classes: int):
    """Linear softmax head over standardised tagger features (the musicnn backbone's classifier)."""
    torch = _torch()

    class TaggerHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mu", torch.zeros(dim))
            self.register_buffer("sigma", torch.ones(dim))
            self.linear = torch.nn.Linear(dim, n_classes)

        def forward(self, x):  # x: (batch, dim) tagger features
            return self.linear((x - self.mu) / self.sigma)

    return TaggerHead()


def fit_head(X: np.ndarray, y: np.ndarray, n_classes: int, config: CNNConfig):
    """Class-balanced logistic regression on frozen tagger features, as a torch :func:`build_head`."""
    from sklearn.linear_model import LogisticRegression

    torch = _torch()
    mu, sigma = X.mean(0), X.std(0) + 1e-3
    lr = LogisticRegression(C=config.head_c, max_iter=3000, class_weight="balanced")
    lr.fit((X - mu) / sigma, y)
    coef, bias = lr.coef_, lr.intercept_
    if len(lr.classes_) == 2:  # sklearn's binary form: one logit for the second class
        coef, bias = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, bias[0]])
    W = np.zeros((n_classes, X.shape[1]), np.float32)
    b = np.full(n_classes, -1e4, np.float32)  # a class absent from training is never predicted
    W[lr.classes_], b[lr.classes_] = coef, bias
    head = build_head(X.shape[1], n_classes)
    with torch.no_grad():
        head.mu.copy_(torch.from_numpy(mu.astype(np.float32)))
        head.sigma.copy_(torch.from_numpy(sigma.astype(np.float32)))
        head.linear.weight.copy_(torch.from_numpy(W))
        head.linear.bias.copy_(torch.from_numpy(b))
    return head.eval(), [{"epoch": 1, "solver_iterations": int(np.max(lr.n_iter_))}]


def fit_model(X: np.ndarray, y: np.ndarray, n_classes: int, config: CNNConfig, *,
              X_val: np.ndarray | None = None, y_val: np.ndarray | None = None, progress: bool = False):
    """The configured backbone's classifier: a head on tagger features (trains on train + val songs:
    no early stopping), or the from-scratch CNN."""
    if config.backbone == "musicnn":
        if X_val is not None and len(X_val):
            X, y = np.concatenate([X, X_val]), np.concatenate([y, y_val])
        return fit_head(X, y, n_classes, config)
    return fit_cnn(X, y, n_classes, config, X_val=X_val, y_val=y_val, progress=progress)


def augment(x, rng: np.random.Generator):
    """Training-time augmentation on dB log-mels.

    Applies gain, circular time shift, noise floor and SpecAugment masks.
    """
    torch = _torch()
    b, m, t = x.shape
    x = x.clone()
    x += torch.from_numpy(rng.uniform(-6, 6, size=(b, 1, 1)).astype(np.float32))             # gain
    shifts = rng.integers(0, t, size=b)
    x = torch.stack([torch.roll(x[i], int(shifts[i]), dims=-1) for i in range(b)])           # time shift
    floor = (x.amax(dim=(1, 2), keepdim=True)
             - torch.from_numpy(rng.uniform(25, 60, (b, 1, 1)).astype(np.float32)))
    noisy = torch.from_numpy(rng.random(b) < 0.5)[:, None, None]
    x = torch.where(noisy, 10 * torch.log10(10 ** (x / 10) + 10 ** (floor / 10)), x)           # noise floor
    for i in range(b):                                                                           # SpecAugment
        fill = x[i].mean()
        if rng.random() < 0.5:
            w = int(rng.integers(1, max(2, m // 8)))
            f0 = int(rng.integers(0, m - w))
            x[i, f0:f0 + w, :] = fill
        if rng.random() < 0.5:
            w = int(rng.integers(1, max(2, t // 8)))
            t0 = int(rng.integers(0, t - w))
            x[i, :, t0:t0 + w] = fill
    return x


def _predict_logits(model, X: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    torch = _torch()
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(X), batch_size):
            out.append(model(torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fit_cnn(X: np.ndarray, y: np.ndarray, n_classes: int, config: CNNConfig, *,
            X_val: np.ndarray | None = None, y_val: np.ndarray | None = None, progress: bool = False):
    """Train a fresh CNN on chunks; early stopping on validation chunk loss; returns (best model, history)."""
    torch = _torch()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_model(X.shape[1], n_classes, channels=config.channels, dropout=config.dropout)
    model.mu.copy_(torch.from_numpy(X.mean(axis=(0, 2))))
    model.sigma.copy_(torch.from_numpy(X.std(axis=(0, 2)) + 1e-3))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, config.epochs))
    # class weights: balanced over chunks, so a genre with long songs does not dominate
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    weights = torch.from_numpy(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes,
                                        0.0).astype(np.float32))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05)
    has_val = X_val is not None and len(X_val) > 0
    best_state, best_loss, bad, history = None, np.inf, 0, []
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    from tqdm.auto import tqdm

    epochs = tqdm(range(config.epochs), desc="training", unit="epoch", leave=False, disable=not progress)
    for epoch in epochs:
        model.train()
        order = rng.permutation(len(X))
        total = 0.0
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2:
                continue
            xb = Xt[idx]
            if config.augment:
                xb = augment(xb, rng)
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        rec = {"epoch": epoch + 1, "train_loss": total / max(len(X), 1)}
        if has_val:
            p = softmax(_predict_logits(model, X_val), axis=1)
            rec["val_loss"] = float(-np.mean(np.log(np.clip(p[np.arange(len(y_val)), y_val], 1e-9, 1))))
            rec["val_acc"] = float(np.mean(p.argmax(1) == y_val))
            if rec["val_loss"] < best_loss - 1e-4:
                best_loss, bad, best_state = rec["val_loss"], 0, copy.deepcopy(model.state_dict())
                rec["best"] = True
            else:
                bad += 1
        history.append(rec)
        epochs.set_postfix({k: round(v, 3) for k, v in rec.items()
                            if k in ("train_loss", "val_loss", "val_acc")})
        if has_val and bad >= config.patience:
            break
    epochs.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


# ----------------------------------------------------------------------------- data

def labelled_files(audio_dir: str | Path, labels: str | Path | None = None) -> pd.DataFrame:
    """``file`` (relative to audio_dir), ``genre`` from a labels CSV ``file,genre`` or a folder per genre."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise InputError(f"{audio_dir}: audio directory not found")
    if labels is not None:
        df = read_table(labels)
        missing = [c for c in ("file", "genre") if c not in df.columns]
        if missing:
            raise SchemaError(f"{labels}: missing column(s) {', '.join(missing)} (need file,genre)")
        df = df[["file", "genre"]].dropna().astype(str)
        absent = [f for f in df["file"] if not (audio_dir / f).exists()]
        if absent:
            raise InputError(f"{labels}: {len(absent)} listed file(s) not found under {audio_dir} "
                             f"(first: {absent[0]})")
    else:
        rows = [(str(p.relative_to(audio_dir)), p.parent.name) for p in sorted(audio_dir.rglob("*"))
                if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and p.parent != audio_dir]
        df = pd.DataFrame(rows, columns=["file", "genre"])
    if df.empty:
        raise InputError(f"{audio_dir}: no labelled audio "
                         "(give --labels file,genre or one sub-folder per genre)")
    if df["genre"].nunique() < 2:
        raise SchemaError("need at least two genres to train a classifier")
    return df.reset_index(drop=True)


def load_songs(audio_dir: Path, files: Iterable[str], config: CNNConfig, *, progress: bool = True,
               hop_seconds: float | None = None) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Decode each song's excerpt once; chunk log-mels + baseline features; failures as reasons."""
    from tqdm.auto import tqdm

    mels, bases, reasons = [], [], []
    for f in tqdm(list(files), desc="decoding", unit="song", disable=not progress):
        try:
            y, sr = load_excerpt(audio_dir / f, sr=config.sr, seconds=config.excerpt_seconds)
            m, b = chunk_logmel(y, sr, target_sr=config.sr, n_fft=config.n_fft, hop_length=config.hop_length,
                                n_mels=config.n_mels, chunk_seconds=config.chunk_seconds,
                                hop_seconds=hop_seconds, baseline=True)
            if config.backbone == "musicnn" and len(m):
                m = chunk_tagger_features(y, sr, target_sr=config.sr, chunk_seconds=config.chunk_seconds,
                                          hop_seconds=hop_seconds)
            reason = "" if len(m) else f"shorter than one {config.chunk_seconds:g}-s chunk"
        except RecsysError as exc:  # unreadable, empty, needs ffmpeg: skipped with its reason
            m, b, reason = None, None, str(exc)
        mels.append(m)
        bases.append(b)
        reasons.append(reason)
    return mels, bases, reasons


# ----------------------------------------------------------------------------- metrics

def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    if len(y_true) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0}
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "n": int(len(y_true))}


def song_vote(chunk_probs: np.ndarray) -> tuple[np.ndarray, int]:
    """Song probability vector (mean over chunks) and the mode of chunk argmaxes (ties: higher mean prob)."""
    mean = chunk_probs.mean(axis=0)
    counts = np.bincount(chunk_probs.argmax(axis=1), minlength=chunk_probs.shape[1])
    tied = np.flatnonzero(counts == counts.max())
    return mean, int(tied[np.argmax(mean[tied])])


def _inner_split(songs: np.ndarray, labels: np.ndarray, fraction: float,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ~fraction of each genre's songs for early stopping (never a genre's only song)."""
    rng = np.random.default_rng(seed)
    val = []
    for g in np.unique(labels):
        s = songs[labels == g]
        k = int(round(fraction * len(s)))
        if len(s) >= 3 and k >= 1:
            val.extend(rng.choice(s, size=k, replace=False))
    val = np.array(sorted(val), dtype=songs.dtype)
    return np.setdiff1d(songs, val), val


def _stack(items: list[np.ndarray], songs: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    songs = list(songs)
    X = np.concatenate([items[s] for s in songs]) if songs else np.zeros((0,))
    owner = np.concatenate([np.full(len(items[s]), s) for s in songs]) if songs else np.zeros(0, int)
    return X, owner


def cross_validate(mels: list[np.ndarray], bases: list[np.ndarray], labels: np.ndarray, n_classes: int,
                   config: CNNConfig, *, progress: bool = True) -> dict[str, Any]:
    """Stratified k-fold over songs: CNN and baseline on identical folds; chunk- and song-level metrics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    songs = np.arange(len(mels))
    per_class = np.bincount(labels, minlength=n_classes)
    min_count = int(per_class[per_class > 0].min())
    n_splits = min(config.folds, min_count)
    if n_splits < 2:
        raise SchemaError("need at least 2 usable songs per genre for song-grouped folds "
                          f"(smallest genre has {min_count})")
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=config.seed)
    pooled: dict[str, list] = {k: [] for k in ("chunk_true", "cnn_chunk", "base_chunk", "song_true",
                                              "cnn_song_mean", "cnn_song_vote", "base_song")}
    folds = []
    from tqdm.auto import tqdm

    splits = tqdm(list(skf.split(songs, labels)), desc="cross-validation", unit="fold", disable=not progress)
    for k, (tr, te) in enumerate(splits):
        t0 = time.perf_counter()
        assert not set(tr) & set(te)  # song-grouped by construction
        fit_s, val_s = _inner_split(tr, labels[tr], config.val_fraction, config.seed + k)
        Xtr, otr = _stack(mels, fit_s)
        Xval, oval = _stack(mels, val_s)
        Xte, ote = _stack(mels, te)
        cfg = dataclasses.replace(config, seed=config.seed + k)
        model, hist = fit_model(Xtr, labels[otr], n_classes, cfg, X_val=Xval if len(val_s) else None,
                                y_val=labels[oval] if len(val_s) else None)
        p_cnn = softmax(_predict_logits(model, Xte), axis=1)
        Btr, _ = _stack(bases, tr)  # the baseline has no early stopping: it trains on all training songs
        Bte, _ = _stack(bases, te)
        base = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
        base.fit(Btr, labels[np.concatenate([np.full(len(bases[s]), s) for s in tr])])
        p_base = np.zeros((len(Bte), n_classes))
        p_base[:, base.classes_] = base.predict_proba(Bte)
        fold = {"fold": k, "train_songs": int(len(tr)), "test_songs": int(len(te)), "epochs": len(hist),
                "seconds": round(time.perf_counter() - t0, 1)}
        pooled["chunk_true"].append(labels[ote])
        pooled["cnn_chunk"].append(p_cnn.argmax(1))
        pooled["base_chunk"].append(p_base.argmax(1))
        for s in te:
            sel = ote == s
            mean, vote = song_vote(p_cnn[sel])
            pooled["song_true"].append([labels[s]])
            pooled["cnn_song_mean"].append([int(mean.argmax())])
            pooled["cnn_song_vote"].append([vote])
            pooled["base_song"].append([int(p_base[sel].mean(0).argmax())])
        fold["cnn_song_vote_acc"] = float(np.mean(np.concatenate(pooled["cnn_song_vote"][-len(te):])
                                                  == labels[te]))
        folds.append(fold)
        splits.set_postfix(song_vote_acc=round(fold["cnn_song_vote_acc"], 3))
        log.info("fold %d: %s", k, fold)
    cat = {k: np.concatenate(v) for k, v in pooled.items()}
    chance = float(np.bincount(labels).max() / len(labels))
    return {
        "n_splits": n_splits, "grouping": "song (StratifiedKFold over songs)",
        "n_songs": int(len(labels)), "n_test_chunks": int(len(cat["chunk_true"])),
        "model": MODEL_NAMES.get(config.backbone, config.backbone),
        "majority_song_accuracy": chance,
        "cnn": {"chunk": _metrics(cat["chunk_true"], cat["cnn_chunk"]),
                "song_vote": _metrics(cat["song_true"], cat["cnn_song_vote"]),
                "song_mean": _metrics(cat["song_true"], cat["cnn_song_mean"])},
        "baseline_logreg_mfcc_chroma": {"chunk": _metrics(cat["chunk_true"], cat["base_chunk"]),
                                        "song_mean": _metrics(cat["song_true"], cat["base_song"])},
        "folds": folds,
    }


# ----------------------------------------------------------------------------- train / save / load

def fit_and_save(table: pd.DataFrame, mels: list, bases: list, reasons: list[str], out: str | Path, *,
                 config: CNNConfig, cross_validation: bool = True, progress: bool = True,
                 force: bool = False) -> dict[str, Any]:
    """Given decoded songs (``reasons[i]`` non-empty = unusable), run song-grouped CV.

    Then train on all usable songs and save the final model.
    """
    skipped = [(f, r) for f, r in zip(table["file"], reasons) if r]
    keep = [i for i, r in enumerate(reasons) if not r]
    if skipped:
        log.info("skipped %d file(s): %s", len(skipped), "; ".join(f"{f}: {r}" for f, r in skipped[:5]))
    table = table.iloc[keep].reset_index(drop=True)
    mels = [mels[i] for i in keep]
    bases = [bases[i] for i in keep]
    classes = sorted(table["genre"].unique())
    if len(classes) < 2:
        raise SchemaError("need at least two genres with usable audio")
    y = table["genre"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    report: dict[str, Any] = {"classes": classes, "skipped": [{"file": f, "reason": r} for f, r in skipped]}
    if cross_validation and config.folds >= 2:
        report["cv"] = cross_validate(mels, bases, y, len(classes), config, progress=progress)
    fit_s, val_s = _inner_split(np.arange(len(mels)), y, config.val_fraction, config.seed)
    Xtr, otr = _stack(mels, fit_s)
    Xval, oval = _stack(mels, val_s)
    model, hist = fit_model(Xtr, y[otr], len(classes), config, X_val=Xval if len(val_s) else None,
                            y_val=y[oval] if len(val_s) else None, progress=progress)
    report["final"] = {"train_songs": int(len(fit_s)), "val_songs": int(len(val_s)), "epochs": len(hist),
                       "history": hist}
    CNNModel(model=model, classes=classes, frontend=config.frontend(),
             architecture=({"backbone": "musicnn", "dim": int(Xtr.shape[1])} if config.backbone == "musicnn"
                           else {"channels": list(config.channels), "dropout": config.dropout})
             ).save(out, config=dataclasses.asdict(config), report=report, n_songs=int(len(mels)),
                    force=force)
    return report


@dataclass
class CNNModel:
    """A trained chunk CNN: the network, its classes and the front-end it was trained with.

    Saved as an artefact directory: ``model.pt`` (state_dict), ``metrics.json`` and ``manifest.json``.
    """

    model: Any
    classes: list[str]
    frontend: dict[str, Any]
    architecture: dict[str, Any]
    sha256: str = ""

    def chunk_probs(self, y: np.ndarray, sr: int, *, batch_size: int = 64) -> np.ndarray:
        """Softmax per non-overlapping chunk, shape ``(n_chunks, n_classes)``."""
        fe = self.frontend
        if fe.get("backbone") == "musicnn":
            X = chunk_tagger_features(y, sr, target_sr=fe["sr"], chunk_seconds=fe["chunk_seconds"])
        else:
            X, _ = chunk_logmel(y, sr, target_sr=fe["sr"], n_fft=fe["n_fft"], hop_length=fe["hop_length"],
                                n_mels=fe["n_mels"], chunk_seconds=fe["chunk_seconds"])
        if len(X) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return softmax(_predict_logits(self.model, X, batch_size=batch_size), axis=1)

    def save(self, out: str | Path, *, config: dict[str, Any] | None = None,
             report: dict[str, Any] | None = None, n_songs: int | None = None, force: bool = False) -> Path:
        """Write the model directory atomically (never over a directory recsys did not write)."""
        torch = _torch()
        with artifact_dir(out, kind=KIND, version=FORMAT_VERSION, settings=config or {},
                          force=force) as (tmp, extra):
            torch.save(self.model.state_dict(), tmp / "model.pt")
            write_json(tmp / "metrics.json", report or {})
            extra.update(classes=list(self.classes), frontend=self.frontend, architecture=self.architecture,
                         torch=torch.__version__, n_songs=n_songs,
                         created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return Path(out)

    @classmethod
    def load(cls, path: str | Path) -> "CNNModel":
        """Load a model directory (checksums verified; state_dict read with ``weights_only=True``)."""
        torch = _torch()
        path = Path(path)
        meta = read_manifest(path, kind=KIND, version=FORMAT_VERSION, what="CNN model", error=ModelError)
        try:
            state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
            arch = meta["architecture"]
            if arch.get("backbone") == "musicnn":
                model = build_head(int(arch["dim"]), len(meta["classes"]))
            else:
                model = build_model(meta["frontend"]["n_mels"], len(meta["classes"]),
                                    channels=arch["channels"], dropout=arch["dropout"])
            model.load_state_dict(state)
        except (KeyError, RuntimeError, EOFError, ValueError, OSError) as exc:
            raise ModelError(f"{path}: cannot load CNN weights "
                             f"({type(exc).__name__}: {first_line(exc, 200)})") from None
        model.eval()
        return cls(model=model, classes=list(meta["classes"]), frontend=dict(meta["frontend"]),
                   architecture=dict(arch), sha256=meta["files"]["model.pt"][:32])


def predict_files(model_dir: str | Path, audio_dir: str | Path, *,
                  progress: bool = True) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One row per audio file: ``file``, ``predicted_genre`` (vote), ``p_<genre>`` (mean); plus failures."""
    from tqdm.auto import tqdm

    m = CNNModel.load(model_dir)
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise InputError(f"{audio_dir}: audio directory not found")
    files = sorted(p for p in audio_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise InputError(f"{audio_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    rows, failures = [], []
    for p in tqdm(files, desc="predicting", unit="song", disable=not progress):
        rel = str(p.relative_to(audio_dir))
        row: dict[str, Any] = {"file": rel, "predicted_genre": ""}
        row.update({f"p_{c}": float("nan") for c in m.classes})
        try:
            y, sr = load_excerpt(p, sr=m.frontend["sr"], seconds=m.frontend["excerpt_seconds"])
            probs = m.chunk_probs(y, sr)
            if len(probs) == 0:
                raise InputError(f"shorter than one {m.frontend['chunk_seconds']:g}-s chunk")
            mean, vote = song_vote(probs)
            row["predicted_genre"] = m.classes[vote]
            row.update({f"p_{c}": float(v) for c, v in zip(m.classes, mean)})
        except RecsysError as exc:  # unreadable, too short, ffmpeg missing: reported, batch goes on
            failures.append((rel, str(exc)))
        except Exception as exc:  # a batch never stops on one file
            failures.append((rel, f"{type(exc).__name__}: {exc}"))
        rows.append(row)
    return pd.DataFrame(rows), failures
