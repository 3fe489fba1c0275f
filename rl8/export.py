"""Export a trained policy for deployment: ONNX and ``torch.export`` (``.pt2``).

The exported graph is the *deterministic* policy: observations in, actions
out (the most likely action of a discrete policy, the squashed mean of a
bounded continuous one), exactly what ``policy.sample(obs,
deterministic=True)`` returns. Values, log-probabilities and the value head
are left out. The graph takes raw observations: rl8's models normalize
nothing, so what the environment returns is what the graph expects.

- :class:`PolicyModule`: the deterministic policy as a plain, eval-mode
  ``torch.nn.Module`` holding a copy of the model's weights.
- :func:`export_onnx`: an ONNX file (``torch.onnx.export(..., dynamo=True)``)
  with a dynamic batch dimension and the policy's description in its
  ``metadata_props``; runs with onnxruntime alone (no torch, no rl8).
  Needs ``pip install 'rl8[export]'`` (onnx and onnxscript).
- :func:`export_pt2` / :func:`load_pt2`: a ``torch.export`` archive. Loading
  one can run code stored in the file, so :func:`load_pt2` only reads files
  it is told are trusted (see its docstring and ``docs/export.md``).
- :func:`read_metadata`: the description stored in either file, read
  without running anything from it.

Inputs and outputs (``B`` is the batch, dynamic unless fixed):

- feedforward: ``obs [B, *obs_shape]`` -> ``action``;
- recurrent (LSTM): ``obs, h_in, c_in`` -> ``action, h_out, c_out`` with
  ``h``/``c`` ``[num_layers, B, hidden_size]`` float32, one step per call
  (IsaacLab's and RSL-RL's convention).

Actions: discrete -> int64 ``[B, *action_shape]``; continuous -> float32
``[B, *action_shape]`` (within the spec's bounds for a bounded spec).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ._files import atomic_write
from .distributions import Categorical, SquashedNormal
from .models import Model
from .policies import Policy
from .specs import BoundedSpec, DiscreteSpec

__all__ = [
    "BATCH_DIM",
    "CLI_DOC",
    "METADATA_FORMAT",
    "ONNX_OPSET",
    "PT2_METADATA_FILE",
    "ExportConf",
    "PolicyModule",
    "export_onnx",
    "export_pt2",
    "export_run",
    "load_pt2",
    "main",
    "read_metadata",
]

log = logging.getLogger("rl8.export")

#: ONNX opset of :func:`export_onnx` (torch.onnx's own; onnxruntime >= 1.14 runs it).
ONNX_OPSET = 18
#: Name of the dynamic batch dimension (the ONNX graph's ``dim_param``).
BATCH_DIM = "batch"
#: Version of the metadata layout (the ``format`` key).
METADATA_FORMAT = 1
#: Name of the metadata file inside a ``.pt2`` archive (``extra_files``).
PT2_METADATA_FILE = "rl8_metadata.json"
#: Metadata keys whose values are JSON (the others are plain strings).
_JSON_KEYS = frozenset(
    {
        "format",
        "recurrent",
        "input_names",
        "output_names",
        "observation_shape",
        "action_shape",
        "action_n",
        "action_low",
        "action_high",
        "action_squashed",
        "state_shapes",
    }
)
_INSTALL_HINT = "pip install 'rl8[export]'"


class PolicyModule(nn.Module):
    """The deterministic action of a :class:`~rl8.policies.Policy` as a pure module.

    Holds a deep copy of the policy's model (so later training does not
    change it), in eval mode with gradients off. ``forward`` has no Python
    control flow that depends on tensor values, so it traces with
    ``torch.export`` and ``torch.onnx``.

    Feedforward model: ``forward(obs) -> action``. Recurrent model (one whose
    model has ``init_state``, e.g. :class:`~rl8.models.LSTMModel`):
    ``forward(obs, *state) -> (action, *next_state)``, one step per call; for
    an LSTM that is ``forward(obs, h_in, c_in) -> (action, h_out, c_out)``.

    Shapes and dtypes:

    - ``obs``: ``[B, *observation_shape]``, the observation spec's dtype
      (float32 for the built-in environments), raw (not normalized).
    - ``action``: ``[B, *action_shape]``; int64 in ``[0, action_n)`` for a
      :class:`~rl8.specs.DiscreteSpec` (the argmax of each categorical);
      float32 otherwise (the mean, squashed into ``[action_low, action_high]``
      by the default :class:`~rl8.distributions.SquashedNormal` of a
      :class:`~rl8.specs.BoundedSpec`).
    - state (LSTM): ``h``, ``c`` each ``[num_layers, B, hidden_size]`` float32;
      :meth:`initial_state` gives zeros.

    Args:
        policy: The policy to copy.
        device: Device of the copy. Default: the policy's.
    """

    #: The copied model (eval mode, ``requires_grad=False``).
    model: nn.Module

    def __init__(self, policy: Policy, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        model = copy.deepcopy(policy.model)
        if device is not None:
            model = model.to(device)
        model.requires_grad_(False)
        self.model = model
        self.distribution_cls = policy.distribution_cls
        self.observation_spec = policy.observation_spec
        self.action_spec = policy.action_spec
        #: Whether the model is recurrent (takes and returns a state).
        self.recurrent: bool = callable(getattr(model, "init_state", None))
        state = self._zero_state(1, self._device())
        #: Per-tensor state shapes with ``-1`` for the batch (dim 1); ``()`` if feedforward.
        self.state_shapes: tuple[tuple[int, ...], ...] = tuple(
            (*s.shape[:1], -1, *s.shape[2:]) for s in state
        )
        state_names: tuple[str, ...]
        if len(state) == 2:
            state_names = ("h", "c")
        else:
            state_names = tuple(f"state{i}" for i in range(len(state)))
        #: Names of the graph's inputs: ``("obs",)`` or ``("obs", "h_in", "c_in")``.
        self.input_names: tuple[str, ...] = ("obs", *(f"{n}_in" for n in state_names))
        #: Names of the graph's outputs: ``("action",)`` or ``("action", "h_out", "c_out")``.
        self.output_names: tuple[str, ...] = ("action", *(f"{n}_out" for n in state_names))
        self.eval()
        out = self(*self.example_inputs(2))
        action = out[0] if isinstance(out, tuple) else out
        expected = (2, *self.action_spec.shape)
        if tuple(action.shape) != expected:
            raise ValueError(
                f"The policy's deterministic action has shape {tuple(action.shape)} for a "
                f"batch of 2 observations; its action spec needs {expected}."
            )
        #: dtype of the action output (int64 discrete, float32 continuous).
        self.action_dtype: torch.dtype = action.dtype

    @classmethod
    def from_policy(
        cls, policy: Policy, *, device: torch.device | str | None = None
    ) -> PolicyModule:
        """``PolicyModule(policy, device=device)``."""
        return cls(policy, device=device)

    # -- the graph -------------------------------------------------------------
    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> Any:
        """The deterministic action of ``obs`` ``[B, *observation_shape]``.

        Returns ``action`` (feedforward) or ``(action, *next_state)``
        (recurrent, given ``state``: ``h_in, c_in`` for an LSTM).
        """
        if len(state) != len(self.state_shapes):
            raise TypeError(
                f"PolicyModule takes {', '.join(self.input_names)}: got obs and "
                f"{len(state)} state tensors."
            )
        # No autograd, as in Policy.sample: CPU kernels (oneDNN's LSTM) take
        # another path with grad mode on, which changes the last bits.
        with torch.no_grad():
            if not self.recurrent:
                return self._action(cast(Model, self.model).policy(obs))
            features, _, next_state = self.model(obs.unsqueeze(1), tuple(state))
            return (self._action(features[:, 0]), *next_state)

    def _action(self, features: torch.Tensor) -> torch.Tensor:
        return self.distribution_cls(features, self.action_spec).deterministic_sample()

    # -- helpers ---------------------------------------------------------------
    def _device(self) -> torch.device:
        first = next(itertools.chain(self.model.parameters(), self.model.buffers()), None)
        return torch.device("cpu") if first is None else first.device

    def _zero_state(self, batch: int, device: torch.device | str) -> tuple[torch.Tensor, ...]:
        if not self.recurrent:
            return ()
        init_state: Callable[..., tuple[torch.Tensor, ...]] = self.model.init_state  # type: ignore[assignment]
        return tuple(torch.zeros_like(s) for s in init_state(batch, device))

    def initial_state(
        self, batch: int, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Zero state for ``batch`` sequences: ``(h, c)`` each ``[num_layers,
        batch, hidden_size]`` float32 for an LSTM, ``()`` for a feedforward
        policy. ``device`` defaults to the module's."""
        return self._zero_state(batch, device if device is not None else self._device())

    def example_inputs(self, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Inputs of ``batch`` rows, in :attr:`input_names` order: standard
        normal observations (in the observation dtype, drawn from a generator
        of their own seeded with ``seed``: the global RNG is left alone) and a
        zero state."""
        device = self._device()
        generator = torch.Generator(device).manual_seed(seed)
        obs = torch.randn(batch, *self.observation_spec.shape, generator=generator, device=device)
        return (obs.to(self.observation_spec.dtype), *self.initial_state(batch, device))

    # -- description -----------------------------------------------------------
    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Per-row observation shape (without the batch)."""
        return tuple(self.observation_spec.shape)

    @property
    def observation_dtype(self) -> torch.dtype:
        """dtype of the ``obs`` input."""
        return self.observation_spec.dtype

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Per-row action shape (without the batch)."""
        return tuple(self.action_spec.shape)

    @property
    def action_kind(self) -> str:
        """``"discrete"`` (integer actions) or ``"continuous"``."""
        discrete = isinstance(self.action_spec, DiscreteSpec) or issubclass(
            self.distribution_cls, Categorical
        )
        return "discrete" if discrete else "continuous"

    @property
    def action_n(self) -> int | None:
        """Number of choices of each discrete action; ``None`` if continuous."""
        return self.action_spec.n if isinstance(self.action_spec, DiscreteSpec) else None

    @property
    def action_bounds(self) -> tuple[float, float] | None:
        """``(low, high)`` of a bounded continuous action spec, else ``None``.
        The default distribution (SquashedNormal) keeps actions inside them."""
        if isinstance(self.action_spec, BoundedSpec):
            return (self.action_spec.low, self.action_spec.high)
        return None

    def metadata(self) -> dict[str, str]:
        """The description stored with an export: string keys and values,
        JSON for structured ones (``docs/export.md`` lists them)."""
        from . import __version__

        bounds = self.action_bounds
        shapes = {
            name: [BATCH_DIM if d == -1 else d for d in shape]
            for name, shape in zip(self.input_names[1:], self.state_shapes)
        }
        dist = self.distribution_cls
        model = type(self.model)
        values: dict[str, Any] = {
            "format": METADATA_FORMAT,
            "producer": "rl8",
            "rl8_version": __version__,
            "policy": "deterministic",
            "recurrent": self.recurrent,
            "input_names": list(self.input_names),
            "output_names": list(self.output_names),
            "observation_shape": list(self.observation_shape),
            "observation_dtype": _dtype_name(self.observation_dtype),
            "observation_normalization": "none",
            "action_kind": self.action_kind,
            "action_shape": list(self.action_shape),
            "action_dtype": _dtype_name(self.action_dtype),
            "action_n": self.action_n,
            "action_low": None if bounds is None else bounds[0],
            "action_high": None if bounds is None else bounds[1],
            "action_squashed": issubclass(dist, SquashedNormal),
            "state_shapes": shapes,
            "distribution": f"{dist.__module__}.{dist.__qualname__}",
            "model": f"{model.__module__}.{model.__qualname__}",
        }
        return {k: json.dumps(v) if k in _JSON_KEYS else str(v) for k, v in values.items()}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _as_module(policy_or_module: Policy | PolicyModule) -> PolicyModule:
    """A CPU :class:`PolicyModule` of ``policy_or_module`` (copied if needed)."""
    if isinstance(policy_or_module, PolicyModule):
        module = policy_or_module
        if module._device().type != "cpu":
            module = copy.deepcopy(module).cpu()
        return module.eval()
    if isinstance(policy_or_module, Policy):
        return PolicyModule(policy_or_module, device="cpu")
    raise TypeError(
        f"Expected an rl8 Policy or PolicyModule, got {type(policy_or_module).__name__} "
        "(a trainer's policy is trainer.algorithm.policy)."
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide torch's known, harmless export warnings (and its log lines about
    torchvision ops it cannot register when torchvision is not installed)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # nn.LSTM refreshes its _flat_weights list while traced.
            warnings.filterwarnings("ignore", message=r"The tensor attributes .* were assigned")
            warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")
            yield
    finally:
        registration.setLevel(level)


def _export_program(module: PolicyModule, batch: int | None) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``module``, dim 0 of ``obs`` (dim 1 of the
    state) dynamic as :data:`BATCH_DIM` (``batch=None``) or fixed to ``batch``."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a whole number >= 1 or None, got {batch!r}.")
    # An example batch of 2: torch.export specializes sizes 0 and 1.
    args = module.example_inputs(2 if batch is None else batch)
    dynamic_shapes: tuple[Any, ...] | None = None
    if batch is None:
        dim = torch.export.Dim(BATCH_DIM, min=1)
        dynamic_shapes = ({0: dim},)
        if module.state_shapes:  # forward(obs, *state): the varargs are one input
            dynamic_shapes += (tuple({1: dim} for _ in module.state_shapes),)
    with _quiet():
        return torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)


def _require_onnx(*, exporter: bool = True) -> Any:
    """The ``onnx`` module; with ``exporter``, also check for onnxscript."""
    try:
        import onnx

        if exporter:
            import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as e:
        raise ImportError(
            f"ONNX export needs the onnx and onnxscript packages ({e.name or e} is missing): "
            f"{_INSTALL_HINT}"
        ) from e
    return onnx


def export_onnx(
    policy_or_module: Policy | PolicyModule,
    path: str | os.PathLike[str],
    *,
    batch: int | None = None,
    opset: int = ONNX_OPSET,
) -> Path:
    """Write the deterministic policy as an ONNX model to ``path``.

    Exported with ``torch.onnx.export(..., dynamo=True)`` from a CPU
    :class:`PolicyModule`. Inputs ``obs`` (feedforward) or ``obs, h_in,
    c_in`` (LSTM); outputs ``action`` or ``action, h_out, c_out`` (shapes and
    dtypes in :class:`PolicyModule`). The policy's description
    (:meth:`PolicyModule.metadata`) is stored in the model's
    ``metadata_props``. The file is checked with ``onnx.checker`` (full
    check) and written atomically (temporary file, then ``os.replace``).

    Args:
        policy_or_module: A policy (``trainer.algorithm.policy``) or its module.
        path: Destination, conventionally ``*.onnx``; parent directories are
            created.
        batch: ``None`` (default): the batch dimension is dynamic, named
            ``"batch"``, any size >= 1. A number fixes it to that size.
        opset: ONNX opset. Default :data:`ONNX_OPSET` (18).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImportError: onnx or onnxscript is missing (``pip install 'rl8[export]'``).
    """
    onnx = _require_onnx()
    module = _as_module(policy_or_module)
    program = _export_program(module, batch)
    with _quiet():
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            input_names=list(module.input_names),
            output_names=list(module.output_names),
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    assert onnx_program is not None
    proto = onnx_program.model_proto
    _name_batch_dim(proto)
    meta = module.metadata()
    kept = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = (
        f"rl8 {meta['rl8_version']} deterministic policy: "
        f"{', '.join(module.input_names)} -> {', '.join(module.output_names)}"
    )
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    return atomic_write(path, lambda f: f.write(data))


def _name_batch_dim(proto: Any) -> None:
    """Rename the batch's symbol (``s0``-like, torch.export's) to :data:`BATCH_DIM`."""
    graph = proto.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    symbol = dims[0].dim_param if len(dims) else ""
    if not symbol:
        return  # a fixed batch
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = BATCH_DIM


def export_pt2(policy_or_module: Policy | PolicyModule, path: str | os.PathLike[str]) -> Path:
    """Write the deterministic policy as a ``torch.export`` archive to ``path``.

    ``torch.export.export`` of a CPU :class:`PolicyModule` with a dynamic
    batch dimension (any size >= 1), saved with ``torch.export.save``
    (atomically: temporary file, then ``os.replace``). The description
    (:meth:`PolicyModule.metadata`) is stored as the archive's extra file
    :data:`PT2_METADATA_FILE`. Name the file ``*.pt2`` (torch warns when
    loading another name).

    Safety: loading a ``.pt2`` with ``torch.export.load`` can run code stored
    in the file (see :func:`load_pt2`). For files that may come from someone
    else, prefer :func:`export_onnx`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    module = _as_module(policy_or_module)
    program = _export_program(module, None)
    extra = {PT2_METADATA_FILE: json.dumps(module.metadata())}
    return atomic_write(path, lambda f: torch.export.save(program, f, extra_files=extra))


