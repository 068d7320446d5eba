"""Separation: classical backend against known ground truth, Demucs through local weights, the stems block."""
from __future__ import annotations

import numpy as np
import pytest

from recsys.audio.load import load_audio
from recsys.audio.separation import (
    ClassicalSeparator,
    DemucsSeparator,
    feature_columns,
    load_demucs_local,
    make_separator,
    repet_sim,
)
from recsys.blocks import get_extractor
from recsys.blocks.stems import StemsBlock, StemsConfig
from recsys.errors import DependencyError, ModelError
from recsys.testing.stems import (
    SPEECH,
    ljspeech_voice,
    load_music,
    mix_at,
    music_file,
    save_demucs_repo,
    si_sdr,
)

SR = 22050


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    y, _ = load_audio(SPEECH / "ljspeech" / "LJ001-0006.flac", sr=SR)
    return y


@pytest.fixture(scope="module")
def music(speech) -> np.ndarray:
    path = music_file()
    if path is None:
        pytest.skip("no real music recording (data/audio or ../shared/data/audio)")
    y, _ = load_audio(path, sr=SR, offset=5.0, duration=len(speech) / SR)
    return y


@pytest.fixture(scope="module")
def demucs_repo(tmp_path_factory):
    return save_demucs_repo(tmp_path_factory.mktemp("demucs") / "repo")


@pytest.mark.parametrize("clip", ["strings", "jazz"])
def test_classical_vocals_beat_textbook_repet_sim(clip):
    voice = ljspeech_voice(sr=SR)
    music = load_music(clip, len(voice), sr=SR)
    if music is None:
        pytest.skip("the shipped music clips (data/audio) are missing")
    for snr_db in (0.0, -5.0):
        mix, v, _ = mix_at(voice, music, snr_db)
        stems = ClassicalSeparator().separate(mix, SR)
        assert stems.vocals.shape == mix.shape and stems.accompaniment.shape == mix.shape
        np.testing.assert_allclose(stems.vocals + stems.accompaniment, mix, atol=1e-5)
        base = si_sdr(v, mix)
        gain, textbook = si_sdr(v, stems.vocals) - base, si_sdr(v, repet_sim(mix, SR)) - base
        # scripts/bench_stems.py measures all clips; here two of them must show a clear gain
        assert gain > 4.0 and gain > textbook + 2.0, (clip, snr_db, gain, textbook)


def test_classical_on_silence_and_tiny_input_is_defined():
    sep = ClassicalSeparator()
    z = np.zeros(SR * 2, dtype=np.float32)
    st = sep.separate(z, SR)
    assert not np.any(st.vocals) and not np.any(st.accompaniment)
    short = np.random.default_rng(0).standard_normal(300).astype(np.float32) * 0.1
    st = sep.separate(short, SR)
    assert st.vocals.shape == short.shape
    np.testing.assert_allclose(st.vocals + st.accompaniment, short, atol=1e-6)


def test_stems_block_features(speech, music):
    block = get_extractor("stems", backend="classical")
    assert isinstance(block, StemsBlock)
    mix, _, _ = mix_at(speech, music, 0.0)
    rec = block.extract(mix, SR, path=None)
    assert rec["stems__backend"] == "classical" and rec["stems__status"] == "ok"
    for c in feature_columns():
        assert np.isfinite(rec[c]), c
    # percentiles are ordered and the centroid is an audible frequency
    assert rec["stems__centroid_p10"] <= rec["stems__centroid_p50"] <= rec["stems__centroid_p90"]
    assert 100 < rec["stems__centroid_mean"] < SR / 2
    assert 0 < rec["stems__vocal_share"] < 1
    # the accompaniment of a strings recording is brighter/louder-structured than silence, and the
    # features follow the stem: on the music alone the envelope mean matches the stem we gave it
    only_music = block.extract(music, SR, path=None)
    assert only_music["stems__envelope_mean"] > 0
    assert block.settings()["separator"]["backend"] == "classical"


