"""Policies a user brings: each format loads, reads its output as actions, probabilities or scores, and a bad
policy is refused with the file and the first offending observation named."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from guardrl.evaluate.policy_files import PolicyFileError, load_policy

OBS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)


class Right(torch.nn.Module):
    """Scores that prefer action 1 everywhere, and action 2 where y = 1."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros(obs.shape[0], 4)
        scores[:, 1] = 2.0
        scores[:, 2] = 3.0 * obs[:, 1]
        return scores


def write_table(path, actions=None, probs=None, obs=OBS):
    cols = {"obs_0": obs[:, 0], "obs_1": obs[:, 1]}
    if actions is not None:
        cols["action"] = actions
    if probs is not None:
        cols.update({f"prob_{k}": probs[:, k] for k in range(probs.shape[1])})
    frame = pd.DataFrame(cols)
    frame.to_parquet(path) if path.suffix == ".parquet" else frame.to_csv(path, index=False)
    return path


def test_torchscript_and_onnx_scores_are_taken_greedily(tmp_path):
    module = torch.jit.script(Right())
    module.save(str(tmp_path / "right.pt"))
    torch.onnx.export(module, (torch.zeros(1, 2),), str(tmp_path / "right.onnx"), dynamo=False, opset_version=17,
                      input_names=["observation"], output_names=["scores"],
                      dynamic_axes={"observation": {0: "batch"}, "scores": {0: "batch"}})  # fmt: skip
    for name in ("right.pt", "right.onnx"):
        policy = load_policy(str(tmp_path / name), 2)
        policy.check(OBS, 4)
        assert policy.output == "scores" and not policy.stochastic and policy.probs_fn is None
        np.testing.assert_array_equal(policy.greedy(OBS), [1, 1, 2, 2])
        np.testing.assert_array_equal(policy.probs(OBS)[2], [0, 0, 1, 0])


def test_tables_give_actions_or_probabilities(tmp_path):
    actions = load_policy(str(write_table(tmp_path / "a.csv", actions=[0, 1, 2, 3])), 2)
    actions.check(OBS, 4)
    assert actions.output == "actions"
    np.testing.assert_array_equal(actions.greedy(OBS[::-1]), [3, 2, 1, 0])
    probs = np.array([[0.7, 0.1, 0.1, 0.1]] * 4)
    stochastic = load_policy(str(write_table(tmp_path / "p.parquet", probs=probs)), 2)
    stochastic.check(OBS, 4)
    assert stochastic.stochastic and stochastic.probs_fn is not None
    np.testing.assert_allclose(stochastic.probs(OBS), probs)
    draws = stochastic(np.repeat(OBS, 500, axis=0), np.zeros(2000, np.int64), np.random.default_rng(0))
    assert abs((draws == 0).mean() - 0.7) < 0.05
    # off the logs (checked strictly first), a table answers with the nearest listed observation's row
    np.testing.assert_array_equal(actions.greedy(np.array([[0.9, 0.1]], np.float32)), [1])


def test_a_callable_needs_allow_code(tmp_path, monkeypatch):
    (tmp_path / "mypolicy.py").write_text("import numpy as np\ndef act(obs):\n    return np.zeros(len(obs), int)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PolicyFileError, match="--allow-code"):
        load_policy("mypolicy:act", 2)
    policy = load_policy("mypolicy:act", 2, allow_code=True)
    policy.check(OBS, 4)
    assert policy.kind == "code" and policy.greedy(OBS).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("suffix", [".d3", ".pkl", ".pth"])
def test_pickles_are_refused_with_what_to_export_instead(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(PolicyFileError, match="never loads one. Export the policy instead: ONNX"):
        load_policy(str(path), 2)


def test_a_torch_save_pickle_named_pt_is_refused(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pt")
    with pytest.raises(PolicyFileError, match="not a TorchScript archive"):
        load_policy(str(tmp_path / "weights.pt"), 2)


@pytest.mark.parametrize(
    "table, message",
    [
        ({"actions": [0, 1, 2, 4]}, "returned action 4.0, not an integer in [0, 4) on observation 3 [1.0, 1.0]"),
        ({"actions": [0, 1, 0.5, 1]}, "not an integer in [0, 4) on observation 2"),
        ({"probs": np.array([[0.5, 0.5, 0, 0]] * 3 + [[0.5, 0.5, 0.001, 0]])}, "summing to 1.001000000, not 1"),
        ({"probs": np.array([[0.5, 0.5, np.nan, 0]] + [[0.5, 0.5, 0, 0]] * 3)}, "NaN or infinity on observation 0"),
        ({"probs": np.array([[0.5, 0.5, 0]] * 4)}, "returned 3 columns; the logs have 4 actions"),
        ({"probs": np.array([[2.0, 0, 0, 0]] * 4)}, "not probabilities on observation 0"),
        ({"actions": [0, 1], "obs": OBS[:2]}, "2 logged observation(s) are not in the table, e.g. [[0.0, 1.0]"),
    ],
)
def test_bad_outputs_name_the_file_and_the_first_offending_observation(tmp_path, table, message):
    path = write_table(tmp_path / "bad.csv", actions=table.get("actions"), probs=table.get("probs"),
                       obs=table.get("obs", OBS))  # fmt: skip
    with pytest.raises(PolicyFileError, match=re.escape(message)) as err:
        load_policy(str(path), 2).check(OBS, 4)
    assert str(err.value).startswith(str(path))


def test_bad_files_and_shapes(tmp_path):
    with pytest.raises(PolicyFileError, match="no such file"):
        load_policy(str(tmp_path / "missing.onnx"), 2)
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(PolicyFileError, match="unknown policy format .txt"):
        load_policy(str(tmp_path / "p.txt"), 2)
    pd.DataFrame({"obs_0": [0.0], "action": [1]}).to_csv(tmp_path / "narrow.csv", index=False)
    with pytest.raises(PolicyFileError, match=r"missing observation column\(s\) \['obs_1'\]"):
        load_policy(str(tmp_path / "narrow.csv"), 2)

    class Wide(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.zeros(obs.shape[0], 2, 2)

    torch.jit.script(Wide()).save(str(tmp_path / "wide.pt"))
    with pytest.raises(PolicyFileError, match=r"returned shape \(4, 2, 2\) for 4 observations"):
        load_policy(str(tmp_path / "wide.pt"), 2).check(OBS, 4)
