"""Applying a packed token bitmask to a batch of logits on a device: ours against the peers' kernels.

Per batch size, the time (synchronized, mean of ``--iters`` after warm-up) to set the disallowed
logits of ``float32[batch, V]`` to -inf from an ``int32[batch, ceil(V/32)]`` bitmask:

* ``constrain (on device)``: :func:`constrain.apply_bitmask` with the bitmask already on the device;
* ``constrain (from host)``: the same with the bitmask in host memory (the copy included): what
  the host mask path pays per step;
* ``device tables``: :class:`DeviceTables` gathering the rows' bitmasks by state and masking;
* ``xgrammar`` / ``llguidance``: their ``apply_token_bitmask_inplace`` (when installed).

    python bench/apply_mask.py --device cuda          # V = SmolLM2's 49,152 by default
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import constrain  # noqa: E402


def timed(fn, device: str, iters: int) -> float:
    """Mean µs of ``fn()`` over ``iters`` calls after 10 warm-ups, synchronized."""
    import torch

    for _ in range(10):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 1e6 * (time.perf_counter() - t0) / iters


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--vocab-size", type=int, default=49152)
    ap.add_argument("--batch-sizes", default="1,8,32,128")
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args()
    from constrain.integrations.device_tables import DeviceTables

    dev, v = args.device, args.vocab_size
    rng = np.random.default_rng(0)
    vocab = constrain.Vocabulary([bytes([65 + i % 26]) * (1 + i // 26) for i in range(v - 1)] + [b""],
                                 eos_token_ids=[v - 1])
    tables = DeviceTables(constrain.compile_regex("[A-M]+", vocab), dev)
    peers = {}
    try:
        import xgrammar

        peers["xgrammar"] = xgrammar.apply_token_bitmask_inplace
    except ImportError:
        pass
    try:
        import llguidance.torch as llt

        peers["llguidance"] = llt.apply_token_bitmask_inplace
    except ImportError:
        pass
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"
    print(f"{name}, V = {v}, mean of {args.iters} calls, µs per batch\n")
    cols = ["constrain (on device)", "constrain (from host)", "device tables"] + list(peers)
    print("| batch | " + " | ".join(cols) + " |")
    print("|---:|" + "---:|" * len(cols))
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        logits = torch.randn((b, v), device=dev)
        host = rng.integers(-(2**31), 2**31 - 1, size=(b, (v + 31) // 32), dtype=np.int64).astype(np.int32)
        on_dev = torch.from_numpy(host).to(dev)
        pinned = torch.from_numpy(host).pin_memory() if dev.startswith("cuda") else torch.from_numpy(host)
        rows = tables.initial_states(1).repeat(b)
        row = [
            timed(lambda: constrain.apply_bitmask(logits, on_dev), dev, args.iters),
            timed(lambda: constrain.apply_bitmask(logits, pinned.to(dev, non_blocking=True)), dev, args.iters),
            timed(lambda: tables.apply(logits, rows), dev, args.iters),
        ]
        for fn in peers.values():
            try:
                row.append(timed(lambda: fn(logits, on_dev), dev, args.iters))
            except Exception as exc:  # noqa: BLE001 - a peer's kernel missing on this device: reported
                print(f"peer failed: {type(exc).__name__}: {exc}")
                row.append(float("nan"))
        print(f"| {b} | " + " | ".join(f"{x:.1f}" for x in row) + " |", flush=True)


if __name__ == "__main__":
    main()
