"""Config validation of release variants: patterns name reasons detectors can emit, and a variant
publishes restricted findings only when it says so."""

import pytest
from conftest import write_config

from scrutineer.core.config import load_config
from scrutineer.core.errors import ConfigError


def variant_config(tmp_path, variants, detectors=None):
    (tmp_path / "urls.txt").write_text("0" * 32 + "\n")
    return write_config(
        tmp_path,
        {
            "dataset": {"name": "d", "shards": ["data/*.parquet"]},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": detectors or {"url_hashlist": {}, "dedup": {}},
            "release": {"variants": variants},
        },
    )


def test_a_pattern_matching_no_reason_is_a_config_error(tmp_path):
    config = variant_config(tmp_path, {"research": {"remove": ["hash_mtach", "duplicate.url"]}})
    with pytest.raises(ConfigError) as e:
        load_config(config)
    assert "research" in str(e.value) and "'hash_mtach'" in str(e.value)
    assert "hash_match.url" in str(e.value) and "license.missing" in str(e.value)  # the known reasons
    # a prefix matches whole dotted segments only (scrutineer/core/policy.py)
    with pytest.raises(ConfigError, match="'hash_match.ur'"):
        load_config(variant_config(tmp_path, {"research": {"remove": ["hash_match.ur"]}}))


def test_a_variant_keeping_restricted_reasons_must_say_so(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(variant_config(tmp_path, {"dedup": {"remove": ["duplicate"]}}))
    assert "dedup" in str(e.value) and "hash_match.url" in str(e.value) and "keep_restricted" in str(e.value)
    # another signal's reason is a known reason, but does not cover the configured detector's
    with pytest.raises(ConfigError, match="hash_match.url"):
        load_config(variant_config(tmp_path, {"dedup": {"remove": ["duplicate", "hash_match.pdq"]}}))

    cfg = load_config(variant_config(tmp_path, {"dedup": {"remove": ["duplicate"], "keep_restricted": True}}))
    assert cfg.release.variants["dedup"].keep_restricted
    assert load_config(variant_config(tmp_path, {"clean": {"remove": ["hash_match", "duplicate"]}}))
    # without a hash-list detector there is nothing restricted to remove; `hash_match` is still a known reason
    assert load_config(variant_config(tmp_path, {"dedup": {"remove": ["duplicate"]}}, detectors={"dedup": {}}))
    assert load_config(variant_config(tmp_path, {"dedup": {"remove": ["hash_match", "duplicate"]}}, detectors={"dedup": {}}))


def test_a_bank_detector_without_a_bank_of_its_signal_is_a_config_error(tmp_path):
    """Fault 14: url_hashlist with no URL bank failed every shard (exit 3) instead of the config."""
    (tmp_path / "md5.txt").write_text("0" * 32 + "\n")
    config = write_config(
        tmp_path,
        {
            "dataset": {"name": "d", "shards": ["x"]},
            "banks": [{"name": "m", "path": "md5.txt", "signal_type": "md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}},
        },
    )
    with pytest.raises(ConfigError, match=r"detectors.url_hashlist matches banks of signal type url_md5, and no bank has one"):
        load_config(config)


def test_config_paths_expand_environment_variables(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    config = write_config(
        tmp_path, {"dataset": {"name": "d", "shards": ["${DATA_ROOT:-data}/*.jsonl"]}, "detectors": {"dedup": {}}, "workspace": "${WORK:-work}"}
    )
    cfg = load_config(config)
    assert cfg.dataset.shards == ["data/*.jsonl"] and cfg.workspace == tmp_path / "work"
    monkeypatch.setenv("DATA_ROOT", "/elsewhere")
    assert load_config(config).dataset.shards == ["/elsewhere/*.jsonl"]
    unset = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["$NO_SUCH_VARIABLE/*.jsonl"]}, "detectors": {"dedup": {}}})
    with pytest.raises(ConfigError, match="dataset.shards: NO_SUCH_VARIABLE: unbound variable"):
        load_config(unset)


def _models():
    """Every pydantic model of the config, and every detector's Params."""
    from pydantic import BaseModel

    from scrutineer.core import config
    from scrutineer.core.registry import available, get_detector_class

    models = [m for m in vars(config).values() if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == config.__name__]
    return models + [get_detector_class(name).Params for name in available()]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__qualname__)
def test_every_setting_is_described(model):
    undescribed = [name for name, field in model.model_fields.items() if not field.description]
    assert not undescribed, f"{model.__qualname__}: settings without a description: {undescribed}"


@pytest.mark.parametrize("runner, message", [
    ({"kind": "dask"}, "either address .* or workers"),
    ({"kind": "dask", "address": "tcp://127.0.0.1:8786", "workers": 2}, "either address .* or workers"),
    ({"kind": "local", "workers": 2}, "address and workers are for kind dask"),
    ({"kind": "ray"}, "runner.kind"),
])
def test_a_runner_names_one_cluster(tmp_path, runner, message):
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["x"]}, "detectors": {"dedup": {}}, "runner": runner})
    with pytest.raises(ConfigError, match=message):
        load_config(config)
    assert load_config(write_config(tmp_path, {"dataset": {"name": "d", "shards": ["x"]}, "detectors": {"dedup": {}},
                                               "runner": {"kind": "dask", "workers": 2}})).runner.workers == 2
