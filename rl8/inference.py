"""Trained policies as plain callables for inference: :func:`load_policy`.

Nothing here unpickles: checkpoints are read with
``torch.load(weights_only=True)``, ONNX files by onnxruntime (a protobuf
graph), and ``.pt2`` files (whose loader can run code) only when the caller
says it trusts them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["OnnxPolicy", "load_policy"]


class OnnxPolicy:
    """An exported ONNX policy run by onnxruntime, called like
    :class:`rl8.export.PolicyModule`: ``policy(obs)``, or for an LSTM policy
    ``policy(obs, h, c) -> (action, h, c)``; torch tensors in and out (CPU).

    Args:
        path: A file written by ``python -m rl8.export`` / :func:`rl8.export.export_onnx`.

    Attributes:
        metadata: What the file says about the policy (:func:`rl8.export.read_metadata`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError(
                "running an ONNX policy needs onnxruntime: pip install 'rl8[export]'."
            ) from e
        from .export import read_metadata

        self.metadata: dict[str, Any] = read_metadata(path)
        self.session = onnxruntime.InferenceSession(
            os.fspath(path), providers=["CPUExecutionProvider"]
        )
        self.input_names: list[str] = list(self.metadata["input_names"])
        self.recurrent = bool(self.metadata["recurrent"])

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """Zero recurrent state for ``batch`` observations (empty: feedforward)."""
        shapes = self.metadata["state_shapes"] if self.recurrent else []
        return tuple(
            torch.zeros([batch if d == "batch" or d == -1 else d for d in shape])
            for shape in shapes
        )

    def __call__(self, obs: torch.Tensor, *state: torch.Tensor) -> Any:
        feeds = {name: x.detach().cpu().numpy() for name, x in zip(self.input_names, (obs, *state))}
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feeds)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def load_policy(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    tracking_uri: str | None = None,
    trusted: bool = False,
) -> Any:
    """A trained policy as a callable: observations ``[B, *obs_shape]`` in,
    deterministic actions out (an LSTM policy: ``policy(obs, h, c) ->
    (action, h, c)``; ``policy.initial_state(B)`` gives zeros).

    Args:
        source: A job output dir, its ``checkpoint.pt``, an MLflow run id, a
            file of :meth:`rl8.policies.Policy.save`, an exported ``.onnx``
            file, or a ``.pt2`` file.
        device: Device of a policy loaded from a checkpoint.
        tracking_uri: The MLflow store of a run id (default: MLflow's).
        trusted: Allow loading a ``.pt2`` file, whose loader can run code
            stored in it (see :func:`rl8.export.load_pt2`), or a policy file
            naming classes outside rl8.

    Returns:
        A :class:`rl8.export.PolicyModule` (checkpoints), an
        :class:`OnnxPolicy` (``.onnx``) or the module of a ``.pt2`` file.

    Raises:
        ConfigError: Nothing loadable at ``source``.
        PermissionError: A ``.pt2`` file without ``trusted=True``.
    """
    path = Path(os.fspath(source)).expanduser()
    if path.suffix == ".onnx":
        return OnnxPolicy(path)
    if path.suffix == ".pt2":
        from .export import load_pt2

        return load_pt2(path, trusted=trusted)
    from .checkpoint import CHECKPOINT_NAME
    from .export import PolicyModule
    from .runs import open_run

    if path.is_file() and path.name != CHECKPOINT_NAME:
        from .policies.files import NotAPolicyFile, load

        try:  # one read: a policy file, else (e.g. a renamed checkpoint) a run below
            return PolicyModule(load(path, device=device, trusted=trusted))
        except NotAPolicyFile:
            pass
    trained = open_run(os.fspath(source), tracking_uri=tracking_uri)
    trainer = trained.build_trainer(num_envs=1, device=str(device), trusted=trusted)
    try:
        return PolicyModule(trainer.algorithm.policy)
    finally:
        trainer.close()
