import dataclasses
import itertools
import json
import re
import typing
from pathlib import Path

import pytest

from dyndis_learn import ModelConfig, TrainConfig, load_config
from dyndis_learn.config import (
    CONFIG_VERSION,
    DEFAULT_LATENT_DIM,
    GraphWarmupConfig,
    WarmupConfig,
    migrate_config,
)
from dyndis_learn.cycles import LONGEST_STRIDE
from dyndis_learn.regularizers import EntanglementTarget
from dyndis_learn.rotations import Parametrisation
from dyndis_learn.schedules import ScheduleKind

DATA = Path(__file__).parent / "data"


def test__round_trip_through_json():
    config = TrainConfig(steps=123, model=ModelConfig(latent_dim=6, channels=(16, 16)))
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert config.to_dict()["version"] == CONFIG_VERSION


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": 0}, "TrainConfig.steps must be an integer >= 1 or 'auto', got 0."),
        ({"optim": {"lr": -1e-3}}, "OptimConfig.lr must be a finite number > 0, got -0.001."),
        (
            {"warmup": {"kind": "graph", "graph": {"eigenmap_candidates": 3}}},
            "WarmupConfig.graph.eigenmap_candidates must be >= model.latent_dim (4), got 3.",
        ),
        ({"optim": {"angle_lr": -1e-3}}, "OptimConfig.angle_lr must be a finite number >= 0 (or None), got -0.001."),
        ({"optim": {"decay_start": 1.5}}, "OptimConfig.decay_start must be a finite number >= 0 and <= 1, got 1.5."),
        ({"env": {"kwargs": [1, 2]}}, "EnvConfig.kwargs must be a mapping (a dict), got [1, 2]."),
        ({"model": {"latent_dim": 1}}, "ModelConfig.latent_dim must be an integer >= 2 or 'auto', got 1."),
        ({"model": {"channels": [8, 0]}}, "ModelConfig.channels[1] must be an integer >= 1, got 0."),
        ({"model": {"channels": []}}, "ModelConfig.channels must be a non-empty sequence, got []."),
        (
            {"model": {"encoder_norm": "batch"}},
            "ModelConfig.encoder_norm must be one of ['none', 'instance', 'instance_after_first'], got 'batch'.",
        ),
        (
            {"model": {"parametrisation": "quaternion"}},
            "ModelConfig.parametrisation must be one of ['givens', 'exp'], got 'quaternion'.",
        ),
        (
            {"model": {"method": "vae"}},
            "ModelConfig.method must be one of the registered ['direct', 'forward-vae', 'lsbd-vae', 'quessard2020', "
            "'rotation', 'rotation-unregularised'], got 'vae'.",
        ),
        (
            {"warmup": {"kind": "fourier"}},
            "WarmupConfig.kind must be one of the registered ['cycles', 'graph', 'none', 'spectral'], got 'fourier'.",
        ),
        (
            {"regularizer": {"target": "median"}},
            "RegularizerConfig.target must be one of ['min', 'max', 'value'], got 'median'.",
        ),
        ({"regularizer": {"delay": -1}}, "RegularizerConfig.delay must be an integer >= 0 (or None), got -1."),
        (
            {"loss": {"autoencoder_weight": 0.0, "rollout_weight": 0.0}},
            "LossConfig: autoencoder_weight and rollout_weight cannot both be 0",
        ),
        ({"stepz": 10}, "Unknown TrainConfig field(s): 'stepz' (did you mean 'steps'?)."),
        (
            {"warmup": {"spectral": {"smoothness_weight": -1.0}}},
            "SpectralWarmupConfig.smoothness_weight must be a finite number >= 0, got -1.0.",
        ),
        (
            {"warmup": {"spectral": {"whitening_weight": float("inf")}}},
            "SpectralWarmupConfig.whitening_weight must be a finite number >= 0, got inf.",
        ),
        (
            {"warmup": {"spectral": {"whitening_weight": "1"}}},
            "SpectralWarmupConfig.whitening_weight must be a finite number >= 0, got '1'.",
        ),
        (
            {"warmup": {"spectral": {"align_planes": 1}}},
            "SpectralWarmupConfig.align_planes must be True or False, got 1.",
        ),
        ({"data": {"episode_steps": 2.5}}, "DataConfig.episode_steps must be an integer >= 1, got 2.5."),
        ({"model": {"latentdim": 3}}, "Unknown ModelConfig field(s): 'latentdim' (did you mean 'latent_dim'?)."),
        ({"model": 5}, "ModelConfig expects a mapping of field names to values, got 5."),
        ({"version": 16}, "Config version 16 is unknown; this dyndis-learn reads versions 1 to 15."),
        (
            {"warmup": {"cycles": {"longest_stride": 0}}},
            "CycleWarmupConfig.longest_stride must be an integer >= 1 (or None), got 0.",
        ),
        ({"threads": 10**6}, "TrainConfig.threads must be an integer >= 0 and <= 256, got 1000000."),
    ],
)
def test__bad_values_give_clear_errors(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict(data)


def test__bool_is_not_an_int():
    with pytest.raises(ValueError, match=re.escape("TrainConfig.seed must be an integer >= 0, got True.")):
        TrainConfig(seed=True)


def test__sections_accept_mappings_and_replace_merges_into_them():
    config = TrainConfig(model={"latent_dim": 6})
    assert config.model == ModelConfig(latent_dim=6)
    changed = config.replace(steps=9, model={"hidden_dim": 8}, warmup={"graph": {"batch_size": 4}})
    assert (changed.steps, changed.model.latent_dim, changed.model.hidden_dim) == (9, 6, 8)
    assert changed.warmup.graph.batch_size == 4 and changed.warmup.kind == "cycles"
    assert config.model.hidden_dim == 256  # the original is unchanged


def test__choices_match_the_enums_they_configure():
    def choices(cls, name):
        return list(typing.get_args(typing.get_type_hints(cls)[name]))

    from dyndis_learn.config import RegularizerConfig

    assert choices(ModelConfig, "parametrisation") == [p.value for p in Parametrisation]
    assert choices(RegularizerConfig, "target") == [t.value for t in EntanglementTarget]
    assert choices(RegularizerConfig, "schedule") == [k.value for k in ScheduleKind]


def test__every_field_has_a_docstring_for_the_help():
    import ast
    import inspect

    import dyndis_learn.config as module

    tree = ast.parse(inspect.getsource(module))
    documented = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for field, after in itertools.pairwise(node.body):
                is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                if isinstance(field, ast.AnnAssign) and is_doc:
                    documented.add((node.name, field.target.id))
    sections = [
        obj for obj in vars(module).values() if dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
    ]
    assert len(sections) == 13
    for cls in sections:
        for f in dataclasses.fields(cls):
            assert (cls.__name__, f.name) in documented, f"{cls.__name__}.{f.name}"


def test__migration_moves_every_flat_field_into_its_section():
    flat = {
        "env_id": "DynDis/Shapes3D-v0",
        "env_kwargs": {"image_size": 32},
        "warmup": "spectral",
        "warmup_steps": 7,
        "graph_batch_size": 12,
        "warmup_episodes_per_step": 3,
        "lr": 1e-3,
        "log_every": 5,
        "split_decoding": False,
        "model": {"latent_dim": 6},
        "steps": 9,
    }
    migrated = migrate_config(flat)
    assert migrated == {
        "env": {"id": "DynDis/Shapes3D-v0", "kwargs": {"image_size": 32}},
        "warmup": {
            "kind": "spectral",
            "steps": 7,
            "graph": {"batch_size": 12},
            "spectral": {"episodes_per_step": 3},
            "cycles": {  # the defaults of version 5 and before
                "walk_steps": 20000,
                "decoder_reads_targets": False,
                "longest_stride": None,
            },
        },
        "optim": {"lr": 1e-3, "adam_beta2": 0.999},  # the value version 1's runs trained with
        "logging": {"log_every": 5},
        "loss": {"split_decoding": False, "neighbour_margin_weight": 0.0},  # no such term in version 1
        "model": {
            "latent_dim": 6,
            "angle_bins": None,
            "lookup_feature_map": False,
            "encoder_norm": "none",
            "lookup_modulation": False,
        },
        "evaluation": {"synthesis_modes": 1},  # reports judged the encoder's own encodings
        "steps": 9,
        "bf16": False,  # float32 unless asked, before version 15
    }
    assert flat["warmup"] == "spectral"  # the caller's dict is left alone
    # a partial dict in the new layout passes through, a current-version dict too
    assert migrate_config({"warmup": {"kind": "none"}, "steps": 3}) == {"warmup": {"kind": "none"}, "steps": 3}
    current = TrainConfig().to_dict()
    assert TrainConfig.from_dict(migrate_config(current)) == TrainConfig()


def test__a_version_2_config_keeps_the_adam_beta2_it_trained_with():
    stored = TrainConfig().to_dict()
    del stored["optim"]["adam_beta2"]
    stored["version"] = 2
    assert TrainConfig.from_dict(stored).optim.adam_beta2 == 0.999
    stored["optim"]["adam_beta2"] = 0.9  # an explicit value stays
    assert TrainConfig.from_dict(stored).optim.adam_beta2 == 0.9
    # a partial dict without a version is in today's layout: today's default
    assert TrainConfig.from_dict({"steps": 3}).optim.adam_beta2 == TrainConfig().optim.adam_beta2
    with pytest.raises(ValueError, match=re.escape("OptimConfig expects a mapping of field names to values, got 5.")):
        TrainConfig.from_dict({"version": 2, "optim": 5})


def test__a_version_3_config_keeps_training_without_the_neighbour_margin():
    stored = TrainConfig().to_dict()
    del stored["loss"]["neighbour_margin_weight"]
    stored["version"] = 3
    config = TrainConfig.from_dict(stored)
    assert config.loss.neighbour_margin_weight == 0.0 and config.optim.adam_beta2 == TrainConfig().optim.adam_beta2
    stored["version"] = 2  # older still: both fields get the values of their time
    config = TrainConfig.from_dict({**stored, "optim": {k: v for k, v in stored["optim"].items() if k != "adam_beta2"}})
    assert config.loss.neighbour_margin_weight == 0.0 and config.optim.adam_beta2 == 0.999
    today = TrainConfig().loss.neighbour_margin_weight
    assert TrainConfig.from_dict({"steps": 3}).loss.neighbour_margin_weight == today


@pytest.mark.parametrize("name", ["checkpoint_v1_graph", "checkpoint_v1_spectral"])
def test__configs_stored_by_format_1_checkpoints_load(name):
    from dyndis_learn.checkpoint import read_checkpoint

    stored = read_checkpoint(DATA / f"{name}.safetensors").config
    assert "env_id" in stored and "version" not in stored  # really the old flat layout
    config = TrainConfig.from_dict(stored)
    assert config.env.id == stored["env_id"] and config.env.kwargs == stored["env_kwargs"]
    assert config.warmup.kind == stored["warmup"] and config.warmup.steps == stored["warmup_steps"]
    assert config.warmup.graph.exploration_steps == stored["exploration_steps"]
    assert config.optim.dynamics_ramp_steps == stored["dynamics_ramp_steps"]
    assert config.model.parametrisation == stored["model"]["parametrisation"]
    assert config.regularizer.target == stored["regularizer"]["target"]


def test__config_files_in_json_and_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("steps: 5\nmodel:\n  latent_dim: 6\nwarmup: {kind: spectral}\n")
    (tmp_path / "b.json").write_text(json.dumps({"steps": 5, "model": {"latent_dim": 6}, "warmup": "spectral"}))
    old = load_config(tmp_path / "b.json")  # the JSON is the old layout: its runs trained with Adam's 0.999
    assert old.optim.adam_beta2 == 0.999
    today = TrainConfig()
    assert load_config(tmp_path / "a.yaml") == old.replace(
        optim={"adam_beta2": today.optim.adam_beta2},
        loss={"neighbour_margin_weight": today.loss.neighbour_margin_weight},
        model={
            "angle_bins": today.model.angle_bins,
            "lookup_feature_map": True,
            "encoder_norm": "instance",
            "lookup_modulation": True,
        },
        warmup={
            "steps": today.warmup.steps,
            "cycles": {
                "walk_steps": today.warmup.cycles.walk_steps,
                "decoder_reads_targets": True,
                "longest_stride": today.warmup.cycles.longest_stride,
            },
        },
        evaluation={"synthesis_modes": "auto"},
        bf16="auto",
    )
    (tmp_path / "c.yml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=re.escape("must hold a mapping of TrainConfig fields, got [1, 2].")):
        load_config(tmp_path / "c.yml")
    (tmp_path / "d.json").write_text("{")
    with pytest.raises(ValueError, match=re.escape("is not valid JSON")):
        load_config(tmp_path / "d.json")
    with pytest.raises(FileNotFoundError, match=re.escape("No config file at")):
        load_config(tmp_path / "missing.json")


def test__latent_dim_auto__is_the_default_and_is_resolved_before_a_model_is_built():
    config = TrainConfig()
    assert config.model.latent_dim == "auto"
    with pytest.raises(ValueError, match=re.escape("model.latent_dim='auto' is resolved by the trainer")):
        _ = config.built_model
    assert config.replace(model={"latent_dim": 12, "angle_bins": None}).built_model.latent_dim == 12
    # the graph warm-up's check reads the dimension "auto" gives it
    with pytest.raises(ValueError, match=re.escape("eigenmap_candidates must be >= model.latent_dim (4), got 3")):
        TrainConfig(warmup=WarmupConfig(kind="graph", graph=GraphWarmupConfig(eigenmap_candidates=3)))


def test__a_stored_config_of_version_4_without_latent_dim_keeps_that_versions_default():
    assert TrainConfig.from_dict({"version": 4, "steps": 10}).model.latent_dim == DEFAULT_LATENT_DIM == 4
    assert TrainConfig.from_dict({"steps": 10}).model.latent_dim == "auto"  # a config file of today's layout


def test__a_stored_config_of_version_5_keeps_that_versions_angle_bins_and_walk_at_any_depth():
    old = TrainConfig.from_dict({"version": 5, "warmup": {"cycles": {"starts": 8}}})
    assert old.model.angle_bins is None and old.warmup.cycles.walk_steps == 20000 and old.warmup.cycles.starts == 8
    stored = TrainConfig.from_dict({"version": 5, "warmup": {"cycles": {"walk_steps": 500}}})
    assert stored.warmup.cycles.walk_steps == 500
    today = TrainConfig()
    assert today.model.angle_bins == "auto" and today.warmup.cycles.walk_steps == "auto"
    with pytest.raises(ValueError, match=re.escape("model.angle_bins='auto' is resolved by the trainer")):
        _ = today.replace(model={"latent_dim": 12}).built_model
    with pytest.raises(ValueError, match=re.escape("must be an integer >= 1 or 'auto', got 0")):
        TrainConfig.from_dict({"warmup": {"cycles": {"walk_steps": 0}}})


def test__a_stored_config_of_version_5_without_steps_keeps_600():
    assert TrainConfig.from_dict({"version": 5, "seed": 1}).steps == 600
    assert TrainConfig.from_dict({"env_id": "DynDis/GridWorld-v0"}).steps == 600  # the flat layout, version 1


def test__a_stored_config_of_version_12_keeps_the_budget_of_1000_and_150_steps():
    stored = TrainConfig.from_dict({"version": 12, "seed": 1})
    assert (stored.steps, stored.warmup.steps) == (1000, 150)
    own = TrainConfig.from_dict({"version": 12, "steps": 30, "warmup": {"steps": 5}})
    assert (own.steps, own.warmup.steps) == (30, 5)
    assert (TrainConfig().steps, TrainConfig().warmup.steps) == ("auto", "auto")  # today: chosen from the world
    with pytest.raises(ValueError, match=re.escape("WarmupConfig.steps must be an integer >= 0 or 'auto', got -1")):
        TrainConfig.from_dict({"warmup": {"steps": -1}})


def test__a_stored_config_of_version_14_keeps_float32_and_today_bf16_is_chosen_by_the_trainer():
    assert TrainConfig.from_dict({"version": 14, "seed": 1}).bf16 is False
    assert TrainConfig.from_dict({"version": 14, "bf16": True}).bf16 is True
    assert TrainConfig().bf16 == "auto" and TrainConfig.from_dict({"seed": 1}).bf16 == "auto"
    with pytest.raises(ValueError, match=re.escape("TrainConfig.bf16 must be True or False or 'auto', got 'yes'")):
        TrainConfig.from_dict({"bf16": "yes"})


def test__a_stored_config_of_version_6_keeps_its_decoder_reading_the_encodings():
    assert TrainConfig.from_dict({"version": 6, "seed": 1}).warmup.cycles.decoder_reads_targets is False
    stored = {"version": 6, "warmup": {"cycles": {"decoder_reads_targets": True}}}
    assert TrainConfig.from_dict(stored).warmup.cycles.decoder_reads_targets is True
    assert TrainConfig().warmup.cycles.decoder_reads_targets is True


def test__a_stored_config_of_version_7_keeps_its_decoder_without_a_feature_map_per_bin():
    assert TrainConfig.from_dict({"version": 7, "seed": 1}).model.lookup_feature_map is False
    assert TrainConfig.from_dict({"version": 7, "model": {"lookup_feature_map": True}}).model.lookup_feature_map
    assert TrainConfig().model.lookup_feature_map is True


def test__a_stored_config_of_version_8_keeps_its_plain_encoder():
    assert TrainConfig.from_dict({"version": 8, "seed": 1}).model.encoder_norm == "none"
    assert TrainConfig.from_dict({"version": 8, "model": {"encoder_norm": "instance"}}).model.encoder_norm == "instance"
    assert TrainConfig().model.encoder_norm == "instance"


def test__a_stored_config_of_version_9_keeps_its_decoder_without_a_modulation_per_bin():
    assert TrainConfig.from_dict({"version": 9, "seed": 1}).model.lookup_modulation is False
    assert TrainConfig.from_dict({"version": 9, "model": {"lookup_modulation": True}}).model.lookup_modulation
    assert TrainConfig().model.lookup_modulation is True


def test__a_stored_config_of_version_10_reports_the_encoders_own_encodings():
    assert TrainConfig.from_dict({"version": 10, "seed": 1}).evaluation.synthesis_modes == 1
    assert TrainConfig.from_dict({"version": 10, "evaluation": {"synthesis_modes": 4}}).evaluation.synthesis_modes == 4
    assert TrainConfig().evaluation.synthesis_modes == "auto"
    with pytest.raises(ValueError, match="synthesis_modes"):
        TrainConfig.from_dict({"evaluation": {"synthesis_modes": 0}})


def test__a_stored_config_of_version_11_walks_in_strides_up_to_a_cycles_length():
    assert TrainConfig.from_dict({"version": 11, "seed": 1}).warmup.cycles.longest_stride is None
    stored = {"version": 11, "warmup": {"cycles": {"longest_stride": 5}}}
    assert TrainConfig.from_dict(stored).warmup.cycles.longest_stride == 5
    assert TrainConfig().warmup.cycles.longest_stride == LONGEST_STRIDE == 24
