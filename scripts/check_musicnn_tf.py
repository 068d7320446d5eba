"""Check the torch musicnn port against TensorFlow running the checkpoint's own graph (a test/bench extra).

TensorFlow is never a runtime dependency: it lives in a separate venv (``tensorflow-cpu`` from PyPI,
``python -m venv tfvenv && tfvenv/bin/pip install tensorflow-cpu``). This script, run with the
project's Python, tags 3-s patches of two bundled clips with the torch port, then runs itself with
``--tf-python`` in ``--tf-worker`` mode, which imports the wheel's ``.meta`` graph (the graph the
authors trained and saved, not musicnn's Python code), feeds the checkpoint's variables as read by
TensorFlow's own checkpoint reader, and returns logits, sigmoid outputs and the penultimate layer. It
also compares every tensor of our checkpoint reader with TensorFlow's. Exit 1 if max |diff| >= 1e-4.

    python scripts/check_musicnn_tf.py --tf-python /tmp/tfvenv/bin/python [--model MSD_musicnn]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CLIPS = ("Kevin_MacLeod_-_Vibe_Ace.ogg",
         "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg")
TOLERANCE = 1e-4
OUTPUTS = {"logits": "model/dense_1/BiasAdd:0", "probs": "model/Sigmoid:0",
           "penultimate": "model/batch_normalization_10/batchnorm/add_1:0"}


def tf_worker(prefix: str, inputs: Path, out: Path) -> None:
    """In the TensorFlow venv: import the saved graph, feed the checkpoint variables, run the patches."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString(Path(f"{prefix}.meta").read_bytes())
    for node in meta.graph_def.node:  # shapes recorded by TF 1.x trip the newer importer's checks
        node.attr.pop("_output_shapes", None)
    wanted = [t.split(":")[0] for t in OUTPUTS.values()]
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, wanted)
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)  # the prefix ends in "/": not a directory
    ours = np.load(inputs)
    report = {"reader_max_abs_diff": 0.0, "reader_tensors": 0}
    for name in reader.get_variable_to_shape_map():
        theirs = reader.get_tensor(name)
        if f"ckpt/{name}" in ours.files:
            diff = np.abs(np.asarray(theirs, np.float64) - ours[f"ckpt/{name}"])
            report["reader_max_abs_diff"] = max(report["reader_max_abs_diff"], float(diff.max(initial=0.0)))
            report["reader_tensors"] += 1
    report["tf_variables"] = len(reader.get_variable_to_shape_map())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        feed = {"model/Placeholder:0": ours["patches"], "model/Placeholder_2:0": False}
        for op in graph.get_operations():
            if op.type == "VariableV2":
                feed[f"{op.name}/read:0"] = reader.get_tensor(op.name)
        with tf.compat.v1.Session(graph=graph) as sess:
            got = sess.run(OUTPUTS, feed_dict=feed)
    np.savez(out, **got)
    Path(f"{out}.json").write_text(json.dumps(report))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tf-python", help="python of a venv with tensorflow-cpu")
    ap.add_argument("--model", default="MSD_musicnn")
    ap.add_argument("--audio-dir", default="data/audio")
    ap.add_argument("--tf-worker", nargs=3, metavar=("PREFIX", "IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tf_worker:
        tf_worker(args.tf_worker[0], Path(args.tf_worker[1]), Path(args.tf_worker[2]))
        return 0
    if not args.tf_python:
        ap.error("--tf-python is required")

    from recsys.audio import musicnn
    from recsys.audio.load import load_excerpt

    tagger = musicnn.Tagger.load(args.model)
    x = np.concatenate([musicnn.patches(musicnn.log_mel(*load_excerpt(Path(args.audio_dir) / c, sr=musicnn.SR,
                                                                      seconds=15.0)))
                        for c in CLIPS])
    import torch

    with torch.inference_mode():
        logits, pen = tagger.net(torch.from_numpy(x))
    ours = {"logits": logits.numpy(), "probs": torch.sigmoid(logits).numpy(), "penultimate": pen.numpy()}
    prefix = musicnn.checkpoint_prefix(args.model)
    tensors = musicnn.read_tf_checkpoint(prefix)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, patches=x, **{f"ckpt/{k}": v for k, v in tensors.items()})
        subprocess.run([args.tf_python, __file__, "--tf-worker", prefix, str(inp), str(out)], check=True)
        theirs = dict(np.load(out))
        report = json.loads(Path(f"{out}.json").read_text())
    print(f"checkpoint reader: {report['reader_tensors']} of {report['tf_variables']} TF variables compared, "
          f"max |diff| {report['reader_max_abs_diff']:.3g} (ours read {len(tensors)})")
    worst = 0.0
    for key in OUTPUTS:
        d = float(np.max(np.abs(ours[key] - theirs[key])))
        worst = max(worst, d) if key != "penultimate" else worst
        print(f"{key:12s} {x.shape[0]} patches: max |torch - tensorflow| = {d:.3g}")
    top_t = [tagger.labels[i] for i in np.argsort(-theirs["probs"].mean(0))[:3]]
    print(f"TF top-3 tags over all patches: {top_t}")
    ok = worst < TOLERANCE and report["reader_max_abs_diff"] == 0.0
    print("PASS" if ok else "FAIL", f"(tolerance {TOLERANCE:g} on logits/probs; reader must be exact)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
