from pathlib import Path

import pytest

from guardrl.config import ConfigError, EnvConfig, RunConfig, load_config, save_config, to_dict


def test_defaults_round_trip_through_yaml(tmp_path):
    save_config(RunConfig(), tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == RunConfig()
    assert load_config(None) == RunConfig()


def test_partial_yaml_keeps_other_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("collect:\n  regime: noisy\ntrain:\n  cql:\n    alpha: 4\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.collect.regime == "noisy" and cfg.train.cql.alpha == 4.0
    assert cfg.train.bc == RunConfig().train.bc


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  cql:\n    conservative_weight: 6.0\n", "train.cql.conservative_weight: unknown option"),
        ("collect:\n  n_episodes: many\n", "collect.n_episodes: expected an integer"),
        ("evaluate:\n  seeds: 3\n", "evaluate.seeds: expected a list"),
        ("collect:\n  seed: 10001\n", "held-out"),
        ("env:\n  overrides:\n    lava: 1\n", "unknown layout field"),
        ("- 1\n- 2\n", "top level must be a mapping"),
        ("a: [1\n", "not valid YAML"),
        ("train:\n  learners: [cq]\n", "train.learners: unknown ['cq']; choose from ['bc', 'cql'"),
        ("train:\n  learners: [bc, bc]\n", "listed twice"),
        ("collect:\n  regime: nope\n", "collect.regime: 'nope' is not one of safe, noisy, mixed, expert"),
        ("train:\n  cql:\n    td_loss: l1\n", "train.cql.td_loss: 'l1' is not one of mse, huber"),
        ("train:\n  bc:\n    lr_schedule: step\n", "train.bc.lr_schedule: 'step' is not one of constant, cosine"),
        ("train:\n  encoder: cnn\n", "train.encoder: 'cnn' is not one of auto, grid, index, mlp"),
        ("ope:\n  estimators: [fqe, magic]\n", "ope.estimators[1]: 'magic' is not one of pdis, wis, fqe, dr"),
        ("env:\n  layout: maze\n", "env.layout: 'maze' is not one of default, drawn, corridor"),
        ("env:\n  layout: corridor\n  layout_seed: 3\n", "draws no hazards"),
        ("evaluate:\n  seeds: []\n", "at least one held-out seed"),
        ("collect:\n  regime: medium\n", "collect.regime: 'medium' is a MuJoCo level (env.mujoco)"),
        ("env:\n  mujoco: hopper\ncollect:\n  regime: noisy\n", "a MuJoCo run logs one of ['random', 'medium'"),
        ("env:\n  mujoco: ant\n", "env.mujoco: 'ant' is not one of hopper, halfcheetah, walker2d"),
        ("env:\n  mujoco: hopper\n  gym_id: Hopper-v5\n", "env.gym_id: a run with env.mujoco has no gym_id"),
        ("env:\n  mujoco: hopper\n  safenav: true\n", "env: safenav and env.mujoco exclude each other"),
        ("env: sepsis\n", "a sepsis run logs one of ['physician', 'physician-hidden'], not 'safe'"),
        ("env: sepsis\ncollect:\n  regime: physician\n  dataset: logs\n", "a sepsis run logs its own patients"),
        ("collect:\n  regime: physician\n", "logs Sepsis-v0's physicians (env: sepsis)"),
        (
            "env:\n  gym_id: FrozenLake-v1\n  cost_rule: terminated_without_success\n"
            "  success_rule: terminated_without_cost\ncollect:\n  behaviour: a:b\n",
            "define each event by the other",
        ),
    ],
)
def test_bad_configs_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="bad.yaml") as err:
        load_config(path).env.build()
    assert message in str(err.value)


def test_env_overrides_build_a_layout():
    cfg = RunConfig(env=EnvConfig(layout="corridor", overrides={"slip": 0.0, "max_steps": 100}))
    lay = cfg.env.build()
    assert lay.slip == 0.0 and lay.max_steps == 100 and len(lay.hazards) == 22
    assert to_dict(cfg)["env"]["overrides"] == {"slip": 0.0, "max_steps": 100}


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_the_whole_config_is_checked_before_anything_runs(tmp_path):
    # a bad value anywhere fails at load time, not halfway through a run
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learners: [bc, cq]\n")
    with pytest.raises(ConfigError, match="train.learners"):
        load_config(path)


def test_import_guardrl_registers_safegrid_without_loading_gymnasium():
    import subprocess
    import sys

    code = (
        "import sys, guardrl; assert 'gymnasium' not in sys.modules; import gymnasium as gym; "
        "env = gym.make('SafeGrid-v0'); print(env.spec.max_episode_steps, env.unwrapped.layout.hazards[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["80", "(2,", "9)"]


def test_a_mujoco_run_config_round_trips_and_takes_the_continuous_defaults(tmp_path):
    (tmp_path / "h.yaml").write_text("env: {mujoco: hopper}\ncollect: {regime: medium-replay, n_steps: 5000}\n")
    cfg = load_config(tmp_path / "h.yaml")
    assert cfg.env.continuous and cfg.env.mujoco == "hopper" and cfg.collect.n_steps == 5000
    assert "bc" in cfg.train.chosen and set(cfg.ope.chosen) <= {"pdis", "wis", "fqe"}
    save_config(cfg, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == cfg


def test_every_shipped_config_loads():
    # expert is a SafeGrid regime as well as a MuJoCo level: configs/expert-demos.yaml logs SafeGrid's expert
    from pathlib import Path

    from guardrl.config import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        if path.name.startswith("sweep"):
            continue
        cfg = load_config(path)
        assert cfg.name, path
    assert load_config(root / "expert-demos.yaml").collect.regime == "expert"


def test_a_sepsis_config_is_a_logs_only_run_and_round_trips(tmp_path):
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "sepsis.yaml")
    assert cfg.env.sepsis and cfg.env.logs_only and cfg.collect.regime == "physician"
    assert cfg.gate.confounded and cfg.gate.hazard_vs_behaviour == 0.0 and "model" in cfg.ope.chosen
    assert to_dict(cfg)["env"] == "sepsis"
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
