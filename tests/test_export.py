"""Policy export (rl8.export): the deterministic policy as a module, ONNX and .pt2.

Each case trains a small policy for one step (so the weights are not the
initial ones), exports it once per module (exports take about a second) and
compares ONNX Runtime, torch.export's module, :class:`PolicyModule` and
``policy.sample(deterministic=True)`` on random observations.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import rl8
from rl8.export import (
    BATCH_DIM,
    PolicyModule,
    export_onnx,
    export_pt2,
    load_pt2,
    read_metadata,
)
from rl8.policies import Policy, RecurrentPolicy
from rl8.specs import BoundedSpec, DiscreteSpec, UnboundedSpec

STEPS = 5  # recurrent steps compared, carrying the state
BATCHES = (1, 7)  # both differ from the export's example batch (2)
TOL = 1e-5


def _trainer(name: str) -> Any:
    small = {"num_envs": 8, "horizon": 8, "tracker": None}
    if name == "mlp-discrete":
        return rl8.Trainer(rl8.envs.CartPole, **small)
    if name == "mlp-continuous":
        return rl8.Trainer(rl8.envs.Pendulum, **small)
    if name == "lstm-discrete":
        return rl8.RecurrentTrainer(rl8.envs.Memory, seq_len=4, **small)
    # Two stacked layers: the state is [2, B, H].
    return rl8.RecurrentTrainer(
        rl8.envs.Pendulum, seq_len=4, model_config={"num_layers": 2}, **small
    )


CASES = ("mlp-discrete", "mlp-continuous", "lstm-discrete", "lstm-continuous")


@dataclass
class Case:
    name: str
    policy: Policy
    module: PolicyModule
    dir: Path

    @property
    def discrete(self) -> bool:
        return self.name.endswith("-discrete")

    @property
    def recurrent(self) -> bool:
        return self.name.startswith("lstm")

    def _file(self, suffix: str, export: Any) -> Path:
        path = self.dir / f"policy{suffix}"
        if not path.exists():
            export(self.policy, path)
        return path

    @property
    def onnx(self) -> Path:
        pytest.importorskip("onnxscript")
        return self._file(".onnx", export_onnx)

    @property
    def pt2(self) -> Path:
        return self._file(".pt2", export_pt2)


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A trained policy, its module, and its exports (made on first use, then reused)."""
    torch.manual_seed(0)
    trainer = _trainer(request.param)
    trainer.step()
    policy = trainer.algorithm.policy
    return Case(request.param, policy, PolicyModule(policy), tmp_path_factory.mktemp(request.param))


def _obs(case: Case, batch: int, steps: int) -> torch.Tensor:
    """``[steps, batch, *obs_shape]`` float32 observations, 2 std wide."""
    g = torch.Generator().manual_seed(batch)
    return 2 * torch.randn(steps, batch, *case.module.observation_shape, generator=g)


def _close(a: torch.Tensor, b: torch.Tensor, discrete: bool) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    if discrete:
        assert torch.equal(a, b)
    else:
        assert float((a - b).abs().max()) <= TOL


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


# -- PolicyModule --------------------------------------------------------------


@pytest.mark.parametrize("batch", BATCHES)
def test_module_is_policy_sample_deterministic(case: Case, batch: int) -> None:
    """Bit for bit what policy.sample(deterministic=True) returns, state included."""
    module, policy = case.module, case.policy
    obs = _obs(case, batch, STEPS if case.recurrent else 1)
    if not case.recurrent:
        action, _ = policy.sample(obs[0], deterministic=True)
        assert torch.equal(module(obs[0]), action)
        assert action.dtype == (torch.int64 if case.discrete else torch.float32)
        assert action.shape == (batch, *policy.action_spec.shape)
        return
    state = policy.model.init_state(batch, "cpu")
    h, c = module.initial_state(batch)
    assert torch.equal(h, state[0]) and torch.equal(c, state[1])
    for t in range(STEPS):
        action, _, _, state = policy.sample(obs[t], state, deterministic=True)
        a, h, c = module(obs[t], h, c)
        assert torch.equal(a, action)
        assert torch.equal(h, state[0]) and torch.equal(c, state[1])
    assert not torch.equal(h, torch.zeros_like(h))


