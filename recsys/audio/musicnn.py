"""musicnn (Pons & Serra 2019) in torch: a TF-checkpoint reader, the model, its mel front-end, a tagger.

The trained weights come from the ``musicnn`` 0.1.0 wheel (``pip install --no-deps musicnn==0.1.0``):
its ``MSD_musicnn``/``MTT_musicnn`` TensorFlow-1 checkpoints are read here directly (the ``.index``
is a LevelDB-format table of ``BundleEntryProto`` records, the ``.data`` shard raw little-endian
tensors). Its Python code (TF1) is never imported; the tag lists are parsed from its
``configuration.py`` as text. The runtime is numpy + librosa + torch only.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DependencyError, ModelError

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: librosa.time_to_frames(3, sr=16000, hop_length=256, n_fft=512) + 1
MODELS = ("MSD_musicnn", "MTT_musicnn")
_LABEL_VARS = {"MSD_musicnn": "MSD_LABELS", "MTT_musicnn": "MTT_LABELS"}

# ----------------------------------------------------------------------------- the installed wheel


def package_dir() -> Path:
    """The installed ``musicnn`` package folder (found, never imported)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("the musicnn weights are not installed: pip install --no-deps musicnn==0.1.0")
    return Path(list(spec.submodule_search_locations)[0])


def checkpoint_prefix(model: str = "MSD_musicnn") -> str:
    """Path prefix of a bundled checkpoint (``<prefix>.index`` + ``<prefix>.data-00000-of-00001``)."""
    if model not in MODELS:
        raise ModelError(f"unknown musicnn model {model!r} (choose from {', '.join(MODELS)})")
    prefix = f"{package_dir() / model}/"  # the wheel's files are named ".index", ".data-..."
    if not Path(f"{prefix}.index").is_file():
        raise DependencyError(f"{prefix}.index missing: reinstall musicnn==0.1.0")
    return prefix


def read_labels(model: str = "MSD_musicnn") -> list[str]:
    """The model's tag names, parsed from ``musicnn/configuration.py`` as text (ast, no import)."""
    tree = ast.parse((package_dir() / "configuration.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == _LABEL_VARS[model]
                                                for t in node.targets):
            return [str(s) for s in ast.literal_eval(node.value)]
    raise ModelError(f"{_LABEL_VARS[model]} not found in musicnn/configuration.py")


# ----------------------------------------------------------------------------- TF checkpoint reader

_TF_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 19: "<f2"}
_TABLE_MAGIC = 0xDB4775248B80FB57


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of a protobuf message: ints for varint/fixed, bytes for length-delimited."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            val, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ModelError(f"checkpoint index: unsupported protobuf wire type {wire}")
        out.append((field, val))
    return out


def _block_entries(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one SSTable block (prefix-compressed keys; uncompressed blocks only)."""
    if table[offset + size] != 0:
        raise ModelError("checkpoint index: compressed table blocks are not supported")
    block = table[offset:offset + size]
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        n_value, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + n_value]))
        pos += n_value
    return out


def _handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def read_tf_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a single-shard TF checkpoint (V2 tensor bundle) as numpy arrays, by name."""
    index = Path(f"{prefix}.index").read_bytes()
    if len(index) < 48 or struct.unpack_from("<Q", index, len(index) - 8)[0] != _TABLE_MAGIC:
        raise ModelError(f"{prefix}.index: not a TF checkpoint index (bad table magic)")
    footer = index[-48:]
    _, _, pos = _handle(footer)  # metaindex (unused)
    idx_off, idx_size, _ = _handle(footer, pos)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(index, idx_off, idx_size):
        off, size, _ = _handle(handle)
        entries += _block_entries(index, off, size)
    header = dict(_proto_fields(dict(entries).get(b"", b"")))
    if header.get(1, 1) != 1:
        raise ModelError(f"{prefix}: {header.get(1)} shards; only single-shard checkpoints are supported")
    data = Path(f"{prefix}.data-00000-of-00001").read_bytes()
    out: dict[str, np.ndarray] = {}
    for key, value in entries:
        if not key:
            continue
        f = _proto_fields(value)
        fd = dict(f)
        dtype = _TF_DTYPES.get(fd.get(1, 0))
        if dtype is None or any(k == 7 for k, _ in f):  # strings, sliced tensors: not needed here
            continue
        shape = [dict(_proto_fields(d)).get(1, 0) for k, d in _proto_fields(fd.get(2, b"")) if k == 2]
        offset, size = fd.get(4, 0), fd.get(5, 0)
        arr = np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=offset)
        out[key.decode()] = arr.reshape(shape).copy()
    return out


