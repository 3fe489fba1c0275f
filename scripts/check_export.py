"""Check an exported ONNX policy against the trained job it came from.

Draws random observations, runs them (for an LSTM policy as a sequence,
carrying the state) through ``rl8.load_policy(job)`` in this process and
through the ONNX file in a separate Python process that imports only numpy
and onnxruntime, and prints both actions and their largest difference.

Usage::

    python -m rl8.export run=outputs/<date>/<time>            # writes policy.onnx
    python scripts/check_export.py outputs/<date>/<time> [--steps 5 --batch 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import rl8

#: Runs in a fresh ``python -I``: numpy and onnxruntime only.
RUNNER = r"""
import json, sys
import numpy as np
import onnxruntime as ort

model, data = sys.argv[1], np.load(sys.argv[2])
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
names = [i.name for i in session.get_inputs()]
obs = data["obs"]                                   # [steps, batch, *obs_shape]
state = [data[n] for n in names[1:]]                # zeros [layers, batch, hidden]
actions = []
for t in range(obs.shape[0]):
    out = session.run(None, dict(zip(names, [obs[t], *state])))
    actions.append(out[0])
    state = out[1:]
print(json.dumps({
    "actions": np.stack(actions).tolist(),
    "imported": sorted(m for m in ("rl8", "torch") if m in sys.modules),
}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("job", help="the job's output dir (holding checkpoint.pt and policy.onnx)")
    p.add_argument("--onnx", default=None, help="the ONNX file (default: <job>/policy.onnx)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args()
    onnx_path = Path(args.onnx or Path(args.job) / "policy.onnx")

    policy = rl8.load_policy(args.job)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(args.steps, args.batch, *policy.observation_shape, generator=gen)
    state = policy.initial_state(args.batch) if policy.recurrent else ()
    expected = []
    for t in range(args.steps):
        out = policy(obs[t], *state)
        action, state = (out[0], out[1:]) if policy.recurrent else (out, ())
        expected.append(action)
    torch_actions = torch.stack(expected).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "inputs.npz"
        zeros = policy.initial_state(args.batch) if policy.recurrent else ()
        names = policy.input_names[1:]
        np.savez(data, obs=obs.numpy(), **{n: z.numpy() for n, z in zip(names, zeros)})
        proc = subprocess.run(
            [sys.executable, "-I", "-c", RUNNER, str(onnx_path), str(data)],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    onnx_actions = np.asarray(result["actions"], dtype=torch_actions.dtype)
    diff = np.abs(onnx_actions.astype(np.float64) - torch_actions.astype(np.float64)).max()
    kind = "LSTM" if policy.recurrent else "feedforward"
    print(f"{onnx_path} ({kind}, {args.steps} steps x batch {args.batch})")
    print(f"onnxruntime process imported rl8/torch: {result['imported'] or 'neither'}")
    print(f"actions (torch, step 0): {torch_actions[0].reshape(args.batch, -1).tolist()}")
    print(f"actions (onnx,  step 0): {onnx_actions[0].reshape(args.batch, -1).tolist()}")
    print(f"max |onnx - torch| over all steps: {diff:.3g}")
    sys.exit(0 if diff <= 1e-5 and not result["imported"] else 1)


if __name__ == "__main__":
    main()