def test_module_description(case: Case) -> None:
    m = case.module
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert m.recurrent is case.recurrent
    if case.recurrent:
        layers = 2 if case.name == "lstm-continuous" else 1
        assert m.input_names == ("obs", "h_in", "c_in")
        assert m.output_names == ("action", "h_out", "c_out")
        assert m.state_shapes == ((layers, -1, 64), (layers, -1, 64))
        assert [s.shape for s in m.initial_state(3)] == [(layers, 3, 64)] * 2
    else:
        assert (m.input_names, m.output_names, m.state_shapes) == (("obs",), ("action",), ())
        assert m.initial_state(3) == ()
    if case.discrete:
        assert (m.action_kind, m.action_dtype, m.action_n, m.action_bounds) == (
            "discrete",
            torch.int64,
            2,
            None,
        )
    else:
        assert (m.action_kind, m.action_dtype, m.action_bounds) == (
            "continuous",
            torch.float32,
            (-2.0, 2.0),
        )


def test_module_copies_the_weights() -> None:
    policy = Policy(UnboundedSpec(3), DiscreteSpec(4))
    module = PolicyModule.from_policy(policy)
    obs = torch.randn(16, 3)
    before = module(obs)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(1.0)
    assert torch.equal(module(obs), before)
    assert all(
        a.data_ptr() != b.data_ptr()
        for a, b in zip(module.model.parameters(), policy.model.parameters())
    )
    assert policy.model.training  # the policy itself is left as it was


@pytest.mark.parametrize(
    "action_spec",
    [DiscreteSpec(3, shape=(2,)), BoundedSpec(2, low=-0.5, high=3.0), UnboundedSpec(2)],
    ids=["multi-discrete", "bounded", "unbounded"],
)
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "lstm"])
def test_module_other_specs_and_pt2(action_spec: Any, recurrent: bool, tmp_path: Path) -> None:
    """Multi-dim discrete, bounded and unbounded actions of 2-D observations:
    same as policy.sample, and the .pt2 round trip gives the same actions."""
    torch.manual_seed(1)
    if recurrent:
        policy: Policy = RecurrentPolicy(
            UnboundedSpec(2, 3), action_spec, model_config={"hidden_size": 8}
        )
    else:
        policy = Policy(UnboundedSpec(2, 3), action_spec, model_config={"hiddens": (8,)})
    module = PolicyModule(policy)
    obs = 3 * torch.randn(5, 2, 3)
    state = module.initial_state(5)
    if recurrent:
        ref = policy.sample(obs, state, deterministic=True)
    else:
        ref = policy.sample(obs, deterministic=True)
    out = _as_tuple(module(obs, *state))
    assert torch.equal(out[0], ref[0])
    assert out[0].shape == (5, *action_spec.shape)
    if isinstance(action_spec, BoundedSpec):
        assert bool(((out[0] >= -0.5) & (out[0] <= 3.0)).all())
    meta = module.metadata()
    assert json.loads(meta["action_low"]) == (
        -0.5 if isinstance(action_spec, BoundedSpec) else None
    )
    loaded = load_pt2(export_pt2(module, tmp_path / "p.pt2"), trusted=True)
    assert torch.equal(_as_tuple(loaded(obs, *state))[0], out[0])


# -- ONNX ----------------------------------------------------------------------


def _session(path: Path) -> Any:
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", BATCHES)
def test_onnx_matches_torch(case: Case, batch: int) -> None:
    """ONNX Runtime vs PolicyModule (and so vs policy.sample), dynamic batch,
    recurrent cases over STEPS steps, each carrying its own state."""
    session = _session(case.onnx)
    assert [i.name for i in session.get_inputs()] == list(case.module.input_names)
    assert [o.name for o in session.get_outputs()] == list(case.module.output_names)
    obs = _obs(case, batch, STEPS if case.recurrent else 1)
    state = case.module.initial_state(batch)
    ort_state = [s.numpy() for s in state]
    for t in range(obs.shape[0]):
        ref = _as_tuple(case.module(obs[t], *state))
        feeds = dict(zip(case.module.input_names, [obs[t].numpy(), *ort_state]))
        out = [torch.from_numpy(o) for o in session.run(None, feeds)]
        _close(out[0], ref[0], case.discrete)
        for a, b in zip(out[1:], ref[1:]):
            _close(a, b, discrete=False)
        state, ort_state = ref[1:], [o.numpy() for o in out[1:]]


