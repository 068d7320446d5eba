"""Outputs never destroy a user's files: each scenario a new user hit, through the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


# ----------------------------------------------------------------------------- issue 19: one rule for outputs
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One small index (and its inputs) shared by the read-only cases below."""
    d = tmp_path_factory.mktemp("built")
    cat = d / "cat.csv"
    make_catalog(80).to_csv(cat, index=False)
    cfg = d / "engine.toml"
    cfg.write_text("[engine]\ngenre_probs = false\n[engine.index]\nn_clusters = 4\n")
    r = run("build-index", "--catalog", cat, "--config", cfg, "--simulate-users", 30, "--out", d / "idx")
    assert r.exit_code == 0, r.output
    return d


def test_simulate_users_refuses_its_catalog_as_out(small):
    """Case 1: the catalogue was replaced by histories, rc 0."""
    d, cat, _ = small
    before = cat.read_bytes()
    user_error(run("simulate-users", "--catalog", cat, "--users", 5, "--out", cat), "input")
    assert cat.read_bytes() == before


def test_rules_mine_refuses_its_histories_as_out(built):
    """Case 2: the histories were replaced by rules, rc 0."""
    h = built / "h.csv"
    import pandas as pd

    pd.read_parquet(built / "idx" / "histories.parquet").to_csv(h, index=False)
    before = h.read_bytes()
    user_error(run("rules", "mine", "--histories", h, "--out", h), "input")
    assert h.read_bytes() == before


def test_existing_user_files_need_force_and_are_moved_aside(small, tmp_path):
    """Case 3: `genres map --out important.csv` overwrote the user's file silently."""
    d, cat, _ = small
    mine = tmp_path / "important.csv"
    mine.write_text("my,data\n1,2\n")
    user_error(run("genres", "map", "--catalog", cat, "--out", mine), "recsys did not write", "--force")
    assert mine.read_text() == "my,data\n1,2\n"
    # recsys's own output may be rewritten without --force; edited by the user, it is the user's again
    out = tmp_path / "mapped.csv"
    assert run("genres", "map", "--catalog", cat, "--out", out).exit_code == 0
    assert run("genres", "map", "--catalog", cat, "--out", out).exit_code == 0
    out.write_text(out.read_text() + "\n")
    user_error(run("genres", "map", "--catalog", cat, "--out", out), "--force")
    r = run("genres", "map", "--catalog", cat, "--out", mine, "--force")
    assert r.exit_code == 0, r.output
    kept = list((tmp_path / ".recsys-trash").glob("*/important.csv"))
    assert [k.read_text() for k in kept] == ["my,data\n1,2\n"]
    assert str(kept[0]) in r.output  # --force says where the old file went


def test_report_refuses_a_user_png_and_a_file_inside_the_index(built, tmp_path):
    """Cases 3 and 4: `report --out thesis.png` overwrote it; `--out idx/tracks.parquet` broke the index."""
    thesis = tmp_path / "thesis.png"
    thesis.write_bytes(b"my figure")
    user_error(run("report", "t0001", "--index", built / "idx", "--out", thesis), "--force")
    assert thesis.read_bytes() == b"my figure"
    inside = built / "idx" / "tracks.parquet"
    before = inside.read_bytes()
    user_error(run("report", "t0001", "--index", built / "idx", "--out", inside), "input")
    assert inside.read_bytes() == before
    assert run("recommend", "--index", built / "idx", "--recent", "t0001").exit_code == 0


def test_stems_separate_keeps_the_users_wav(tmp_path):
    """Case 3: `stems separate --out mystems/` overwrote the user's vocals.wav."""
    import numpy as np
    import soundfile as sf

    song = tmp_path / "song.wav"
    sf.write(song, (0.1 * np.sin(np.arange(44100) / 7)).astype("float32"), 22050)
    mystems = tmp_path / "mystems"
    mystems.mkdir()
    (mystems / "vocals.wav").write_bytes(b"my take")
    args = ["stems", "separate", song, "--out", mystems, "--backend", "classical", "--seconds", 1]
    user_error(run(*args), "vocals.wav", "--force")
    assert (mystems / "vocals.wav").read_bytes() == b"my take"
    out2 = tmp_path / "new"
    assert run(*args[:3], "--out", out2, *args[5:]).exit_code == 0
    assert run(*args[:3], "--out", out2, *args[5:]).exit_code == 0  # its own stems are replaced


def test_rebuild_keeps_the_users_files_inside_an_index(small):
    """Case 5: NOTES.txt and myplots/ added to an index were deleted by the next build-index."""
    d, cat, cfg = small
    idx = d / "idx"
    assert build(cat, cfg, idx).exit_code == 0
    (idx / "NOTES.txt").write_text("why this index")
    (idx / "myplots").mkdir()
    (idx / "myplots" / "a.png").write_bytes(b"png")
    r = build(cat, cfg, idx)
    assert r.exit_code == 0, r.output
    assert (idx / "NOTES.txt").read_text() == "why this index"
    assert (idx / "myplots" / "a.png").read_bytes() == b"png"
    assert "NOTES.txt" in r.output  # said, not silent
    assert run("recommend", "--index", idx, "--recent", "t0001").exit_code == 0


