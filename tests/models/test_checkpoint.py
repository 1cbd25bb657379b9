"""Checkpoints: config + weights in one file, bit-identical round trip, no code execution, clear mismatches."""
from __future__ import annotations

import pickle

import pytest
import torch

from nirvision.models import CheckpointError, NIRColorizerNet, load_networks, read_checkpoint, save_checkpoint
from nirvision.models.registry import INFERENCE_ROLES


def trained_looking(net):
    """Move every parameter and buffer off its initial value, so a load that did nothing shows."""
    with torch.no_grad():
        for t in list(net.parameters()) + [b for b in net.buffers() if b.is_floating_point()]:
            t.add_(torch.randn_like(t) * 0.01)
    return net


@pytest.fixture()
def saved(lite, tmp_path):
    torch.manual_seed(3)
    nets = {role: trained_looking(lite.build(role)) for role in INFERENCE_ROLES}
    path = save_checkpoint(tmp_path / "ckpt" / "lite.pt", lite, nets, meta={"epoch": 7, "stage": "finetune"})
    return path, nets


def test_round_trip_is_bit_identical(lite, saved):
    path, nets = saved
    chain = NIRColorizerNet(nets["nir_to_gray"], nets["colorizer"]).eval()
    config, loaded, meta = load_networks(path)
    again = NIRColorizerNet(loaded["nir_to_gray"], loaded["colorizer"]).eval()
    assert config.to_dict() == lite.to_dict()
    assert meta == {"epoch": 7, "stage": "finetune"}
    for role in INFERENCE_ROLES:
        ref, got = nets[role].state_dict(), loaded[role].state_dict()
        assert ref.keys() == got.keys()
        assert all(torch.equal(ref[k], got[k]) for k in ref)
    x = torch.rand(1, 1, 100, 130) * 2 - 1
    with torch.no_grad():
        assert torch.equal(chain(x), again(x))
    fresh = NIRColorizerNet(lite.build("nir_to_gray"), lite.build("colorizer")).eval()
    with torch.no_grad():
        assert not torch.equal(fresh(x), again(x))


def test_training_roles_round_trip(lite, tmp_path):
    nets = {role: lite.build(role) for role in lite.networks}
    path = save_checkpoint(tmp_path / "all.pt", lite, nets)
    _, loaded, _ = load_networks(path, roles=tuple(lite.networks))
    assert set(loaded) == set(lite.networks)
    for role, net in nets.items():
        sd = loaded[role].state_dict()
        assert all(torch.equal(v, sd[k]) for k, v in net.state_dict().items())


def test_file_is_plain_data(saved):
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "nirvision-checkpoint"
    assert payload["model_config"]["name"] == "lite"
    assert set(payload["networks"]) == set(INFERENCE_ROLES)


