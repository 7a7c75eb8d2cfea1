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
