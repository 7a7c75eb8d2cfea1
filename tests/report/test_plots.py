import numpy as np

from guardrl import report

PNG = b"\x89PNG"


def test_every_plot_writes_a_png(tmp_path):
    iv = {"bc": {"mean": 1.0, "low": 0.5, "high": 1.5}, "cql": {"mean": 2.0, "low": 1.0, "high": 2.5}}
    rate = {"bc": {"mean": 0.04, "low": 0.03, "high": 0.05}, "cql": {"mean": 0.0, "low": 0.0, "high": 0.0}}
    paths = [
        report.visitation_heatmap(np.arange(9).reshape(3, 3), [(1, 1)], (0, 0), (2, 2), tmp_path / "v.png"),
        report.reward_histogram(np.array([-1.0, -1.0, 50.0, -100.0]), np.array([3.0, -40.0]), tmp_path / "r.png"),
        report.returns_with_ci(iv, tmp_path / "ret.png", optimal=2.2),
        report.safety_bars(rate, rate, tmp_path / "s.png"),
        report.learning_curves(
            {"bc": {"step": [1, 2], "loss": [1.0, 0.5]}},
            {"bc": {"step": [2], "expected_return": [1.0]}},
            tmp_path / "l.png",
            optimal=2.0,
        ),
    ]
    for p in paths:
        assert p.read_bytes()[:4] == PNG and p.stat().st_size > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.png", "r.png", "ret.png", "s.png", "v.png"]


def test_continuous_step_rewards_get_a_histogram_not_a_bar_each(tmp_path):
    import matplotlib.pyplot as plt

    rewards = np.random.default_rng(0).normal(size=20_000)  # 20,000 distinct values, as MuJoCo logs have
    seen = []
    original = plt.Axes.bar
    plt.Axes.bar = lambda self, *a, **k: seen.append(len(a[0])) or original(self, *a, **k)
    try:
        path = report.reward_histogram(rewards, np.array([3.0, -40.0]), tmp_path / "r.png")
        report.reward_histogram(np.array([-1.0, 50.0, -1.0]), np.array([3.0]), tmp_path / "d.png")
    finally:
        plt.Axes.bar = original
    # hist draws its 40 bins through bar too; no call drew a bar per distinct continuous reward
    assert path.read_bytes()[:4] == PNG and max(seen) <= 40 and 2 in seen