def test_onnx_graph_and_metadata(case: Case) -> None:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(case.onnx))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 18
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*model.graph.input, *model.graph.output)
    }
    obs_shape = list(case.module.observation_shape)
    assert dims["obs"] == [BATCH_DIM, *obs_shape]
    assert dims["action"] == [BATCH_DIM, 1]
    if case.recurrent:
        layers = 2 if case.name == "lstm-continuous" else 1
        for name in ("h_in", "c_in", "h_out", "c_out"):
            assert dims[name] == [layers, BATCH_DIM, 64]

    props = {p.key: p.value for p in model.metadata_props}
    assert props["rl8_version"] == rl8.__version__
    assert props["action_kind"] == ("discrete" if case.discrete else "continuous")
    meta = read_metadata(case.onnx)
    assert meta == read_metadata(case.pt2)
    assert meta["format"] == 1 and meta["producer"] == "rl8"
    assert meta["recurrent"] is case.recurrent
    assert meta["observation_shape"] == obs_shape and meta["observation_dtype"] == "float32"
    assert meta["observation_normalization"] == "none"
    assert meta["input_names"] == list(case.module.input_names)
    assert meta["output_names"] == list(case.module.output_names)
    assert meta["action_shape"] == [1]
    if case.discrete:
        assert (meta["action_dtype"], meta["action_n"], meta["action_low"]) == ("int64", 2, None)
    else:
        assert (meta["action_dtype"], meta["action_low"], meta["action_high"]) == (
            "float32",
            -2.0,
            2.0,
        )
        assert meta["action_squashed"] is True
    if case.recurrent:
        shape = [2 if case.name == "lstm-continuous" else 1, BATCH_DIM, 64]
        assert meta["state_shapes"] == {"h_in": shape, "c_in": shape}
    else:
        assert meta["state_shapes"] == {}


_STANDALONE = textwrap.dedent(
    """
    import json, sys

    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    obs = np.load(sys.argv[2])  # [steps, batch, *obs_shape]
    state = {
        i.name: np.zeros([obs.shape[1] if d == "batch" else d for d in i.shape], np.float32)
        for i in session.get_inputs()[1:]
    }
    actions = []
    for o in obs:
        out = session.run(None, {"obs": o, **state})
        actions.append(out[0].tolist())
        state = dict(zip(names[1:], out[1:]))
    meta = session.get_modelmeta().custom_metadata_map
    leaked = sorted(m for m in ("rl8", "torch") if m in sys.modules)
    print(json.dumps({"actions": actions, "leaked": leaked, "meta": meta}))
    """
)