class _RunsCode:
    """Unpickling this calls exec(): what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('executed')",))


def test_code_in_a_checkpoint_is_not_executed(lite, saved, tmp_path):
    path, nets = saved
    payload = torch.load(path, weights_only=True)
    marker = tmp_path / "executed.txt"
    payload["meta"] = {"note": _RunsCode(marker)}
    hostile = tmp_path / "hostile.pt"
    torch.save(payload, hostile)

    with pytest.raises(CheckpointError, match=r"refused: the file asks to run code \(builtins\.exec\); nirvision loads weights only"):
        read_checkpoint(hostile)
    with pytest.raises(CheckpointError):
        load_networks(hostile)
    assert not marker.exists()

    # The payload is real: an unrestricted unpickler does run it.
    control = tmp_path / "control.txt"
    with open(tmp_path / "control.pkl", "wb") as f:
        pickle.dump(_RunsCode(control), f)
    with open(tmp_path / "control.pkl", "rb") as f:
        pickle.load(f)  # noqa: S301 - deliberately, to prove the payload works
    assert control.read_text() == "executed"


def test_lite_checkpoint_with_paper_config_names_both_models_not_tensors(saved, paper):
    path, _ = saved
    with pytest.raises(CheckpointError) as err:
        load_networks(path, config=paper)
    msg = str(err.value)
    assert msg.startswith(f"checkpoint {path} does not fit the model: it holds model 'lite' (nir_to_gray: width 4, depth 1, ")
    assert "the config asks for 'paper' (nir_to_gray: width 32, depth 4, " in msg
    assert "shape differs" not in msg and "febs." not in msg  # the cause, not hundreds of tensor names


def test_a_config_of_the_same_sizes_loads_whatever_its_name(saved, lite):
    import dataclasses

    path, nets = saved
    renamed = dataclasses.replace(lite, name="my-lite")
    config, loaded, _ = load_networks(path, config=renamed)
    assert config.name == "my-lite"
    assert torch.equal(loaded["colorizer"].state_dict()["febs.1.bottleneck.weight"], nets["colorizer"].state_dict()["febs.1.bottleneck.weight"])


def tamper(path, out, edit):
    payload = torch.load(path, weights_only=True)
    edit(payload["networks"]["colorizer"])
    torch.save(payload, out)
    return out


def test_missing_tensor_is_named(saved, tmp_path):
    path, _ = saved
    bad = tamper(path, tmp_path / "bad.pt", lambda sd: sd.pop("febs.1.bottleneck.weight"))
    with pytest.raises(CheckpointError, match=r"'colorizer'.*missing from checkpoint: febs\.1\.bottleneck\.weight"):
        load_networks(bad)


def test_extra_tensor_is_named(saved, tmp_path):
    path, _ = saved
    bad = tamper(path, tmp_path / "bad.pt", lambda sd: sd.__setitem__("febs.9.extra", torch.zeros(2)))
    with pytest.raises(CheckpointError, match=r"not in model: febs\.9\.extra"):
        load_networks(bad)


def test_reshaped_tensor_is_named(saved, tmp_path):
    path, _ = saved

    def reshape(sd):
        sd["sccms.0.to_image.weight"] = sd["sccms.0.to_image.weight"].flatten()

    bad = tamper(path, tmp_path / "bad.pt", reshape)
    with pytest.raises(CheckpointError) as err:
        load_networks(bad)
    msg = str(err.value)
    assert "shape differs: sccms.0.to_image.weight: checkpoint (6912,) vs model (48, 16, 3, 3)" in msg
    assert "missing from checkpoint" not in msg and "not in model" not in msg


def test_unreadable_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        read_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"junk.pt: cannot be read \(170 bytes; truncated, damaged or not a checkpoint"):
        read_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="not a nirvision checkpoint"):
        read_checkpoint(other)


def test_missing_role_is_reported(lite, tmp_path):
    path = save_checkpoint(tmp_path / "one.pt", lite, {"colorizer": lite.build("colorizer")})
    with pytest.raises(CheckpointError, match="holds no weights for 'nir_to_gray'"):
        load_networks(path)


def test_truncated_checkpoint_says_so(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])  # a copy that stopped half way
    with pytest.raises(CheckpointError, match=rf"cut.pt: cannot be read \({len(data) // 2} bytes; truncated"):
        load_networks(cut)


def test_a_bare_pickle_that_runs_a_command_is_refused_naming_it_without_torch_warnings(tmp_path, recwarn):
    # protocol 4, as pickle.dumps writes it: torch's weights-only unpickler stops at its FRAME
    # opcode before it sees the global, and warns about the protocol; neither is the user's concern
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "PWNED"
    evil.write_bytes(b"\x80\x04\x95" + (0).to_bytes(8, "little") + b"\x8c\x05posix\x94\x8c\x06system\x94\x93\x94"
                     + b"\x8c" + bytes([len(f"touch {marker}")]) + f"touch {marker}".encode() + b"\x94\x85\x94R\x94.")
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(evil)
    assert str(err.value).startswith(f"checkpoint {evil}: refused: the file asks to run code (posix.system); nirvision loads weights only")
    assert not marker.exists()
    assert not [w for w in recwarn.list if "pickle protocol" in str(w.message)]


def test_a_training_state_given_as_weights_says_what_it_is_and_what_to_use(lite, tmp_path):
    state = tmp_path / "runs" / "t" / "translate" / "last.pt"
    state.parent.mkdir(parents=True)
    torch.save({"format": "nirvision-train-state", "stage": "translate", "epoch": 3, "networks": {}}, state)
    with pytest.raises(CheckpointError) as err:
        load_networks(state)
    msg = str(err.value)
    assert "a training state (the last.pt of stage translate, after epoch 3), not inference weights" in msg
    assert str(tmp_path / "runs" / "t" / "finetune" / "output.pt") in msg and "python -m train --export" in msg


@pytest.mark.parametrize("stage, warned", [("translate", "colorizer"), ("pretrain", "nir_to_gray"), ("finetune", None), (None, None)])
def test_stage_outputs_that_are_not_a_trained_chain_load_with_a_warning(lite, tmp_path, caplog, stage, warned):
    nets = {role: lite.build(role) for role in INFERENCE_ROLES}
    path = save_checkpoint(tmp_path / "output.pt", lite, nets, meta={"stage": stage} if stage else {})
    caplog.set_level("WARNING", logger="nirvision.models.checkpoint")
    load_networks(path)
    if warned:
        assert f"checkpoint {path} is the output of training stage {stage}, which does not train its {warned}" in caplog.text
        assert "expected the finetune stage's output.pt" in caplog.text
        caplog.clear()
        trained = {"translate": "nir_to_gray", "pretrain": "colorizer"}[stage]
        load_networks(path, roles=(trained,))  # the network the stage did train: nothing to say
    assert "is the output of training stage" not in caplog.text
