"""Where the never-played targets of `recsys evaluate --split users` land, one line per cold target.

    python scripts/cold_targets.py --index out/dev_idx \
        --histories ../shared/data/playlists/mpd_dev_playlists.tsv.gz

The same split as the command (seed 0, 20 % of the users held out whole) and the same recommender fitted on
its training part. Per cold target: the context's length and share of played tracks, whether the target
shares an artist or album with the context, whether any source proposed it, and if so its rank overall and
among the never-played candidates (the cold slots take the best of those). A target no source proposes
cannot be reached by any ranking. Research data stays where it is: the script only reads it.
"""
from __future__ import annotations

import argparse

import numpy as np

from recsys import threads

threads.configure()

from recsys.engine import Engine  # noqa: E402
from recsys.evaluate import prepare_split, split_recommender  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--histories", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    eng = Engine.load(a.index)
    split = prepare_split(eng, a.histories, protocol="users", seed=a.seed)
    rec = split_recommender(eng, split)
    print({k: v for k, v in rec.info.items() if k.startswith(("cold", "guard_cold"))})
    cold = split.popularity == 0
    meta = rec.data.content.meta
    artist, album = meta.get("artist"), meta.get("album")
    linked = proposed = 0
    n = int(cold[split.targets].sum())
    print(f"{n} cold targets of {len(split.targets)}")
    for recent, t in zip(split.recent, split.targets.tolist()):
        if not cold[t]:
            continue
        ctx = rec.context(recent)
        cand = rec.candidates(ctx)
        ctx_rows = np.asarray(recent)
        def same(codes):
            return int((codes[ctx_rows] == codes[t]).sum()) if codes is not None and codes[t] >= 0 else 0

        same_artist, same_album = same(artist), same(album)
        linked += bool(same_artist or same_album)
        line = (f"context {len(recent):3d} tracks, {np.mean(rec._log_plays[ctx.rows] > 0):.0%} played; "
                f"same artist {same_artist}, same album {same_album}")
        pos = np.searchsorted(cand.rows, t)
        if t in recent:
            line += "; it repeats a context track (a context track is never recommended)"
        elif pos < len(cand.rows) and cand.rows[pos] == t:
            proposed += 1
            order, _ = rec.ranker.rank(rec.features(ctx, cand), rec.blend_scores(cand), cand.rows,
                                       len(cand.rows)) if rec.ranker is not None else (
                np.argsort(-rec.blend_scores(cand), kind="stable"), None)
            ranked = cand.rows[order]
            cold_ranked = ranked[cold[ranked]]
            by = [s for s in rec.sources if np.isfinite(cand.ranks[s][pos])]
            line += (f"; proposed by {', '.join(by)}: rank {int(np.flatnonzero(ranked == t)[0]) + 1} of "
                     f"{len(ranked)}, {int(np.flatnonzero(cold_ranked == t)[0]) + 1} of {len(cold_ranked)} "
                     "never-played candidates")
        else:
            line += "; proposed by no source"
        print(line, flush=True)
    print(f"{linked} of {n} share an artist or album with their context; {proposed} of {n} are proposed by "
          "some source")


if __name__ == "__main__":
    main()
