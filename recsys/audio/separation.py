"""Vocal / accompaniment separation (Demucs or a classical librosa fallback) and the ``stems`` block.

The stems block describes a track's instrumentation without the voice: it separates the
excerpt, then summarises the accompaniment's amplitude envelope, spectral centroid,
zero-crossing rate and spectral flux. Demucs needs pretrained weights that users download
once; when they are absent the classical backend (two-stage harmonic/percussive separation with
REPET and REPET-SIM repeating-background estimates, refined by a Wiener filter) keeps everything working
offline, and the block says which one ran.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import DependencyError, InputError, ModelError
from ..config import looks_like_path, to_bool
from .frontend import summarise as frontend_summarise
from .load import resample

log = logging.getLogger(__name__)

BACKENDS = ("auto", "demucs", "classical")
DEFAULT_DEMUCS_MODEL = "htdemucs"
HOW_TO_GET_DEMUCS = (
    "get them once where the network allows (`recsys stems separate FILE --out DIR --backend demucs "
    "--download`, or `python -m demucs -n htdemucs any.wav`), or copy a demucs model file/folder "
    "(.th/.yaml or .safetensors) here and pass --model PATH (--set stems.model=PATH); "
    "--backend classical works offline")


@dataclass
class Stems:
    """Two mono stems at ``sr`` Hz that sum (approximately, for Demucs) to the input mixture."""

    vocals: np.ndarray
    accompaniment: np.ndarray
    sr: int
    backend: str


@runtime_checkable
class Separator(Protocol):
    """Splits a mono mixture into vocals and accompaniment."""

    backend: str

    def identity(self) -> dict[str, Any]:
        """What determines the output (backend, model content, settings): part of cache keys."""

    def separate(self, y: np.ndarray, sr: int) -> Stems:
        """Stems of the mono float32 signal ``y`` at ``sr`` Hz, returned at the same rate."""


def _opt_float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected a number, got {value!r}") from None


def _fix_length(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


# --------------------------------------------------------------------------- classical backend

def _soft(target: np.ndarray, other: np.ndarray, power: float) -> np.ndarray:
    """Wiener-style soft mask ``target^p / (target^p + other^p)`` (0 where both are 0)."""
    t, o = np.power(target, power), np.power(other, power)
    return np.divide(t, t + o, out=np.zeros_like(t), where=(t + o) > 0)


def _repeating(S: np.ndarray, *, sr: int, hop: int, seconds: float) -> np.ndarray:
    """REPET-SIM: median of each frame's most similar frames (cosine, at least ``seconds`` away), <= S."""
    import librosa

    n_frames = S.shape[1]
    width = int(min(librosa.time_to_frames(seconds, sr=sr, hop_length=hop), max(1, (n_frames - 1) // 3)))
    k = int(min(10, max(2, n_frames // 20)))
    return np.minimum(S, librosa.decompose.nn_filter(S, aggregate=np.median, metric="cosine",
                                                     width=width, k=k))


def _periodic(S: np.ndarray, *, sr: int, hop: int, seconds: tuple[float, float]) -> np.ndarray | None:
    """Classic REPET: the period (``seconds`` range, at least two cycles) that maximises the beat spectrum
    (mean autocorrelation of the power spectrogram's rows); the median cycle tiled, <= S.
    None if too short."""
    n = S.shape[1]
    lo, hi = int(seconds[0] * sr / hop), int(min(seconds[1] * sr / hop, n // 2))
    if hi <= lo + 1:
        return None
    F = np.fft.rfft(S.astype(np.float64) ** 2, n=2 * n, axis=1)
    beat = np.fft.irfft(np.abs(F) ** 2, axis=1)[:, :n].mean(axis=0) / (n - np.arange(n))
    period = lo + int(np.argmax(beat[lo:hi]))
    cycles = int(np.ceil(n / period))
    padded = np.pad(S, ((0, 0), (0, cycles * period - n)), constant_values=np.nan)
    cycle = np.nanmedian(padded.reshape(S.shape[0], cycles, period), axis=1)
    return np.minimum(S, np.tile(cycle, (1, cycles))[:, :n])


def repet_sim(y: np.ndarray, sr: int, *, n_fft: int = 2048, hop_length: int = 512, seconds: float = 2.0,
              margin: float = 10.0, power: float = 2.0) -> np.ndarray:
    """Textbook REPET-SIM vocal estimate (Rafii & Pardo 2012, as in librosa's vocal separation example).

    The reference the classical separator is measured against (``scripts/bench_stems.py``).
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    D = librosa.stft(y, n_fft=n_fft, hop_length=hop_length)
    S = np.abs(D)
    if S.shape[1] < 8 or not np.any(S > 0):
        return np.zeros_like(y)
    rep = _repeating(S, sr=sr, hop=hop_length, seconds=seconds)
    mask = librosa.util.softmask(S - rep, margin * rep, power=power)
    return librosa.istft(mask * D, hop_length=hop_length, n_fft=n_fft, length=len(y)).astype(np.float32)


@dataclass
class ClassicalSeparator:
    """Offline vocal separation (librosa + scipy, no weights): two-stage HPSS with REPET-SIM, Wiener-refined.

    1. Long window (``n_fft_long`` 4096, ~190 ms at 22 kHz): sustained notes are horizontal ridges
       (median over ``harmonic_frames`` frames) and repeating accompaniment is found by REPET-SIM
       (median of the most similar frames >= ``similarity_seconds`` away, weighted ``repeat_weight``)
       and by classic REPET (median cycle of the strongest period in ``period_seconds``, weighted
       ``period_weight``: loops); a voice, whose pitch moves within such a window, is spread
       across frequency like a transient (median over ``percussive_bins`` bins). A soft mask keeps
       that part.
    2. Short window (``n_fft_short`` 512, ~23 ms) on what is left: there the voice is steady over a
       few frames (``voice_frames``) while drum hits stay vertical (``percussive_bins_short``).
    3. Wiener refinement (``iterations``): the power spectra of the vocal estimate and of the
       accompaniment (smoothed over ``accompaniment_frames`` frames) give the final soft mask on
       the mixture's ``n_fft`` (2048) STFT. Vocals are band-limited to ``fmin``..``fmax``; the two stems
       sum exactly to the input.
    """

    n_fft_long: int = 4096
    harmonic_frames: int = 9
    percussive_bins: int = 9
    repeat_weight: float = 0.5
    similarity_seconds: float = 2.0
    period_weight: float = 1.0
    period_seconds: tuple[float, float] = (1.0, 8.0)
    n_fft_short: int = 512
    voice_frames: int = 3
    percussive_bins_short: int = 5
    n_fft: int = 2048
    accompaniment_frames: int = 9
    iterations: int = 1
    power: float = 2.0
    fmin: float = 120.0
    fmax: float = 8000.0
    backend: str = dataclasses.field(default="classical", init=False)

    def identity(self) -> dict[str, Any]:
        return {"backend": "classical", "method": "hpss2+repet+wiener/2",
                **{k: v for k, v in dataclasses.asdict(self).items() if k != "backend"}}

    def separate(self, y: np.ndarray, sr: int) -> Stems:
        import librosa
        from scipy.ndimage import median_filter

        y = np.asarray(y, dtype=np.float32)

        def fit(n: int) -> int:  # shorter inputs get shorter windows
            while n > 64 and n > len(y):
                n //= 2
            return n

        n_long, n_short, n_mid = fit(self.n_fft_long), fit(self.n_fft_short), fit(self.n_fft)
        h_long = n_long // 4
        D = librosa.stft(y, n_fft=n_long, hop_length=h_long)
        S = np.abs(D)
        if S.shape[1] < 8 or not np.any(S > 0):
            # Too short to tell steady from moving, or digital silence: nothing is a voice.
            return Stems(np.zeros_like(y), y.copy(), sr, self.backend)
        # 1. long window: sustained + repeating accompaniment vs. what moves (voice, transients)
        sustained = median_filter(S, size=(1, self.harmonic_frames), mode="reflect")
        moving = median_filter(S, size=(self.percussive_bins, 1), mode="reflect")
        if self.repeat_weight > 0:
            sustained = np.maximum(sustained, self.repeat_weight *
                                   _repeating(S, sr=sr, hop=h_long, seconds=self.similarity_seconds))
        if self.period_weight > 0:
            cycle = _periodic(S, sr=sr, hop=h_long, seconds=self.period_seconds)
            if cycle is not None:
                sustained = np.maximum(sustained, self.period_weight * cycle)
        rest = librosa.istft(_soft(moving, sustained, self.power) * D, hop_length=h_long, n_fft=n_long,
                             length=len(y))
        # 2. short window on the rest: the voice is steady over a few ms frames, drum hits are not
        h_short = n_short // 4
        R = librosa.stft(rest, n_fft=n_short, hop_length=h_short)
        Rm = np.abs(R)
        steady = median_filter(Rm, size=(1, self.voice_frames), mode="reflect")
        hits = median_filter(Rm, size=(self.percussive_bins_short, 1), mode="reflect")
        mask = _soft(steady, hits, self.power)
        mask[self._outside_band(sr, n_short), :] = 0.0
        vocals = librosa.istft(mask * R, hop_length=h_short, n_fft=n_short, length=len(y))
        # 3. Wiener refinement on the mixture: power spectra of both estimates, accompaniment smoothed
        h_mid = n_mid // 4
        M = librosa.stft(y, n_fft=n_mid, hop_length=h_mid)
        outside = self._outside_band(sr, n_mid)
        for _ in range(self.iterations):
            V = librosa.stft(vocals, n_fft=n_mid, hop_length=h_mid)
            A = median_filter(np.abs(M - V), size=(1, self.accompaniment_frames), mode="reflect")
            mask = _soft(np.abs(V), A, 2.0)
            mask[outside, :] = 0.0
            vocals = librosa.istft(mask * M, hop_length=h_mid, n_fft=n_mid, length=len(y))
        vocals = vocals.astype(np.float32)
        return Stems(vocals, (y - vocals).astype(np.float32), sr, self.backend)

    def _outside_band(self, sr: int, n_fft: int) -> np.ndarray:
        import librosa

        freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
        return (freqs < self.fmin) | (freqs > self.fmax)


# --------------------------------------------------------------------------- demucs backend

def _demucs_classes() -> list[type]:
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    classes: list[type] = [Demucs, HDemucs, HTDemucs, Fraction]
    try:
        from demucs.wdemucs import (
            WDemucs,  # older alias module, absent in some versions
        )
        classes.append(WDemucs)
    except Exception:  # pragma: no cover - depends on demucs version
        pass
    return classes


def load_demucs_package(path: str | os.PathLike) -> Any:
    """Load one demucs ``.th`` model package without unpickling arbitrary objects.

    A ``.th`` file is demucs' own format (``{'klass', 'args', 'kwargs', 'state', ...}`` written
    by ``torch.save``). It is read with ``torch.load(weights_only=True)`` allowing only the
    demucs model classes and ``Fraction``, then built by ``demucs.states.load_model``.
    """
    import torch
    from demucs.states import load_model

    path = Path(path)
    expected = ("a demucs model package (.th written by demucs.states / torch.save of "
                "{klass,args,kwargs,state})")
    if not path.exists():
        raise ModelError(f"{path}: demucs weights not found; expected {expected}")
    try:
        with torch.serialization.safe_globals(_demucs_classes()):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(f"{path}: cannot read demucs weights ({first}); expected {expected}") from None
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise ModelError(f"{path}: not a demucs model package; expected {expected}")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_model(package)
    except Exception as exc:
        raise ModelError(f"{path}: demucs weights do not fit their model ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); expected {expected}") from None


def _load_safetensors(path: Path) -> Any:
    from demucs.hf import load_safetensors_model

    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            klass = (fh.metadata() or {}).get("klass", "")
    except Exception as exc:
        raise ModelError(f"{path}: cannot read demucs safetensors weights ({exc})") from None
    if not klass.startswith("demucs."):
        raise ModelError(f"{path}: not a demucs safetensors model (metadata klass={klass!r}); "
                         "expected a file exported by demucs (tools/export_hf.py)")
    try:
        return load_safetensors_model(path)
    except Exception as exc:
        raise ModelError(f"{path}: demucs safetensors weights do not load "
                         f"({type(exc).__name__}: {exc})") from None


def load_demucs_local(path: str | os.PathLike, name: str | None = None) -> Any:
    """Load Demucs weights from disk: a ``.th``/``.safetensors`` file or a model folder.

    A folder is read as demucs' local repository (``demucs -n NAME --repo DIR``): ``NAME.yaml``
    lists the signatures of a bag of models, each stored as ``SIG[-CHECKSUM].th`` (checksum
    verified) or ``SIG.safetensors``. Without ``name`` a folder with one yaml (or one model)
    uses that one.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: demucs weights not found; expected a .th/.safetensors file or a "
                         "folder of NAME.yaml + SIG.th files. " + HOW_TO_GET_DEMUCS)
    if path.is_file():
        if path.suffix == ".safetensors":
            model = _load_safetensors(path)
        else:
            model = load_demucs_package(path)
        model.eval()
        return model

    import yaml
    from demucs.apply import BagOfModels
    from demucs.repo import ModelLoadingError, check_checksum

    models: dict[str, Path] = {}
    checksums: dict[str, str] = {}
    for file in sorted(path.iterdir()):
        if file.suffix in (".th", ".safetensors"):
            sig = file.stem
            if file.suffix == ".th" and "-" in file.stem:
                sig, checksums[sig] = file.stem.rsplit("-", 1)
            if sig in models:
                raise ModelError(f"{path}: two weight files for model signature {sig!r}; keep one")
            models[sig] = file
    bags = {f.stem: f for f in sorted(path.iterdir()) if f.suffix == ".yaml"}

    def one(sig: str) -> Any:
        if sig not in models:
            raise ModelError(f"{path}: model signature {sig!r} has no SIG.th / SIG.safetensors file "
                             f"(found: {', '.join(sorted(models)) or 'none'})")
        file = models[sig]
        if sig in checksums:
            try:
                check_checksum(file, checksums[sig])
            except ModelLoadingError as exc:
                raise ModelError(f"{file}: corrupted demucs weights ({exc})") from None
        return _load_safetensors(file) if file.suffix == ".safetensors" else load_demucs_package(file)

    if name is None or name == DEFAULT_DEMUCS_MODEL and name not in bags and name not in models:
        if len(bags) == 1:
            name = next(iter(bags))
        elif not bags and len(models) == 1:
            name = next(iter(models))
    if name in models:
        model = one(name)
    elif name in bags:
        try:
            bag = yaml.safe_load(bags[name].read_text())
            sigs = list(bag["models"])
        except Exception as exc:
            raise ModelError(f"{bags[name]}: not a demucs bag definition (expected a YAML with "
                             f"'models: [SIG, ...]'): {exc}") from None
        model = BagOfModels([one(s) for s in sigs], bag.get("weights"), bag.get("segment"))
    elif name is None:
        raise ModelError(f"{path}: several demucs models here; choose one with --name / stems.name (bags: "
                         f"{', '.join(bags) or 'none'}; models: {', '.join(models) or 'none'})")
    else:
        raise ModelError(f"{path}: no demucs model named {name!r} (found bags: "
                         f"{', '.join(bags) or 'none'}; models: {', '.join(models) or 'none'})")
    model.eval()
    return model


def _cached_files(name: str) -> tuple[str, list[Path]] | None:
    """Where pretrained ``name`` sits in the local caches, without touching the network.

    Returns ``("hf", [bag.yaml, SIG.safetensors, ...])`` for the HuggingFace cache (demucs >= 4.1),
    ``("hub", [SIG-CHECKSUM.th, ...])`` for the legacy torch-hub cache, or None.
    """
    import yaml

    try:
        from demucs.hf import DEFAULT_NAMESPACE, hf_repo_name
        from huggingface_hub import try_to_load_from_cache

        namespace, base = (name.split("/", 1) if "/" in name else (DEFAULT_NAMESPACE, name))
        repo_id = f"{namespace}/{hf_repo_name(base)}"
        bag_file = try_to_load_from_cache(repo_id, f"{base}.yaml")
        if isinstance(bag_file, str):
            sigs = yaml.safe_load(Path(bag_file).read_text())["models"]
            files = [try_to_load_from_cache(repo_id, f"{s}.safetensors") for s in sigs]
            if all(isinstance(f, str) for f in files):
                return "hf", [Path(bag_file)] + [Path(f) for f in files]  # type: ignore[arg-type]
    except Exception:
        pass
    try:  # legacy Meta repository, cached by torch.hub
        import torch
        from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

        remote = _parse_remote_files(REMOTE_ROOT / "files.txt")
        bag_path = REMOTE_ROOT / f"{name}.yaml"
        sigs = yaml.safe_load(bag_path.read_text())["models"] if bag_path.exists() else [name]
        ckpt = Path(torch.hub.get_dir()) / "checkpoints"
        files = [ckpt / remote[s].rsplit("/", 1)[-1] for s in sigs if s in remote]
        if len(files) == len(sigs) and all(f.exists() for f in files):
            return "hub", ([bag_path] if bag_path.exists() else []) + files
    except Exception:
        pass
    return None


def demucs_cached(name: str) -> bool:
    """True when pretrained ``name`` is already in the HuggingFace or torch-hub cache (no network)."""
    return _cached_files(name) is not None


def load_demucs_cached(name: str) -> Any:
    """Load pretrained ``name`` from the local caches only (what ``get_model`` would download)."""
    import yaml
    from demucs.apply import BagOfModels
    from demucs.repo import ModelLoadingError, check_checksum

    found = _cached_files(name)
    if found is None:
        raise DependencyError(f"demucs weights {name!r} are not in the local cache; " + HOW_TO_GET_DEMUCS)
    kind, files = found
    bag: dict[str, Any] = {}
    if files and files[0].suffix == ".yaml":
        bag = yaml.safe_load(files[0].read_text())
        files = files[1:]
    models = []
    for f in files:
        if kind == "hf":
            models.append(_load_safetensors(f))
        else:
            if "-" in f.stem:
                try:
                    check_checksum(f, f.stem.rsplit("-", 1)[1])
                except ModelLoadingError as exc:
                    raise ModelError(f"{f}: corrupted cached demucs weights ({exc}); "
                                     "delete it and download again") from None
            models.append(load_demucs_package(f))
    model = BagOfModels(models, bag.get("weights"), bag.get("segment")) if bag else models[0]
    model.eval()
    return model


def _looks_like_path(model: str) -> bool:
    return looks_like_path(model, suffixes=(".th", ".safetensors", ".yaml"))


def _hash_paths(path: Path) -> str:
    """Content hash of a weight file or of a weights folder's files (part of cache keys)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir()
                                                 if p.suffix in (".th", ".safetensors", ".yaml"))
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class DemucsSeparator:
    """Demucs (hybrid transformer by default) through its own API, segment-wise with overlap.

    ``model`` is a pretrained name (``htdemucs``; loaded from the local cache, downloaded by
    demucs only when ``download=True``) or a path to local weights (see :func:`load_demucs_local`).
    """

    backend = "demucs"

    def __init__(self, model: str = DEFAULT_DEMUCS_MODEL, *, name: str | None = None, device: str = "cpu",
                 overlap: float = 0.25, segment: float | None = None, shifts: int = 0,
                 download: bool = False, jobs: int = 0) -> None:
        self.model = str(model)
        self.name = name
        self.device = device
        self.overlap = float(overlap)
        self.segment = _opt_float(segment)
        self.shifts = int(shifts)
        self.download = to_bool(download, name="download")
        self.jobs = int(jobs)
        self._net: Any = None
        self._identity: dict[str, Any] | None = None

    @property
    def is_local(self) -> bool:
        return _looks_like_path(self.model)

    def available(self) -> bool:
        """Weights can be loaded without the network (local path exists, or the name is cached)."""
        if self.is_local:
            return Path(self.model).expanduser().exists()
        return demucs_cached(self.model)

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            p = Path(self.model).expanduser()
            weights = (f"sha256:{_hash_paths(p)}" if self.is_local and p.exists() else f"name:{self.model}")
            self._identity = {"backend": "demucs", "weights": weights, "name": self.name,
                              "overlap": self.overlap, "segment": self.segment, "shifts": self.shifts}
        return self._identity

    def load(self) -> Any:
        """Load (once) and return the demucs model or bag on ``device``."""
        if self._net is not None:
            return self._net
        try:
            import demucs  # noqa: F401
        except ImportError:
            raise DependencyError("the demucs backend needs the demucs package "
                                  "(pip install 'recsys[stems]')") from None
        if self.is_local:
            net = load_demucs_local(self.model, self.name)
        else:
            if demucs_cached(self.model):
                net = load_demucs_cached(self.model)  # offline: never asks the hub for updates
            elif not self.download:
                raise DependencyError(
                    f"demucs weights {self.model!r} are not in the local cache "
                    f"(~/.cache/huggingface or {self._torch_hub_dir()}); " + HOW_TO_GET_DEMUCS)
            else:
                net = self._download()
        net.to(self.device)
        net.eval()
        self._net = net
        return net

    def _download(self) -> Any:
        """``demucs.pretrained.get_model(name)``: HuggingFace hub, then Meta's legacy repository."""
        from demucs.pretrained import get_model

        try:
            return get_model(self.model)
        except SystemExit:  # demucs calls fatal() -> sys.exit for some failures
            raise DependencyError(f"demucs cannot load {self.model!r}; " + HOW_TO_GET_DEMUCS) from None
        except Exception as exc:
            raise DependencyError(f"demucs cannot load pretrained {self.model!r} ({type(exc).__name__}: "
                                  f"{str(exc)[:160]}); " + HOW_TO_GET_DEMUCS) from None

    @staticmethod
    def _torch_hub_dir() -> str:
        try:
            import torch

            return str(Path(torch.hub.get_dir()) / "checkpoints")
        except Exception:  # pragma: no cover
            return "~/.cache/torch/hub/checkpoints"

    def separate(self, y: np.ndarray, sr: int) -> Stems:
        import torch
        from demucs.apply import apply_model

        net = self.load()
        msr = int(net.samplerate)
        channels = int(net.audio_channels)
        sources = list(net.sources)
        if "vocals" not in sources:
            raise ModelError(f"{self.model}: demucs model has no 'vocals' source (sources: {sources})")
        y = np.asarray(y, dtype=np.float32)
        x = resample(y, sr, msr)
        wav = torch.from_numpy(np.ascontiguousarray(np.tile(x[None, :], (channels, 1))))
        ref = wav.mean(0)
        mean, std = ref.mean(), ref.std()
        if not torch.isfinite(std) or std < 1e-8:  # silence: nothing to separate
            return Stems(np.zeros_like(y), y.copy(), sr, self.backend)
        wav = (wav - mean) / std
        kwargs: dict[str, Any] = {}
        if self.segment is not None:
            kwargs["segment"] = self.segment
        with torch.inference_mode():
            out = apply_model(net, wav[None], shifts=self.shifts, split=True, overlap=self.overlap,
                              progress=False, device=self.device, num_workers=self.jobs, **kwargs)[0]
        out = out * std + mean
        vocals_m = out[sources.index("vocals")].mean(0).cpu().numpy()
        vocals = _fix_length(resample(vocals_m, msr, sr), len(y))
        others = [i for i, s in enumerate(sources) if s != "vocals"]
        acc_m = out[others].sum(0).mean(0).cpu().numpy()
        acc = _fix_length(resample(acc_m, msr, sr), len(y))
        return Stems(vocals.astype(np.float32), acc.astype(np.float32), sr, self.backend)


def make_separator(backend: str = "auto", *, model: str = DEFAULT_DEMUCS_MODEL, name: str | None = None,
                   device: str = "cpu", overlap: float = 0.25, segment: float | None = None,
                   shifts: int = 0, download: bool = False, jobs: int = 0) -> Separator:
    """The separator for ``backend``: ``auto`` = Demucs when its weights load offline, else classical."""
    if backend not in BACKENDS:
        raise InputError(f"unknown separation backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "classical":
        return ClassicalSeparator()
    dem = DemucsSeparator(model, name=name, device=device, overlap=overlap, segment=segment,
                          shifts=shifts, download=download, jobs=jobs)
    if backend == "demucs":
        if dem.is_local and not Path(dem.model).expanduser().exists():
            raise ModelError(f"{dem.model}: demucs weights not found; expected a .th/.safetensors file or a "
                             "folder of NAME.yaml + SIG.th files. " + HOW_TO_GET_DEMUCS)
        if not dem.is_local and not dem.download and not demucs_cached(dem.model):
            raise DependencyError(f"demucs weights {dem.model!r} are not in the local cache; "
                                  + HOW_TO_GET_DEMUCS)
        return dem
    try:
        import demucs  # noqa: F401
        ok = dem.available()
    except ImportError:
        ok = False
    if ok:
        return dem
    log.info("demucs weights %r not available offline; using the classical separator (%s)",
             model, HOW_TO_GET_DEMUCS)
    return ClassicalSeparator()


# --------------------------------------------------------------------------- features of a stem

PERCENTILES = (10, 25, 50, 75, 90)
FEATURES = ("envelope", "centroid", "zcr", "flux")


def accompaniment_features(y: np.ndarray, sr: int, *, n_fft: int = 2048, hop_length: int = 512,
                           S: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Frame-wise amplitude envelope, spectral centroid (Hz), zero-crossing rate and spectral flux.

    ``S`` (magnitude STFT with the same ``n_fft``/``hop_length``) may be passed to reuse it.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    n_fft = min(n_fft, max(16, 1 << int(np.floor(np.log2(max(len(y), 16))))))
    hop_length = min(hop_length, n_fft // 4)
    if S is None:
        S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
    frames = librosa.util.frame(np.pad(y, (n_fft // 2, n_fft // 2)),
                                frame_length=n_fft, hop_length=hop_length)
    envelope = np.abs(frames).max(axis=0)
    centroid = librosa.feature.spectral_centroid(S=S, sr=sr, n_fft=n_fft, hop_length=hop_length)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length)[0]
    # Spectral flux: L2 norm of the positive magnitude change between frames (first frame 0).
    diff = np.diff(S, axis=1, prepend=S[:, :1])
    flux = np.sqrt((np.maximum(diff, 0.0) ** 2).sum(axis=0)) / max(1, S.shape[0])
    n = min(len(envelope), len(centroid), len(zcr), len(flux))
    return {"envelope": envelope[:n], "centroid": centroid[:n], "zcr": zcr[:n], "flux": flux[:n]}


def summarise(name: str, x: np.ndarray) -> dict[str, float]:
    """``mean``, ``std`` and percentiles of a frame series as ``stems__<name>_<stat>``
    (the front-end's summary)."""
    return frontend_summarise(x, prefix=f"stems__{name}", percentiles=PERCENTILES)


def feature_columns() -> list[str]:
    """Numeric feature columns of the stems block, in order."""
    stats = ["mean", "std"] + [f"p{p}" for p in PERCENTILES]
    return [f"stems__{f}_{s}" for f in FEATURES for s in stats]


def rms_db(x: np.ndarray) -> float:
    """RMS level of a signal in dBFS (floor -200 dB)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return 20.0 * np.log10(max(rms, 1e-10))


class _RecentStems:
    """A two-entry memo so the stems and lyrics blocks separate an excerpt only once per process."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._items: OrderedDict[str, Stems] = OrderedDict()

    @staticmethod
    def key(y: np.ndarray, sr: int, sep: Separator) -> str:
        h = hashlib.sha256(np.ascontiguousarray(y, dtype=np.float32).tobytes())
        h.update(f"{sr}|{sorted(sep.identity().items())}".encode())
        return h.hexdigest()

    def get(self, key: str) -> Stems | None:
        return self._items.get(key)

    def put(self, key: str, stems: Stems) -> None:
        self._items[key] = stems
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


RECENT_STEMS = _RecentStems()


def separate_cached(sep: Separator, y: np.ndarray, sr: int) -> Stems:
    """``sep.separate(y, sr)`` through the two-entry memo (same excerpt, same separator)."""
    key = RECENT_STEMS.key(y, sr, sep)
    hit = RECENT_STEMS.get(key)
    if hit is None:
        hit = sep.separate(y, sr)
        RECENT_STEMS.put(key, hit)
    return hit


# --------------------------------------------------------------------------- the block