def test_stems_block_silence_and_short_give_flagged_empty_records():
    block = StemsBlock(backend="classical", min_seconds="1.0")
    rec = block.extract(np.zeros(SR * 3, dtype=np.float32), SR, path=None)
    assert rec["stems__status"] == "silent" and "dBFS" in rec["stems__reason"]
    assert all(np.isnan(rec[c]) for c in feature_columns())
    rec = block.extract(np.full(SR // 4, 0.1, dtype=np.float32), SR, path=None)
    assert rec["stems__status"] == "too_short" and "0.25 s" in rec["stems__reason"]
    assert set(feature_columns()) <= set(rec)


def test_demucs_local_repo_folder_file_and_block(demucs_repo, speech):
    model = load_demucs_local(demucs_repo)  # one yaml in the folder -> that bag
    assert "vocals" in model.sources
    sep = DemucsSeparator(str(demucs_repo), name="tiny", overlap=0.25)
    y = speech[: SR * 3]
    st = sep.separate(y, SR)
    assert st.backend == "demucs" and st.vocals.shape == y.shape and np.all(np.isfinite(st.vocals))
    # same weights through the single .th file give the same stems (deterministic, shifts=0)
    th = next(demucs_repo.glob("*.th"))
    st2 = DemucsSeparator(str(th)).separate(y, SR)
    np.testing.assert_allclose(st.vocals, st2.vocals, atol=1e-4)
    # the block runs Demucs when asked with local weights, and auto picks it when they exist
    block = get_extractor("stems", backend="demucs", model=str(demucs_repo), segment="2")
    rec = block.extract(y, SR, path=None)
    assert rec["stems__backend"] == "demucs" and rec["stems__status"] == "ok"
    assert make_separator("auto", model=str(demucs_repo)).backend == "demucs"
    # a different weight file is a different cache identity
    other = save_demucs_repo(demucs_repo.parent / "other", seed=1)
    assert DemucsSeparator(str(other)).identity() != sep.identity()


def test_demucs_missing_weights(tmp_path, empty_caches):
    # no cached pretrained weights: explicit demucs fails clearly, auto falls back to classical
    with pytest.raises(DependencyError, match="htdemucs.*--download.*--model PATH"):
        DemucsSeparator("htdemucs").load()
    with pytest.raises(DependencyError, match="not in the local cache"):
        make_separator("demucs", model="htdemucs")  # before any audio is decoded
    with pytest.raises(DependencyError):
        StemsBlock(backend="demucs")
    sep = make_separator("auto", model="htdemucs")
    assert sep.backend == "classical"
    block = StemsBlock()  # default backend auto
    rec = block.extract(np.random.default_rng(0).standard_normal(SR * 2).astype(np.float32) * 0.1,
                        SR, path=None)
    assert rec["stems__backend"] == "classical"
    missing = tmp_path / "nowhere" / "htdemucs.th"
    with pytest.raises(ModelError, match=str(missing).replace(".", r"\.") + ".*not found"):
        DemucsSeparator(str(missing)).load()


def test_demucs_corrupt_weights_name_path_and_expectation(tmp_path, demucs_repo):
    bad = tmp_path / "broken.th"
    bad.write_bytes(b"this is not a torch file")
    with pytest.raises(ModelError, match=r"broken\.th.*expected a demucs model package"):
        DemucsSeparator(str(bad)).load()
    # a truncated file inside a repo fails its demucs checksum
    repo = tmp_path / "repo"
    repo.mkdir()
    src = next(demucs_repo.glob("*.th"))
    (repo / src.name).write_bytes(src.read_bytes()[:-100])
    (repo / "tiny.yaml").write_text((demucs_repo / "tiny.yaml").read_text())
    with pytest.raises(ModelError, match="corrupted demucs weights"):
        load_demucs_local(repo, "tiny")
    # an ambiguous folder needs a name; a broken bag definition is named
    import shutil

    two = tmp_path / "two"
    shutil.copytree(demucs_repo, two)
    (two / "other.yaml").write_text("just text")
    with pytest.raises(ModelError, match="several demucs models here; choose one with --name"):
        load_demucs_local(two)
    with pytest.raises(ModelError, match=r"other\.yaml: not a demucs bag definition"):
        load_demucs_local(two, "other")
    assert "vocals" in load_demucs_local(two, "tiny").sources
    # a pickle that is not a demucs package is refused without executing it
    import torch

    evil = tmp_path / "evil.th"
    torch.save({"klass": print, "args": [], "kwargs": {}, "state": {}}, evil)
    with pytest.raises(ModelError, match=r"evil\.th"):
        DemucsSeparator(str(evil)).load()


def test_cli_separate_writes_two_wavs(tmp_path, speech, music):
    import soundfile as sf
    from click.testing import CliRunner

    from recsys.cli import main

    mix, _, _ = mix_at(speech, music, 0.0)
    src = tmp_path / "mix.wav"
    sf.write(src, mix, SR)
    out = tmp_path / "stems"
    res = CliRunner().invoke(main, ["stems", "separate", str(src), "--out", str(out),
                                    "--backend", "classical"])
    assert res.exit_code == 0, res.output
    v, sr_v = sf.read(out / "vocals.wav")
    a, _ = sf.read(out / "accompaniment.wav")
    assert sr_v == SR and len(v) == len(a) == len(mix)
    np.testing.assert_allclose(v + a, mix, atol=2e-4)  # 16-bit rounding
    res = CliRunner().invoke(main, ["stems", "separate", str(tmp_path / "none.wav"), "--out", str(out)])
    assert res.exit_code == 2 and "error:" in res.output and "not found" in res.output


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point the HuggingFace and torch-hub caches at empty folders (nothing leaves the machine)."""
    import huggingface_hub.constants
    import torch

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    return tmp_path


def test_pretrained_name_loads_from_the_hf_cache_offline(empty_caches, speech):
    from recsys.audio.separation import demucs_cached
    from recsys.testing.stems import fake_hf_cache

    assert not demucs_cached("htdemucs")
    fake_hf_cache(empty_caches / "hf")
    assert demucs_cached("htdemucs")
    sep = make_separator("auto", model="htdemucs")
    assert sep.backend == "demucs"
    st = sep.separate(speech[: SR * 2], SR)
    assert st.vocals.shape == (SR * 2,) and np.all(np.isfinite(st.accompaniment))


def test_corrupt_cached_weights_are_reported_not_redownloaded(empty_caches):
    # the legacy torch-hub cache: a file under htdemucs' published name whose checksum is wrong
    ckpt = empty_caches / "torch" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "955717e8-8726e21a.th").write_bytes(b"truncated download")
    with pytest.raises(ModelError, match=r"955717e8-8726e21a\.th: corrupted cached demucs weights"):
        DemucsSeparator("htdemucs").load()


def test_block_options_are_checked():
    from recsys.errors import InputError

    with pytest.raises(InputError, match="unknown option.*bakend"):
        get_extractor("stems", bakend="classical")
    with pytest.raises(InputError, match=r"stems.overlap: cannot use 'lots' \(expected float\)"):
        StemsBlock(backend="classical", overlap="lots")
    with pytest.raises(InputError, match="stems.backend"):
        StemsBlock(backend="spleeter")
    block = StemsBlock(StemsConfig(backend="classical", min_seconds=2.0))
    assert block.min_seconds == 2.0 and block.separator.backend == "classical"
    assert StemsBlock(backend="classical", download="true", shifts="1").config.shifts == 1