# ----------------------------------------------------------------------------- the model


def build_net(*, n_mels: int = N_MELS, n_classes: int = 50, base_filters: float = 1.6,
              midend_filters: int = 64, backend_units: int = 200):
    """The musicnn architecture (Pons & Serra 2019) as a torch module.

    Front-end: input batch norm, two timbral (vertical, 7 x 38 and 7 x 67 mel bands) and three temporal
    (horizontal, 128/64/32 frames x 1) conv -> ReLU -> BN, each max-pooled over frequency; mid-end: three
    7-frame 1-D convs over the concatenated features, the 2nd and 3rd with residual connections;
    back-end: temporal max + mean pooling of all front/mid-end features, BN, dense + ReLU + BN (the
    penultimate embedding), dense logits. Input ``(batch, frames, n_mels)``; output (logits, penultimate).
    """
    import torch
    from torch import nn
    import torch.nn.functional as F

    n_timbral, n_temporal = int(base_filters * 128), int(base_filters * 32)
    eps = 1e-3  # tf.layers.batch_normalization's default

    def bn(n: int) -> nn.BatchNorm1d:
        return nn.BatchNorm1d(n, eps=eps)

    class Musicnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_bn = nn.BatchNorm2d(1, eps=eps)
            self.timbral = nn.ModuleList([nn.Conv2d(1, n_timbral, (7, int(f * n_mels))) for f in (0.4, 0.7)])
            self.timbral_bn = nn.ModuleList([nn.BatchNorm2d(n_timbral, eps=eps) for _ in range(2)])
            self.temporal = nn.ModuleList([nn.Conv2d(1, n_temporal, (k, 1)) for k in (128, 64, 32)])
            self.temporal_bn = nn.ModuleList([nn.BatchNorm2d(n_temporal, eps=eps) for _ in range(3)])
            n_front = 2 * n_timbral + 3 * n_temporal
            self.mid = nn.ModuleList([nn.Conv1d(n_front, midend_filters, 7)]
                                     + [nn.Conv1d(midend_filters, midend_filters, 7) for _ in range(2)])
            self.mid_bn = nn.ModuleList([bn(midend_filters) for _ in range(3)])
            n_pool = 2 * (n_front + 3 * midend_filters)
            self.pool_bn = bn(n_pool)
            self.dense = nn.Linear(n_pool, backend_units)
            self.dense_bn = bn(backend_units)
            self.out = nn.Linear(backend_units, n_classes)

        def _pool_freq(self, z, norm):
            """max over frequency of BN(ReLU(z)). In inference BN is a per-channel monotone map (its
            direction the sign of its scale), so pool z first (max, or min where the scale is < 0):
            the same numbers without ReLU/BN passes over the full (B, C, T, F) map."""
            if self.training:
                return norm(F.relu(z)).amax(dim=3)
            scale = norm.weight[None, :, None]
            z = torch.where(scale >= 0, z.amax(dim=3), z.amin(dim=3))
            return F.batch_norm(F.relu(z), norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                training=False, eps=norm.eps)

        def forward(self, x):  # x: (batch, frames, n_mels), log-compressed mel
            x = self.input_bn(x.unsqueeze(1))  # (B, 1, T, F)
            feats = []
            padded = F.pad(x, (0, 0, 3, 3))  # 'same' in time only: frequency is pooled away
            for conv, norm in zip(self.timbral, self.timbral_bn):
                feats.append(self._pool_freq(conv(padded), norm))  # (B, C, T)
            for conv, norm in zip(self.temporal, self.temporal_bn):
                k = conv.kernel_size[0]
                # TF 'SAME' padding: the extra row of an even kernel goes at the end
                feats.append(self._pool_freq(conv(F.pad(x, (0, 0, (k - 1) // 2, k // 2))), norm))
            front = torch.cat(feats, dim=1)  # (B, 561, T)
            layers = [front]
            h = self.mid_bn[0](F.relu(self.mid[0](F.pad(front, (3, 3)))))
            layers.append(h)
            for conv, norm in zip(self.mid[1:], self.mid_bn[1:]):
                h = norm(F.relu(conv(F.pad(h, (3, 3))))) + h
                layers.append(h)
            feat = torch.cat(layers, dim=1)  # (B, 753, T)
            # TF flattens (features, [max, mean]): max and mean interleaved per feature
            pooled = torch.stack([feat.amax(dim=2), feat.mean(dim=2)], dim=2).flatten(1)
            penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
            return self.out(penultimate), penultimate

    return Musicnn()


def _bn_names(n: int) -> str:
    return "batch_normalization" + (f"_{n}" if n else "")


def _conv_names(n: int) -> str:
    return "conv2d" + (f"_{n}" if n else "")


def state_dict_from_checkpoint(tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """Map the checkpoint's tf.layers variables (created in graph order) onto :func:`build_net`'s names.

    TF conv kernels are (kh, kw, in, out) -> torch (out, in, kh, kw); dense (in, out) -> (out, in).
    Mid-end convs span the whole feature axis in TF (kernel 7 x C x 1 x F), i.e. 1-D convs here.
    """
    import torch

    prefix = ""
    if "conv2d/kernel" not in tensors:
        cands = [k[: -len("conv2d/kernel")] for k in tensors if k.endswith("/conv2d/kernel")]
        if not cands:
            raise ModelError("checkpoint has no conv2d/kernel: not a musicnn checkpoint")
        prefix = cands[0]

    def t(name: str) -> np.ndarray:
        try:
            return tensors[prefix + name]
        except KeyError:
            raise ModelError(f"checkpoint lacks variable {prefix + name!r}") from None

    sd: dict[str, np.ndarray] = {}

    def put_bn(dst: str, n: int) -> None:
        src = _bn_names(n)
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = t(f"{src}/gamma"), t(f"{src}/beta")
        sd[f"{dst}.running_mean"] = t(f"{src}/moving_mean")
        sd[f"{dst}.running_var"] = t(f"{src}/moving_variance")

    put_bn("input_bn", 0)
    dsts = ["timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2"]
    bns = ["timbral_bn.0", "timbral_bn.1", "temporal_bn.0", "temporal_bn.1", "temporal_bn.2"]
    for i, (dst, dst_bn) in enumerate(zip(dsts, bns)):
        sd[f"{dst}.weight"] = t(f"{_conv_names(i)}/kernel").transpose(3, 2, 0, 1)
        sd[f"{dst}.bias"] = t(f"{_conv_names(i)}/bias")
        put_bn(dst_bn, i + 1)
    for j in range(3):
        k = t(f"{_conv_names(5 + j)}/kernel")  # (7, C, 1, F)
        sd[f"mid.{j}.weight"] = k[:, :, 0, :].transpose(2, 1, 0)
        sd[f"mid.{j}.bias"] = t(f"{_conv_names(5 + j)}/bias")
        put_bn(f"mid_bn.{j}", 6 + j)
    put_bn("pool_bn", 9)
    sd["dense.weight"], sd["dense.bias"] = t("dense/kernel").T, t("dense/bias")
    put_bn("dense_bn", 10)
    sd["out.weight"], sd["out.bias"] = t("dense_1/kernel").T, t("dense_1/bias")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


# ----------------------------------------------------------------------------- front-end


def log_mel(y: np.ndarray, sr: int) -> np.ndarray:
    """musicnn's input: 16 kHz librosa mel power (96 bands, n_fft 512, hop 256), ``log10(10000 x + 1)``,
    shape ``(frames, 96)`` float32 (the reference rounds the mel to float16 first; so do we)."""
    import librosa

    from .frontend import prepare

    y = prepare(y, sr, SR)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS).T
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1).astype(np.float32)


def patches(mel: np.ndarray, *, hop: int = PATCH_FRAMES) -> np.ndarray:
    """Consecutive 187-frame patches ``(n, 187, 96)`` (no overlap by default; a shorter tail is dropped)."""
    n = 0 if len(mel) < PATCH_FRAMES else 1 + (len(mel) - PATCH_FRAMES) // hop
    if n == 0:
        return np.zeros((0, PATCH_FRAMES, mel.shape[1] if mel.ndim == 2 else N_MELS), np.float32)
    return np.stack([mel[i * hop:i * hop + PATCH_FRAMES] for i in range(n)]).astype(np.float32)


# ----------------------------------------------------------------------------- the tagger


@dataclass
class TagOutput:
    """Per-patch sigmoid tag probabilities ``(n, n_tags)`` and penultimate embeddings ``(n, 200)``."""

    probs: np.ndarray
    embedding: np.ndarray


class Tagger:
    """A pretrained musicnn tagger: ``Tagger.load("MSD_musicnn").tag(y, sr)`` -> per-patch tags."""

    def __init__(self, net, labels: Sequence[str], *, model: str, sha256: str) -> None:
        self.net = net.eval()
        self.labels = list(labels)
        self.model = model
        self.sha256 = sha256

    @classmethod
    def load(cls, model: str = "MSD_musicnn", *, weights: str | Path | None = None) -> "Tagger":
        """Weights from the installed wheel's TF checkpoint, or a converted state_dict ``weights``
        (``torch.save(state_dict)``, loaded with ``weights_only=True``)."""
        import torch

        labels = read_labels(model)
        if weights is not None:
            path = Path(weights)
            sd = torch.load(path, map_location="cpu", weights_only=True)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            prefix = checkpoint_prefix(model)
            sd = state_dict_from_checkpoint(read_tf_checkpoint(prefix))
            h = hashlib.sha256()
            for suffix in (".index", ".data-00000-of-00001"):
                h.update(Path(f"{prefix}{suffix}").read_bytes())
            digest = h.hexdigest()
        net = build_net(n_classes=len(labels))
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"musicnn weights do not fit the architecture: {str(exc)[:300]}") from None
        return cls(net, labels, model=model, sha256=digest)

    def forward_patches(self, x: np.ndarray, *, batch_size: int = 16) -> TagOutput:
        """Tags and embeddings of log-mel patches ``(n, 187, 96)``."""
        import torch

        probs, embs = [], []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                logits, pen = self.net(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])))
                probs.append(torch.sigmoid(logits).numpy())
                embs.append(pen.numpy())
        if not probs:
            return TagOutput(np.zeros((0, len(self.labels)), np.float32), np.zeros((0, 200), np.float32))
        return TagOutput(np.concatenate(probs), np.concatenate(embs))

    def tag(self, y: np.ndarray, sr: int, *, batch_size: int = 16) -> TagOutput:
        """Tags of every 3-s patch of a mono excerpt (empty when shorter than one patch)."""
        return self.forward_patches(patches(log_mel(y, sr)), batch_size=batch_size)

    def top_tags(self, probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable tags of a (pooled) probability vector."""
        order = np.argsort(-np.asarray(probs))[:k]
        return [(self.labels[i], float(probs[i])) for i in order]
