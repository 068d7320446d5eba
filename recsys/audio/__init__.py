"""Audio: decoding, spectral front-end, statistics from audio, CNN chunk classifier, stems, transcription."""
