import numpy as np
import pytest

from guardrl.data import collect
from guardrl.train import BCConfig, ObsBounds, TrainConfig, TransitionArrays, train_all
from guardrl.train.stopping import holdout_split


def test_epochs_make_the_training_length_follow_the_data():
    bc = BCConfig()  # 3 epochs, at least 1,000 and at most 20,000 steps of 256
    assert bc.planned_steps(16_878) == 1000  # the default run's logs: the floor
    assert bc.planned_steps(169_990) == 1993  # 5,000 episodes: ceil(3 x 169,990 / 256)
    assert bc.planned_steps(1_690_476) == 19_811  # 50,000 episodes
    assert bc.planned_steps(2_000_000) == 20_000  # the cap
    assert BCConfig(stop="steps", n_steps=700).planned_steps(10**7) == 700
    assert BCConfig(stop="held_out").planned_steps(10) == 20_000  # the most it may take; it stops before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stop": "loss"}, "bc.stop must be epochs, held_out or steps"),
        ({"max_steps": 10}, r"bc.max_steps \(10\) is below bc.n_steps \(1000\)"),
        ({"n_epochs": 0}, "bc.n_epochs must be positive"),
        ({"stop": "held_out", "holdout": 1.0}, r"bc.holdout must lie in \(0, 1\)"),
        ({"stop": "held_out", "patience": 0}, "at least 1"),
    ],
)
def test_bad_stopping_settings_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BCConfig(**kwargs)


def test_holdout_keeps_episodes_whole(tables):
    arrays = TransitionArrays.from_dataset(collect(tables, "safe", 40, seed=0))
    train, held = holdout_split(arrays, 0.25, np.random.default_rng(0))
    assert np.intersect1d(train, held).size == 0 and train.size + held.size == arrays.observations.shape[0]
    held_episodes = set(arrays.episodes[held])
    assert len(held_episodes) == 10 and not held_episodes & set(arrays.episodes[train])
    few = TransitionArrays.from_dataset(collect(tables, "safe", 5, seed=0))  # too few episodes: transitions
    train, held = holdout_split(few, 0.25, np.random.default_rng(0))
    assert held.size == round(0.25 * few.observations.shape[0]) and train.size > 0


def test_held_out_stopping_ends_when_the_loss_stops_improving(tables):
    # the action is a simple rule of the observation (right half: 1, left: 0), so BC can learn it from some
    # episodes and predict it on others, and the held-out loss then goes flat
    ds = collect(tables, "safe", 80, seed=3)
    from dataclasses import replace

    ds = replace(ds, actions=(ds.observations[:, 0] >= 7).astype(np.int64))
    bc = BCConfig(stop="held_out", n_steps=30, max_steps=5000, eval_every=10, patience=3, batch_size=64,
                  learning_rate=3e-3, beta=0.0)  # fmt: skip
    res = train_all(ds, TrainConfig(learners=("bc",), bc=bc), ObsBounds(np.zeros(2), np.full(2, 14.0)),
                    show_progress=False)["bc"]  # fmt: skip
    assert 30 <= res.n_steps < 5000 and res.n_steps % 10 == 0
    assert res.stopped.startswith("held-out loss stale for 3 checks")
    losses = res.curve["held_out_nll"]
    assert res.curve["held_out_step"][-1] == res.n_steps and len(losses) == res.n_steps // 10
    assert min(losses) < 0.1 and losses[0] > 2 * min(losses)  # it learned the rule on episodes it never saw
    np.testing.assert_array_equal(res.predict(ds.observations), ds.actions)  # the best check's weights were kept


def test_epochs_train_the_planned_steps(tables):
    ds = collect(tables, "safe", 30, seed=1)
    bc = BCConfig(n_steps=10, n_epochs=2.0, batch_size=64, max_steps=10_000)
    res = train_all(ds, TrainConfig(learners=("bc",), bc=bc, log_every=5), show_progress=False)["bc"]
    assert res.n_steps == int(np.ceil(2.0 * len(ds) / 64)) == res.curve["step"][-1]
