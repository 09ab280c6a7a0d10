#!/usr/bin/env python3
"""Accuracy of digits models with onnxruntime (graph optimizations disabled).

Run by hand (CI never runs Python):

    python3 tools/ort_accuracy.py MODEL.onnx [MODEL.onnx ...]

Each model is run sample by sample (batch 1) on the 500 digits_test images
(tests/data/fixtures/digits_test: x.pb [500,64], x_img.pb [500,1,8,8] or
x_seq.pb [500,8,8], picked by the model's input rank) and its accuracy against
y.pb is printed, with the top-1 agreement with a reference model given by
--reference.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "fixtures", "digits_test")


def load_pb(path: str) -> np.ndarray:
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def predictions(model: str) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    rank = len(inp.shape)
    x = load_pb(os.path.join(DATA, {2: "x.pb", 3: "x_seq.pb", 4: "x_img.pb"}[rank]))
    out = [s.run(None, {inp.name: x[i : i + 1]})[0] for i in range(len(x))]
    return np.concatenate(out).argmax(axis=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--reference", help="model whose predictions agreement is measured against")
    a = ap.parse_args(argv)
    y = load_pb(os.path.join(DATA, "y.pb"))
    ref = predictions(a.reference) if a.reference else None
    for m in a.models:
        p = predictions(m)
        line = f"{m}: accuracy {100 * (p == y).mean():.1f} % ({(p == y).sum()}/{len(y)})"
        if ref is not None:
            line += f", top-1 agreement with the reference {(p == ref).mean():.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
