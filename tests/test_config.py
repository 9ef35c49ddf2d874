"""Config validation of release variants: patterns name reasons detectors can emit, and a variant
publishes restricted findings only when it says so."""

import pytest
from conftest import write_config

from scrutineer.config import load_config
from scrutineer.errors import ConfigError


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
    # a prefix matches whole dotted segments only (scrutineer/policy.py)
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
