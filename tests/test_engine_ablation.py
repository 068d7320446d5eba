"""Block ablation (`recsys evaluate --ablate`): one split, blocks removed from the stored embeddings.

The constructed case: users' sessions stay inside groups that ONLY the spectral (audio) block
knows; the tabular statistics and audiostats are noise. So dropping the spectral block must change
the embeddings and must lower the content-only HitRate, while dropping a noise block must not hurt.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.blocks import Block
from recsys.schema import STATS
from recsys.cli import main
from recsys.embedding import EmbeddingBuilder
from recsys.engine import Engine
from recsys.errors import InputError
from recsys.evaluate import ablate, ablation_variants, block_slices, drop_blocks, evaluate

from recsys.testing.engine import fast_config, make_catalog

N_TRACKS, GROUP_SIZE = 120, 10


def _audio_world(tmp_path, seed: int = 0):
    """Catalogue with noise statistics + features dir where only 'spectral' encodes the listening groups."""
    rng = np.random.default_rng(seed)
    cat = make_catalog(N_TRACKS, seed=seed)
    for c in STATS:  # tabular statistics: pure noise, unrelated to the groups
        cat[c] = rng.random(N_TRACKS)
    group = np.empty(N_TRACKS, int)
    group[rng.permutation(N_TRACKS)] = np.arange(N_TRACKS) // GROUP_SIZE
    ids = cat["track_id"].tolist()
    meta = {"file": [f"/music/{t}.wav" for t in ids], "track_id": ids, "ok": True, "reason": ""}
    centres = rng.normal(0, 1, (N_TRACKS // GROUP_SIZE, 16))
    spectral = pd.DataFrame(meta)
    for j in range(16):
        spectral[f"s{j}"] = centres[group, j] + rng.normal(0, 0.05, N_TRACKS)
    stats = pd.DataFrame(meta)
    for c in STATS:  # audiostats: noise as well
        stats[c] = rng.random(N_TRACKS)
    feats = tmp_path / "features"
    feats.mkdir()
    spectral.to_parquet(feats / "spectral.parquet", index=False)
    stats.to_parquet(feats / "audiostats.parquet", index=False)
    # each user plays 6 distinct tracks of one group in random order (the last one is held out)
    rows = []
    for u in range(150):
        members = np.flatnonzero(group == rng.integers(group.max() + 1))
        for pos, t in enumerate(rng.permutation(members)[:6]):
            rows.append((f"u{u:03d}", pos, ids[t]))
    hist = pd.DataFrame(rows, columns=["user_id", "position", "track_id"])
    return cat, feats, hist


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("ablation")
    cat, feats, hist = _audio_world(d)
    eng = Engine.build(cat, features=feats, histories=hist, out=d / "idx",
                       config=fast_config(genre_probs=False), seed=0)
    assert list(eng.block_slices) == ["tabular", "spectral", "audiostats"]
    hist.to_parquet(d / "h.parquet", index=False)
    return d, eng, hist


def test_ablation_rows_and_audio_signal(world):
    _, eng, hist = world
    table, info = ablate(eng, hist, k=10)
    got = table.set_index("variant")
    assert list(got.index) == ["all", "-tabular", "-spectral", "-audiostats",
                               "only tabular", "only spectral", "only audiostats"]
    assert got.loc["-spectral", "blocks"] == "tabular,audiostats"
    assert info["blocks"] == ["tabular", "spectral", "audiostats"] and info["clusters"] == "recompute"
    assert info["test_users"] == 150
    assert got.loc["all", "cos_change"] == pytest.approx(0.0, abs=1e-6)
    for v in ("-tabular", "-spectral", "-audiostats"):
        assert got.loc[v, "cos_change"] > 0.05  # every block is a real share of the vector
        assert got.loc[v, "emptied"] == 0
    # users follow groups that only the spectral block knows: without it, content-only is near chance
    hit = got["content hit@10"]
    assert hit["all"] > hit["-spectral"] + 0.3
    assert hit["only spectral"] > hit["-spectral"] + 0.3
    assert hit["-tabular"] >= hit["all"] - 0.05  # dropping noise does not hurt
    assert hit["-spectral"] < 0.3
    cols = [c for c in table.columns if "@" in c]
    assert ((table[cols] >= 0) & (table[cols] <= 1)).all().all()


def test_all_blocks_row_matches_plain_evaluate_on_same_split(world):
    _, eng, hist = world
    table, _ = ablate(eng, hist, k=10, clusters="keep")
    plain, _ = evaluate(eng, hist, k=10)
    ref = plain.set_index("method")
    row = table.set_index("variant").loc["all"]
    # the index here is flat already and clusters are kept: the 'all' row is the plain evaluation
    for m in ("hybrid", "content"):
        for met in ("hit@10", "mrr@10", "ndcg@10"):
            assert row[f"{m} {met}"] == pytest.approx(ref.loc[m, met])
    # content-only never looks at clusters, so recomputing them cannot change it
    recomputed = ablate(eng, hist, k=10, clusters="recompute")[0].set_index("variant")
    assert np.allclose(recomputed["content hit@10"], table.set_index("variant")["content hit@10"])


def test_drop_blocks_equals_embedding_without_the_block():
    rng = np.random.default_rng(3)
    blocks = [Block("a", rng.normal(5, 2, (30, 4)), np.ones(30, bool), list("wxyz")),
              Block("b", rng.normal(0, 1, (30, 6)), np.r_[np.ones(25, bool), np.zeros(5, bool)],
                    [f"c{i}" for i in range(6)])]
    builder = EmbeddingBuilder().fit(blocks)
    full = builder.transform(blocks)
    absent_b = [blocks[0], Block("b", blocks[1].values, np.zeros(30, bool), blocks[1].columns)]
    slices = {"a": slice(0, 4), "b": slice(4, 10)}
    assert np.allclose(drop_blocks(full, slices, ["b"]), builder.transform(absent_b), atol=1e-6)
    only_b = drop_blocks(full, slices, ["a"])
    assert np.all(only_b[25:] == 0)  # tracks without block b are left with nothing
    assert ablation_variants(["a", "b"]) == [("all", []), ("-a", ["a"]), ("-b", ["b"])]


def test_single_block_index_and_layout_mismatch_are_clear():
    eng = Engine.build(make_catalog(60), simulate_users=20, config=fast_config(genre_probs=False), seed=0)
    with pytest.raises(InputError, match="nothing to ablate"):
        ablate(eng, eng.simulated_histories)
    eng.builder.layout_.append(("ghost", 3, ["g1", "g2", "g3"]))
    with pytest.raises(Exception, match="rebuild the index"):
        block_slices(eng)


def test_cli_ablate_table_and_plain_output_unchanged(world):
    d, _, _ = world
    runner = CliRunner()
    r = runner.invoke(main, ["evaluate", "--index", str(d / "idx"), "--histories", str(d / "h.parquet"),
                             "--ablate"])
    assert r.exit_code == 0, r.output
    assert "clusters recomputed" in r.output and "-spectral" in r.output and "content hit@10" in r.output
    r = runner.invoke(main, ["evaluate", "--index", str(d / "idx"), "--histories", str(d / "h.parquet"),
                             "--ablate", "--ablate-clusters", "keep", "--json"])
    assert r.exit_code == 0, r.output
    import json

    out = json.loads(r.output[r.output.index("{"):])
    assert out["info"]["clusters"] == "keep" and len(out["ablation"]) == 7
    r = runner.invoke(main, ["evaluate", "--index", str(d / "idx"), "--histories", str(d / "h.parquet")])
    assert r.exit_code == 0 and "ablation" not in r.output and "popularity" in r.output