@pytest.mark.parametrize("via_symlink", [False, True])
def test_force_on_a_user_folder_moves_it_aside_and_says_so(small, via_symlink):
    """Case 6: --force deleted a folder of the user's (also through a symlink) without a word."""
    d, cat, cfg = small
    mine = d / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("chapter 1")
    target = mine
    if via_symlink:
        target = d / "link"
        target.symlink_to(mine)
    r = build(cat, cfg, target, "--force")
    assert r.exit_code == 0, r.output
    kept = list((d / ".recsys-trash").glob("*/mine/thesis.tex"))
    assert [k.read_text() for k in kept] == ["chapter 1"]
    assert str(kept[0].parent) in r.output


def _unwritable(tmp_path):
    """A folder this process cannot create files in (root ignores mode bits: /sys then)."""
    import tempfile

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    for cand in (ro, Path("/sys")):
        try:
            fd, p = tempfile.mkstemp(dir=cand)
        except OSError:
            return cand
        os.close(fd)
        os.unlink(p)
    pytest.skip("no unwritable folder on this machine")


@pytest.mark.parametrize("where", ["unwritable", "parent_is_file"])
def test_bad_out_paths_fail_before_the_work(small, tmp_path, where):
    """Case 7: PermissionError / FileExistsError tracebacks, for build-index only after the whole build."""
    d, cat, cfg = small
    if where == "unwritable":
        base = _unwritable(tmp_path) / "sub"
    else:
        (tmp_path / "ok.parquet").write_bytes(b"x")
        base = tmp_path / "ok.parquet"
    r = build(cat, cfg, base / "idx")
    user_error(r, str(base.parent if where == "unwritable" else base))
    assert "build-index:" not in r.output  # no step ran
    user_error(run("genres", "map", "--catalog", cat, "--out", base / "x.parquet"))
    user_error(run("simulate-users", "--catalog", cat, "--users", 3, "--out", base / "h.parquet"))


_HAMMER = """
import sys, time
from recsys.errors import OutputError
from recsys.io import atomic_dir
target, n = sys.argv[1], int(sys.argv[2])
ok = lost = 0
for i in range(n):
    try:
        with atomic_dir(target) as tmp:
            (tmp / "manifest.json").write_text('{"kind": "x", "files": {}}')
            (tmp / "who").write_text(str(i))
            time.sleep(0.002)
        ok += 1
    except OutputError as exc:
        assert "another recsys process" in str(exc), exc
        lost += 1
print(ok, lost)
"""


def test_three_processes_building_one_target(tmp_path):
    """Case 9: OSError 39 in 200-295 of 300 calls and 700+ `.building` folders left."""
    target = tmp_path / "idx"
    procs = [subprocess.Popen([sys.executable, "-c", _HAMMER, str(target), "100"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err[-1500:]
    ok, lost = (sum(int(out.split()[i]) for out, _ in results) for i in (0, 1))
    assert ok > 0 and ok + lost == 300  # each call swapped completely, or its loser got the clear message
    assert sorted(x.name for x in tmp_path.iterdir()) == ["idx"]  # no .building or .lock litter
    assert (target / "who").exists() and (target / "manifest.json").exists()


def test_a_second_build_into_a_busy_target_stops_before_the_work(small):
    """The loser of two build-index runs on one --out is told who holds it, at once."""
    d, cat, cfg = small
    hold = ("import sys, time\nfrom recsys.io import output_lock\n"
            "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(d / "idx")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = build(cat, cfg, d / "idx")
        user_error(r, "another recsys process", f"pid {holder.pid}")
        assert "build-index:" not in r.output
    finally:
        holder.kill()
        holder.wait()
    assert build(cat, cfg, d / "idx").exit_code == 0


def test_mixed_utf8_and_latin1_lines_both_read_right(small):
    """Case 14: a file mixing UTF-8 and Latin-1 lines came out garbled ('CafÃ©')."""
    import pandas as pd

    d, cat, _ = small
    df = pd.read_csv(cat)
    df.loc[0, "track_name"] = "Café Olé"
    df.loc[1, "track_name"] = "Señor Ñu"
    lines = df.to_csv(index=False).splitlines(keepends=True)
    data = b"".join(ln.encode("latin-1" if ln.startswith("t0001,") else "utf-8") for ln in lines)
    mixed = d / "mixed.csv"
    mixed.write_bytes(data)
    r = run("genres", "map", "--catalog", mixed, "--out", d / "m.csv")
    assert r.exit_code == 0, r.output
    names = pd.read_csv(d / "m.csv").set_index("track_id")["track_name"]
    assert names["t0000"] == "Café Olé" and names["t0001"] == "Señor Ñu"
