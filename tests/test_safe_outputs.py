"""Outputs never destroy a user's files: each scenario a new user hit, through the CLI."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from recsys.cli import main
from recsys.testing.engine import make_catalog


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def user_error(r, *words: str) -> None:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    err = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(err) == 1, r.output
    for w in words:
        assert w in err[0], err[0]


@pytest.fixture()
def small(tmp_path):
    cat = tmp_path / "cat.csv"
    make_catalog(80).to_csv(cat, index=False)
    cfg = tmp_path / "engine.toml"
    cfg.write_text("[engine]\ngenre_probs = false\n[engine.index]\nn_clusters = 4\n")
    return tmp_path, cat, cfg


def build(cat, cfg, out, *extra):
    return run("build-index", "--catalog", cat, "--config", cfg, "--simulate-users", 0, "--out", out, *extra)


def test_build_index_refuses_a_folder_of_user_files(small):
    d, cat, cfg = small
    mine = d / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    user_error(build(cat, cfg, mine), "did not write", "--force")
    assert (mine / "notes.txt").read_text() == "my notes"
    # an earlier index may be replaced; --force replaces anything
    r = build(cat, cfg, d / "idx")
    assert r.exit_code == 0, r.output
    assert build(cat, cfg, d / "idx").exit_code == 0
    assert build(cat, cfg, mine, "--force").exit_code == 0
    assert not (mine / "notes.txt").exists() and (mine / "manifest.json").exists()


def test_build_index_refuses_an_out_that_holds_its_input(small):
    d, cat, cfg = small
    user_error(build(cat, cfg, d, "--force"), "input")
    assert cat.exists()


def test_genres_train_refuses_user_files(demo_csv, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    user_error(run("genres", "train", "--catalog", demo_csv, "--out", out, "--folds", 2), "--force")
    assert (out / "keep.txt").exists()


@pytest.mark.parametrize("command", ["map", "predict"])
def test_genres_out_equal_to_catalog_is_refused(command, small, tmp_path):
    d, cat, _ = small
    before = cat.read_bytes()
    args = ["genres", command, "--catalog", cat, "--out", cat]
    if command == "predict":
        args[2:2] = ["--model", tmp_path / "no-model"]
    user_error(run(*args), "input")
    assert cat.read_bytes() == before


def test_out_dot_builds_in_place_and_leaves_no_building_dirs(small, tmp_path):
    d, cat, cfg = small
    here = tmp_path / "here"
    here.mkdir()
    cwd = os.getcwd()
    os.chdir(here)
    try:
        assert build(cat, cfg, ".").exit_code == 0
        # the shell's directory was swapped for the new index: a clear message, then `cd .` and rebuild
        user_error(build(cat, cfg, "."), "cd into it again")
        os.chdir(here)
        assert build(cat, cfg, ".").exit_code == 0  # an index may replace itself
    finally:
        os.chdir(cwd)
    assert (here / "manifest.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".building")]


def test_stale_building_dirs_of_dead_processes_are_removed(small):
    d, cat, cfg = small
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True)
    pid = int(dead.stdout)
    stale = d / f".idx.{pid}.abc123.building"
    stale.mkdir()
    (stale / "half.npy").write_bytes(b"\0" * 10)
    live = d / f".idx.{os.getpid()}.def456.building"  # a live process's build is left alone
    live.mkdir()
    assert build(cat, cfg, d / "idx").exit_code == 0
    assert not stale.exists() and live.exists()


def test_features_extract_refuses_a_folder_of_user_files(tmp_path):
    import numpy as np
    import soundfile as sf

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", (0.1 * np.sin(np.arange(22050) / 10)).astype("float32"), 22050)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.docx").write_text("x")
    user_error(run("features", "extract", "--audio-dir", audio, "--out", out, "--quiet"), "--force")
    assert (out / "thesis.docx").exists()
    user_error(run("features", "extract", "--audio-dir", audio, "--out", tmp_path, "--quiet", "--force"),
               "input")


def test_index_file_corrupted_without_changing_size_is_refused(small):
    """Only sizes were checked before: a flipped byte in faiss.index loaded silently and changed results."""
    d, cat, cfg = small
    assert build(cat, cfg, d / "idx").exit_code == 0
    f = d / "idx" / "faiss.index"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    user_error(run("recommend", "--index", d / "idx", "--recent", "t0001"), "faiss.index", "checksum")


@pytest.mark.parametrize("encoding,sep", [("utf-16", ","), ("latin-1", ","), ("utf-8", ";"), ("utf-8", "\t")])
def test_catalogues_in_other_encodings_and_separators_are_read(small, encoding, sep):
    d, cat, _ = small
    import pandas as pd

    df = pd.read_csv(cat)
    df.loc[0, "track_name"] = "Café Olé"  # a character whose bytes differ in each encoding
    other = d / "other.csv"
    df.to_csv(other, index=False, encoding=encoding, sep=sep)
    r = run("genres", "map", "--catalog", other, "--out", d / "m.csv")
    assert r.exit_code == 0, r.output
    assert pd.read_csv(d / "m.csv").set_index("track_id").loc["t0000", "track_name"] == "Café Olé"


def test_unreadable_table_gets_a_hint(small):
    d, _, _ = small
    bad = d / "bad.csv"
    bad.write_bytes(b"track_id,energy\n\xff\xfe\x00garbage\x00\x00\x01\n" * 3)
    r = run("genres", "map", "--catalog", bad, "--out", d / "m.csv")
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_log_lines_never_share_the_progress_bar_line(small):
    """build-index with -v in a real process: every log line starts its own line, after the bar is cleared."""
    d, cat, cfg = small
    proc = subprocess.run([sys.executable, "-m", "recsys.cli", "-v", "build-index", "--catalog", str(cat),
                           "--config", str(cfg), "--simulate-users", "0", "--out", str(d / "idx")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logs = [ln for ln in proc.stderr.split("\n") if "INFO recsys" in ln]
    assert logs, proc.stderr[-2000:]  # -v really logs the steps
    for ln in logs:
        assert ln.split("\r")[-1].startswith("INFO"), repr(ln)