def load_pt2(path: str | os.PathLike[str], *, trusted: bool = False) -> nn.Module:
    """Load a policy written by :func:`export_pt2` as a callable module.

    Returns ``torch.export.load(path).module()``: called like
    :class:`PolicyModule` (``module(obs)`` or ``module(obs, h_in, c_in)``),
    any batch size >= 1.

    **Not safe for untrusted files.** ``torch.export.load`` (torch 2.13) is not
    pickle-free: it unpickles the archive's sample inputs with
    ``torch.load(weights_only=True)`` and, when that fails, *retries with
    ``weights_only=False``* (full pickle, which runs any code in the file);
    it also fully unpickles payloads the archive marks ``use_pickle`` and
    "opaque" constants, and parses symbolic shape expressions with
    ``sympy.sympify`` (which evaluates Python). A tampered ``.pt2`` can
    therefore run code when loaded. rl8's rule is that nothing it loads may
    run code, so this function refuses unless ``trusted=True``: pass it only
    for files you wrote yourself or otherwise trust. Use ONNX
    (:func:`export_onnx`, run by onnxruntime) to ship policies.

    Args:
        path: A ``.pt2`` file written by :func:`export_pt2`.
        trusted: Must be ``True``: the caller vouches for the file.

    Raises:
        PermissionError: ``trusted`` is not ``True``.
    """
    if trusted is not True:
        raise PermissionError(
            f"load_pt2({str(path)!r}) refused: torch.export.load can run code stored in a "
            ".pt2 file (it falls back to full unpickling). Pass trusted=True only for files "
            "you wrote or trust; use the ONNX export for anything else."
        )
    with _quiet():
        module: nn.Module = torch.export.load(os.fspath(path)).module()
    return module


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The description stored by :func:`export_onnx` or :func:`export_pt2`.

    Reads an ONNX file's ``metadata_props`` (with ``onnx.load``, a protobuf
    parse, weights left on disk) or a ``.pt2`` archive's
    :data:`PT2_METADATA_FILE` (with :mod:`zipfile`); neither runs anything
    from the file. JSON-valued keys are decoded (shapes as lists, with
    ``"batch"`` for the batch dimension of ``state_shapes``).

    Raises:
        ValueError: the file holds no rl8 metadata.
    """
    raw: dict[str, str]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(f"/extra/{PT2_METADATA_FILE}")]
            if not names:
                raise ValueError(f"{str(path)!r} holds no rl8 metadata ({PT2_METADATA_FILE}).")
            raw = json.loads(z.read(names[0]).decode("utf-8"))
    else:
        onnx = _require_onnx(exporter=False)
        proto = onnx.load(os.fspath(path), load_external_data=False)
        raw = {p.key: p.value for p in proto.metadata_props}
    if raw.get("producer") != "rl8":
        raise ValueError(f"{str(path)!r} holds no rl8 metadata.")
    return {k: json.loads(v) if k in _JSON_KEYS else v for k, v in raw.items()}


# -- python -m rl8.export ----------------------------------------------------------------


@dataclass
class ExportConf:
    """The keys of ``python -m rl8.export`` (see :data:`CLI_DOC`)."""

    run: str = ""
    format: str = "onnx"
    output: str | None = None
    mlflow: bool = True
    tracking_uri: str | None = None
    trusted: bool = False


#: ``python -m rl8.export --help``.
CLI_DOC = """python -m rl8.export run=<job> [format=onnx|pt2] [output=PATH]: a trained
job's deterministic policy as a self-contained file (see docs/export.md).

    run=...            the job: its output dir, its checkpoint.pt or its MLflow run id
    format=onnx        onnx (runs in onnxruntime, no torch; pip install 'rl8[export]')
                       or pt2 (torch.export; load only files you trust)
    output=null        the file (default: <job dir>/policy.onnx or policy.pt2)
    mlflow=true        log it to the job's MLflow run (artifacts: export/)
    tracking_uri=null  the MLflow store of a run id (default: MLflow's)
    trusted=false      build callables the job's config names outside rl8's configs
                       (a custom env class; only for checkpoints you trust)

Inputs and outputs: obs -> action; an LSTM policy: obs, h_in, c_in -> action,
h_out, c_out (one step per call; h, c: [layers, batch, hidden])."""


def export_run(conf: ExportConf) -> Path:
    """Export the policy of the job ``conf.run`` (see :data:`CLI_DOC`).

    Raises:
        ConfigError: No such run, an unknown format, or a missing export extra.
    """
    from .errors import ConfigError
    from .runs import open_run

    if not conf.run:
        raise ConfigError("run is required: run=<job output dir | checkpoint.pt | MLflow run id>.")
    if conf.format not in ("onnx", "pt2"):
        raise ConfigError(f"format={conf.format!r} is not one of: onnx, pt2.")
    trained = open_run(conf.run, tracking_uri=conf.tracking_uri)
    trainer = trained.build_trainer(num_envs=1, device="cpu", trusted=conf.trusted)
    try:
        policy = trainer.algorithm.policy
    finally:
        trainer.close()
    default = trained.checkpoint_path.parent / f"policy.{conf.format}"
    path = Path(conf.output) if conf.output else default
    try:
        written = export_onnx(policy, path) if conf.format == "onnx" else export_pt2(policy, path)
    except ImportError as e:
        raise ConfigError(str(e)) from None
    meta = read_metadata(written)
    print(
        f"{written}: {' '.join(meta['input_names'])} -> {' '.join(meta['output_names'])}; "
        f"obs {meta['observation_shape']}, action {meta['action_kind']} {meta['action_shape']}"
    )
    if conf.mlflow and trained.mlflow_run_id:
        from mlflow.tracking import MlflowClient

        uri = conf.tracking_uri or trained.cfg.mlflow.tracking_uri
        MlflowClient(tracking_uri=uri).log_artifact(trained.mlflow_run_id, str(written), "export")
        log.info(
            "logged to MLflow run %s (artifacts: export/%s)", trained.mlflow_run_id, written.name
        )
    return written


def main() -> int:
    """The command line; returns the exit status (0, or 1 with a one-line error)."""
    from .cli import run_command

    return run_command(CLI_DOC, ExportConf, "python -m rl8.export", export_run)


def _cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _cli()
