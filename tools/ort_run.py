#!/usr/bin/env python3
"""Run an ONNX model on onnxruntime (graph optimizations disabled).

Run by hand (CI never runs Python):

    python3 tools/ort_run.py MODEL --inputs DIR [--outputs DIR]
                             [--compare DIR [--rtol R] [--atol A]]

--inputs DIR   holds input_0.pb, input_1.pb, ... (ONNX TensorProto files, the
               ONNX backend-test layout). input_K feeds the graph input whose
               name the tensor carries, or else graph input number K.
--outputs DIR  writes output_K.pb per graph output K (tensor name = graph
               output name).
--compare DIR  compares each output K with DIR/output_K.pb and prints the
               max abs / max rel error; passes when, element-wise,
               |actual - expected| <= atol + rtol * |expected| (numpy.allclose).

Example, checking the committed reference data against a re-export:

    python3 tools/ort_run.py target/real-models/resnet18/model.onnx \\
        --inputs tests/data/real/resnet18/test_data_set_0 \\
        --compare tests/data/real/resnet18/test_data_set_0

Exit status: 0 on success, 1 when a comparison fails, 2 on bad usage/input.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # no tools/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_pb_io import (  # noqa: E402
    compare, numbered_files, ort_session, read_tensor, write_tensors)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("model", metavar="MODEL", help="ONNX model file")
    ap.add_argument("--inputs", required=True, metavar="DIR",
                    help="directory with input_K.pb")
    ap.add_argument("--outputs", metavar="DIR", help="write output_K.pb here")
    ap.add_argument("--compare", metavar="DIR",
                    help="compare with output_K.pb of this directory")
    ap.add_argument("--rtol", type=float, default=1e-3, help="default 1e-3")
    ap.add_argument("--atol", type=float, default=1e-5, help="default 1e-5")
    args = ap.parse_args(argv)

    sess = ort_session(args.model)
    graph_inputs = [i.name for i in sess.get_inputs()]
    graph_outputs = [o.name for o in sess.get_outputs()]

    try:
        in_files = numbered_files(args.inputs, "input")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(in_files) != len(graph_inputs):
        print(f"error: {args.inputs} has {len(in_files)} input_K.pb, the model has "
              f"{len(graph_inputs)} inputs {graph_inputs}", file=sys.stderr)
        return 2
    feeds = {}
    for k, path in enumerate(in_files):
        name, arr = read_tensor(path)
        target = name if name in graph_inputs else graph_inputs[k]
        if target in feeds:
            print(f"error: {path} feeds {target!r} a second time", file=sys.stderr)
            return 2
        feeds[target] = arr
        print(f"input  {k} {target!r}: {arr.dtype} {list(arr.shape)}")

    outs = sess.run(None, feeds)
    for k, (name, arr) in enumerate(zip(graph_outputs, outs)):
        arr = np.asarray(arr)
        extra = ""
        if arr.size and np.issubdtype(arr.dtype, np.number):
            extra = f" min {arr.min():.6g} max {arr.max():.6g}"
        print(f"output {k} {name!r}: {arr.dtype} {list(arr.shape)}{extra}")

    if args.outputs:
        paths = write_tensors(args.outputs, "output", graph_outputs, outs)
        print(f"wrote {len(paths)} file(s) to {args.outputs}")

    if args.compare:
        try:
            ref_files = numbered_files(args.compare, "output")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if len(ref_files) != len(outs):
            print(f"FAIL: {args.compare} has {len(ref_files)} output_K.pb, the model "
                  f"has {len(outs)} outputs")
            return 1
        all_ok = True
        for k, (path, actual) in enumerate(zip(ref_files, outs)):
            _, expected = read_tensor(path)
            ok, max_abs, max_rel, msg = compare(np.asarray(actual), expected,
                                                args.rtol, args.atol)
            all_ok &= ok
            print(f"{'OK  ' if ok else 'FAIL'} output {k}: max abs err {max_abs:.3e}, "
                  f"max rel err {max_rel:.3e} (rtol {args.rtol:g}, atol {args.atol:g})"
                  + (f" {msg}" if msg else ""))
        if not all_ok:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
