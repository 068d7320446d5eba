"""Speed of the musicnn tagger on one core: seconds per 30-s excerpt and the real-time factor.

Target (issue 23): <= 0.05x real time per 30-s excerpt on one core, i.e. <= 1.5 s. Measures the
tagger alone (16 kHz mel + 10 patches through the network) and the block's ``extract`` (the same
plus pooling), on the middle 30 s of every bundled clip that long, after one warm-up call.

    OMP_NUM_THREADS=1 python scripts/bench_musicnn.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import soundfile as sf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio-dir", default="data/audio")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from recsys.audio.load import load_excerpt
    from recsys.audio.musicnn import Tagger
    from recsys.blocks import get_extractor

    torch.set_num_threads(args.threads)
    tagger = Tagger.load("MSD_musicnn")
    block = get_extractor("musicnn")
    clips = [p for p in sorted(Path(args.audio_dir).glob("*.ogg")) if sf.info(str(p)).duration >= 30.0]
    print(f"torch threads {torch.get_num_threads()}, load average before: {os.getloadavg()[0]:.2f}")
    tag_s, block_s = [], []
    for p in clips:
        y, sr = load_excerpt(p, sr=22050, seconds=30.0)
        tagger.tag(y, sr)  # warm-up (oneDNN kernels, librosa filters)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            tagger.tag(y, sr)
            tag_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            block.extract(y, sr, path=p)
            block_s.append(time.perf_counter() - t0)
        print(f"  {p.name[:50]:50s} tag {min(tag_s[-args.repeats:]):.3f} s")
    for name, xs in (("tagger (mel + network)", tag_s), ("block extract (+ pooling)", block_s)):
        med = statistics.median(xs)
        print(f"{name:28s} median {med:.3f} s per 30-s excerpt = {med / 30.0:.4f}x real time "
              f"(min {min(xs):.3f}, max {max(xs):.3f}, n={len(xs)})")
    print(f"load average after: {os.getloadavg()[0]:.2f}; target <= 0.05x real time (1.5 s)")


if __name__ == "__main__":
    main()
