"""One canary per cluster from a template unit; every service with explicit limits, private mounts and
no credential it would need whatever its config."""

import pytest

from tests.canary.test_units import UNITS, _directives

SERVICES = ("iris-smoke.service", "iris-smoke-canary.service", "iris-smoke-canary@.service")
# What an instance changes; everything else must stay the plain canary unit's.
PER_INSTANCE = {"Description", "StateDirectory", "LogsDirectory", "EnvironmentFile", "ExecStart"}


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_explicit_limits_and_private_mounts(name: str) -> None:
    unit = _directives(UNITS / name)
    assert unit["PrivateMounts"] == ["yes"] and unit["PrivateTmp"] == ["yes"]
    assert int(unit["LimitNOFILE"][0]) >= 4096 and int(unit["TasksMax"][0]) >= 2 * 256
    assert unit["MemoryMax"][0].endswith("G")
    assert unit["LimitCORE"] == ["0"], "a core file would hold the tokens a process read"
    assert "AF_UNIX" in unit["RestrictAddressFamilies"][0], "the embedded cluster serves on a Unix socket"
    # A missing LoadCredential= source stops the unit from starting: credentials come in drop-ins
    # (systemd/examples/), for the configs that use them.
    assert "LoadCredential" not in unit and "ConditionPathExists" not in unit


def test_the_template_reads_its_instance_config_and_otherwise_is_the_canary_unit() -> None:
    template = _directives(UNITS / "iris-smoke-canary@.service")
    canary = _directives(UNITS / "iris-smoke-canary.service")
    assert "--config /etc/iris-smoke/%i.toml --state-dir /var/lib/iris-smoke/%i" in template["ExecStart"][0]
    assert template["StateDirectory"] == ["iris-smoke/%i iris-smoke/locks"]
    assert template["Environment"] == canary["Environment"]  # the shared lock dir among them
    assert "IRIS_SMOKE_LOCK_DIR=/var/lib/iris-smoke/locks" in " ".join(template["Environment"])
    assert {k: v for k, v in template.items() if k not in PER_INSTANCE} == {
        k: v for k, v in canary.items() if k not in PER_INSTANCE
    }
