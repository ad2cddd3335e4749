"""Configs: validation messages with the field's path, grids, overrides, hashes."""

from __future__ import annotations

import pytest

from bench import config
from bench.config import ConfigError, from_dict


def error_of(doc) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        from_dict(doc, "exp.toml")
    return info.value


def test_tiny_config_resolves(tiny):
    cfg = from_dict(tiny, "exp.toml")
    assert (cfg.name, cfg.seed, cfg.runs, cfg.budget) == ("tiny", 3, 6, 900)
    (xor,) = cfg.datasets
    assert xor.layer_sizes() == [2, 2, 1]
    assert (xor.model.output, xor.model.loss, xor.model.init_scale) == ("sigmoid", "mse", 1.0)
    assert [o.label for o in cfg.optimizers] == ["gd(learning_rate=2)", "rprop(variant=irprop-)"]
    assert len(cfg.cells()) == 2


def test_a_list_makes_a_grid(tiny):
    tiny["optimizers"] = [{"name": "momentum", "learning_rate": [0.1, 0.3], "nesterov": [False, True]}]
    cfg = from_dict(tiny)
    labels = [o.label for o in cfg.optimizers]
    assert labels == [
        "momentum(learning_rate=0.1, nesterov=false)",
        "momentum(learning_rate=0.1, nesterov=true)",
        "momentum(learning_rate=0.3, nesterov=false)",
        "momentum(learning_rate=0.3, nesterov=true)",
    ]
    assert [o.settings.learning_rate for o in cfg.optimizers] == [0.1, 0.1, 0.3, 0.3]
    assert len({c.key for c in cfg.cells()}) == 4


@pytest.mark.parametrize(
    ("edit", "path", "message"),
    [
        (lambda d: d.update(experimnt={}), "experimnt", "unknown key (did you mean 'experiment'?)"),
        (lambda d: d["experiment"].update(runs="ten"), "experiment.runs", "must be int, got 'ten'"),
        (lambda d: d["experiment"].update(runs=0), "experiment.runs", "must be >= 1, got 0"),
        (lambda d: d["experiment"].pop("budget"), "experiment.budget", "is required"),
        (lambda d: d["experiment"].update(name="a/b"), "experiment.name", "plain folder name"),
        (
            lambda d: d["datasets"][0].update(name="xr"),
            "datasets[0].name",
            "unknown dataset 'xr' (did you mean 'xor'?)",
        ),
        (
            lambda d: d["datasets"][0].update(params={"n": 3}),
            "datasets[0].params",
            "unknown parameter 'n' for dataset 'xor'",
        ),
        (lambda d: d["datasets"][0].update(model={"hiden": [3]}), "datasets[0].model.hiden", "did you mean 'hidden'"),
        (
            lambda d: d["datasets"][0].update(model={"activation": "tanhh"}),
            "datasets[0].model.activation",
            "did you mean 'tanh'",
        ),
        (lambda d: d["datasets"][0].update(model={"output": "softmax"}), "datasets[0].model", "is not supported"),
        (
            lambda d: d["datasets"][0].update(success={"kind": "accuracy", "split": "test", "target": 0.9}),
            "datasets[0].success",
            "has no test split",
        ),
        (lambda d: d["datasets"][0].update(success={"kind": "loss"}), "datasets[0].success.target", "needs a target"),
        (lambda d: d["optimizers"][1].update(name="rpop"), "optimizers[1].name", "did you mean 'rprop'"),
        (
            lambda d: d["optimizers"][1].update(eta_minus=1.3),
            "optimizers[1].eta_minus",
            "eta_minus must be in (0, 1), got 1.3",
        ),
        (
            lambda d: d["optimizers"][0].update(learning_rat=1.0),
            "optimizers[0].learning_rat",
            "did you mean 'learning_rate'",
        ),
        (lambda d: d["optimizers"][0].update(learning_rate=[]), "optimizers[0].learning_rate", "empty grid"),
        (
            lambda d: d["optimizers"].append({"name": "gd", "learning_rate": 2.0}),
            "optimizers",
            "labelled 'gd(learning_rate=2)'",
        ),
        (
            lambda d: d["stopping"].update(patience=2.0) if "stopping" in d else d.update(stopping={"patience": 2.0}),
            "stopping.patience",
            "fraction of the budget",
        ),
        (lambda d: d.update(record={"spacing": "lin"}), "record.spacing", "must be 'log' or 'linear'"),
    ],
)
def test_errors_name_the_field_and_the_fix(tiny, edit, path, message):
    edit(tiny)
    err = error_of(tiny)
    assert err.path == path
    assert message in err.message
    assert str(err).startswith(f"exp.toml: {path}: ")


def test_malformed_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment]\nname = 'x\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        config.load(str(bad))


def test_unknown_preset_suggests_one():
    with pytest.raises(ConfigError, match="did you mean 'quick'"):
        config.load("quik")


def test_overrides_set_nested_values(tiny, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(from_dict(tiny).to_dict()))
    cfg = config.load(str(path), ["experiment.runs=2", "optimizers.0.learning_rate=0.25", "experiment.name=other"])
    assert (cfg.runs, cfg.name, cfg.optimizers[0].settings.learning_rate) == (2, "other", 0.25)
    with pytest.raises(ConfigError, match="no entry 5"):
        config.load(str(path), ["optimizers.5.learning_rate=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        config.load(str(path), ["experiment.runs"])


def test_resolved_config_round_trips_with_the_same_hash(tiny, tmp_path):
    tiny["optimizers"][0]["learning_rate"] = [0.5, 1.0]
    cfg = from_dict(tiny)
    path = tmp_path / "resolved.toml"
    path.write_text(config.to_toml(cfg.to_dict()))
    again = config.load(str(path))
    assert again.hash == cfg.hash
    assert [c.key for c in again.cells()] == [c.key for c in cfg.cells()]


def test_hash_follows_the_numbers_not_the_words(tiny):
    base = from_dict(tiny).hash
    tiny["experiment"]["description"] = "words only"
    assert from_dict(tiny).hash == base
    tiny["experiment"]["seed"] = 4
    assert from_dict(tiny).hash != base


def test_every_preset_is_valid():
    for name in config.presets():
        cfg = config.load(name)
        assert cfg.cells(), name