def test_onnx_runs_without_rl8_or_torch(case: Case, tmp_path: Path) -> None:
    """The file runs in a fresh interpreter with only numpy and onnxruntime."""
    path = case.onnx
    pytest.importorskip("onnxruntime")
    obs = _obs(case, 3, STEPS if case.recurrent else 1)
    np.save(tmp_path / "obs.npy", obs.numpy())
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _STANDALONE, str(path), str(tmp_path / "obs.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["leaked"] == []
    assert result["meta"]["action_kind"] == ("discrete" if case.discrete else "continuous")
    assert json.loads(result["meta"]["input_names"]) == list(case.module.input_names)
    state = case.module.initial_state(3)
    for t, got in enumerate(result["actions"]):
        out = _as_tuple(case.module(obs[t], *state))
        state = out[1:]
        expected = out[0]
        _close(torch.tensor(got, dtype=expected.dtype), expected, case.discrete)


def test_exports_leave_the_global_rng_alone(tmp_path: Path) -> None:
    """Exporting mid-training must not change the run's random stream."""
    pytest.importorskip("onnxscript")
    policy = RecurrentPolicy(
        UnboundedSpec(3), BoundedSpec(1, low=-1, high=1), model_config={"hidden_size": 8}
    )
    rng = torch.get_rng_state()
    export_pt2(policy, tmp_path / "p.pt2")
    export_onnx(PolicyModule(policy), tmp_path / "p.onnx")
    assert torch.equal(torch.get_rng_state(), rng)


def test_onnx_fixed_batch_and_atomic_write(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    policy = Policy(UnboundedSpec(4), DiscreteSpec(2), model_config={"hiddens": (8,)})
    path = tmp_path / "sub" / "fixed.onnx"
    path.parent.mkdir()
    path.write_bytes(b"old")
    assert export_onnx(policy, path, batch=3) == path
    model = onnx.load(str(path))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 4]
    assert sorted(p.name for p in path.parent.iterdir()) == ["fixed.onnx"]  # no temp file left
    with pytest.raises(ValueError, match="batch"):
        export_onnx(policy, path, batch=0)


def test_onnx_missing_dependency_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript -> ImportError
    policy = Policy(UnboundedSpec(4), DiscreteSpec(2))
    with pytest.raises(ImportError, match=r"pip install 'rl8\[export\]'"):
        export_onnx(policy, tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()


# -- .pt2 ----------------------------------------------------------------------


@pytest.mark.parametrize("batch", BATCHES)
def test_pt2_round_trip(case: Case, batch: int) -> None:
    loaded = load_pt2(case.pt2, trusted=True)
    obs = _obs(case, batch, STEPS if case.recurrent else 1)
    state = case.module.initial_state(batch)
    loaded_state = state
    for t in range(obs.shape[0]):
        ref = _as_tuple(case.module(obs[t], *state))
        out = _as_tuple(loaded(obs[t], *loaded_state))
        assert len(out) == len(ref)
        assert all(torch.equal(a, b) for a, b in zip(out, ref))
        state, loaded_state = ref[1:], out[1:]


def test_load_pt2_needs_trust(case: Case) -> None:
    with pytest.raises(PermissionError, match="trusted=True"):
        load_pt2(case.pt2)


def test_export_rejects_other_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"algorithm\.policy"):
        export_pt2(object(), tmp_path / "p.pt2")  # type: ignore[arg-type]
    with zipfile.ZipFile(tmp_path / "other.pt2", "w") as z:
        z.writestr("other/extra/other.json", "{}")
    with pytest.raises(ValueError, match="no rl8 metadata"):
        read_metadata(tmp_path / "other.pt2")


@pytest.mark.parametrize(
    ("trainer_cls", "env"),
    [
        (rl8.Trainer, rl8.envs.CartPole),
        (rl8.Trainer, rl8.envs.Pendulum),
        (rl8.RecurrentTrainer, rl8.envs.Pendulum),
    ],
)
def test_policy_save_and_load_without_pickle(tmp_path, trainer_cls, env) -> None:
    small = {"hidden_size": 16} if trainer_cls is rl8.RecurrentTrainer else {"hiddens": [16]}
    trainer = trainer_cls(env, num_envs=4, horizon=8, model_config=small, tracker=None)
    trainer.step()
    policy = trainer.algorithm.policy
    path = policy.save(tmp_path / "policy.pt")
    # Plain types only: it loads with weights_only=True.
    assert torch.load(path, weights_only=True)["format"] == "rl8.policy"
    loaded = type(policy).load(path)
    assert loaded.model_config == small
    obs = torch.randn(5, *policy.observation_spec.shape)
    if isinstance(policy, rl8.policies.RecurrentPolicy):
        state = policy.model.init_state(5, torch.device("cpu"))
        assert torch.equal(
            policy.sample(obs, state, deterministic=True)[0],
            loaded.sample(obs, state, deterministic=True)[0],
        )
    else:
        assert torch.equal(
            policy.sample(obs, deterministic=True)[0], loaded.sample(obs, deterministic=True)[0]
        )
    module = rl8.load_policy(path)  # the same file through load_policy
    assert isinstance(module, PolicyModule)


def test_a_policy_file_naming_a_foreign_class_needs_trust(tmp_path) -> None:
    trainer = rl8.Trainer(rl8.envs.CartPole, num_envs=4, horizon=8, tracker=None)
    path = trainer.algorithm.policy.save(tmp_path / "policy.pt")
    data = torch.load(path, weights_only=True)
    data["model_cls"] = "os.system"
    torch.save(data, path)
    with pytest.raises(PermissionError, match=r"os\.system"):
        rl8.policies.Policy.load(path)


def test_a_policy_file_naming_a_non_class_in_rl8_is_refused(tmp_path) -> None:
    trainer = rl8.Trainer(rl8.envs.CartPole, num_envs=4, horizon=8, tracker=None)
    path = trainer.algorithm.policy.save(tmp_path / "policy.pt")
    data = torch.load(path, weights_only=True)
    data["model_cls"] = "rl8.models.base.torch"  # a module reachable from rl8's, not a model
    torch.save(data, path)
    with pytest.raises(ValueError, match="is not a Module class"):
        rl8.policies.Policy.load(path)
