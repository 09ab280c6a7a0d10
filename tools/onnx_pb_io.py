"""Shared helpers for the smelt reference tools (run by hand, never by CI).

Reads and writes ONNX TensorProto files in the ONNX backend-test layout
(``test_data_set_N/input_K.pb`` / ``output_K.pb``) and runs onnxruntime
with every graph optimization disabled, so that its results are a plain
reference for the model as written.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import onnx
from onnx import numpy_helper


def ort_session(model_path: str):
    """An onnxruntime CPU session with graph optimizations disabled."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(
        model_path, sess_options=opts, providers=["CPUExecutionProvider"]
    )


def read_tensor(path: str) -> tuple[str, np.ndarray]:
    """Load one TensorProto file; returns (tensor name, array)."""
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, numpy_helper.to_array(t)


def write_tensor(path: str, name: str, array: np.ndarray) -> None:
    """Write one array as a TensorProto file named ``name``."""
    t = numpy_helper.from_array(np.asarray(array), name=name)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


def numbered_files(directory: str, prefix: str) -> list[str]:
    """``prefix_K.pb`` files of a directory, sorted by K (0, 1, 2, ...)."""
    pat = re.compile(re.escape(prefix) + r"_(\d+)\.pb$")
    found = []
    for p in glob.glob(os.path.join(directory, prefix + "_*.pb")):
        m = pat.search(os.path.basename(p))
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    for pos, (k, p) in enumerate(found):
        if k != pos:
            raise ValueError(f"{directory}: {prefix}_{pos}.pb is missing (found {p})")
    return [p for _, p in found]


def write_tensors(directory: str, prefix: str, names, arrays) -> list[str]:
    """Write ``prefix_K.pb`` for each (name, array), K = position."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for k, (name, arr) in enumerate(zip(names, arrays)):
        p = os.path.join(directory, f"{prefix}_{k}.pb")
        write_tensor(p, name, arr)
        paths.append(p)
    return paths


def compare(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float):
    """Returns (ok, max_abs_err, max_rel_err, message).

    ok follows numpy.allclose: |a - e| <= atol + rtol * |e|, NaNs equal
    when both sides are NaN. The relative error is |a - e| / |e| over the
    elements whose |e| is non-zero.
    """
    if actual.shape != expected.shape:
        return False, float("inf"), float("inf"), (
            f"shape {actual.shape} != expected {expected.shape}"
        )
    if actual.dtype != expected.dtype:
        return False, float("inf"), float("inf"), (
            f"dtype {actual.dtype} != expected {expected.dtype}"
        )
    if actual.size == 0:
        return True, 0.0, 0.0, "empty"
    if not np.issubdtype(expected.dtype, np.number):
        ok = bool(np.array_equal(actual, expected))
        return ok, 0.0 if ok else float("inf"), 0.0 if ok else float("inf"), "exact"
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    diff = np.abs(a - e)
    both_nan = np.isnan(a) & np.isnan(e)
    diff = np.where(both_nan, 0.0, diff)
    max_abs = float(np.nanmax(np.where(np.isnan(diff), np.inf, diff)))
    nz = np.abs(e) > 0
    max_rel = float(np.max(diff[nz] / np.abs(e[nz]))) if nz.any() else 0.0
    ok = bool(np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True))
    return ok, max_abs, max_rel, ""
