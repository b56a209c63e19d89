"""Settings.from_env: defaults, parsing, and keeping secrets out of messages and reprs."""

from __future__ import annotations

import pytest

from engine.config import MIN_SECRET_KEY_LENGTH, ConfigError, SecretStr, Settings

MASTER = "master-key-VALUE-0123456789abcdef"
PSK = "psk-VALUE-0123456789abcdefghijklmn"
SECRET_KEY = "secret-key-VALUE-0123456789abcdefghijk"
SECRETS = {"ENGINE_API_KEY": MASTER, "WORKFLOW_ENGINE_INTERNAL_PSK": PSK, "ENGINE_SECRET_KEY": SECRET_KEY}


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    return str(caught.value)


def test_defaults_with_empty_env() -> None:
    settings = Settings.from_env({})
    assert settings.master_api_key.get() == ""
    assert settings.internal_psk.get() == ""
    assert settings.secret_key.get() == ""
    assert settings.database_url == "sqlite:///var/engine.db"
    assert settings.grpc_addr == "127.0.0.1:50051"
    assert settings.http_addr == "127.0.0.1:8080"
    assert settings.rate_limit_rps == 50.0
    assert settings.rate_limit_burst == 100
    assert settings.grpc_workers == 16
    assert settings.auto_migrate is True
    assert settings.log_level == "INFO"


def test_empty_strings_mean_default() -> None:
    env = {
        name: ""
        for name in (
            "ENGINE_DATABASE_URL",
            "ENGINE_GRPC_ADDR",
            "ENGINE_HTTP_ADDR",
            "ENGINE_RATE_LIMIT_RPS",
            "ENGINE_RATE_LIMIT_BURST",
            "ENGINE_GRPC_WORKERS",
            "ENGINE_AUTO_MIGRATE",
            "ENGINE_LOG_LEVEL",
        )
    }
    assert Settings.from_env(env) == Settings.from_env({})


def test_every_override_is_parsed() -> None:
    settings = Settings.from_env(
        {
            **SECRETS,
            "ENGINE_DATABASE_URL": "postgresql+psycopg2://u@db:5432/engine",
            "ENGINE_GRPC_ADDR": "0.0.0.0:6000",
            "ENGINE_HTTP_ADDR": "[::1]:9090",
            "ENGINE_RATE_LIMIT_RPS": "2.5",
            "ENGINE_RATE_LIMIT_BURST": "7",
            "ENGINE_GRPC_WORKERS": "3",
            "ENGINE_AUTO_MIGRATE": "false",
            "ENGINE_LOG_LEVEL": "debug",
        }
    )
    assert settings.master_api_key.get() == MASTER
    assert settings.internal_psk.get() == PSK
    assert settings.secret_key.get() == SECRET_KEY
    assert settings.database_url == "postgresql+psycopg2://u@db:5432/engine"
    assert settings.grpc_addr == "0.0.0.0:6000"
    assert settings.http_addr == "[::1]:9090"
    assert settings.rate_limit_rps == 2.5
    assert isinstance(settings.rate_limit_burst, int) and settings.rate_limit_burst == 7
    assert isinstance(settings.grpc_workers, int) and settings.grpc_workers == 3
    assert settings.auto_migrate is False
    assert settings.log_level == "DEBUG"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_GRPC_WORKERS", "5")
    monkeypatch.delenv("ENGINE_LOG_LEVEL", raising=False)
    monkeypatch.delenv("ENGINE_GRPC_ADDR", raising=False)
    settings = Settings.from_env()
    assert settings.grpc_workers == 5


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "Yes", "on"])
def test_true_flags(raw: str) -> None:
    assert Settings.from_env({"ENGINE_AUTO_MIGRATE": raw}).auto_migrate is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "NO", "off"])
def test_false_flags(raw: str) -> None:
    assert Settings.from_env({"ENGINE_AUTO_MIGRATE": raw}).auto_migrate is False


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR", "warning"])
def test_log_levels(level: str) -> None:
    assert Settings.from_env({"ENGINE_LOG_LEVEL": level}).log_level == level.upper()


@pytest.mark.parametrize("rps", ["0.001", "1", "1e3"])
def test_rate_limit_rps_accepts_small_and_scientific(rps: str) -> None:
    assert Settings.from_env({"ENGINE_RATE_LIMIT_RPS": rps}).rate_limit_rps == float(rps)


@pytest.mark.parametrize("addr", ["localhost:1", "10.0.0.1:65535", "example.org:0", "[::]:50051"])
def test_valid_addresses(addr: str) -> None:
    assert Settings.from_env({"ENGINE_GRPC_ADDR": addr}).grpc_addr == addr


# Each bad value is distinctive, so that the test can prove it is not echoed back.
BAD_VALUES = [
    ("ENGINE_GRPC_ADDR", "no-port-hunter2"),
    ("ENGINE_GRPC_ADDR", ":50051"),
    ("ENGINE_GRPC_ADDR", "hunter2:"),
    ("ENGINE_GRPC_ADDR", "hunter2:http"),
    ("ENGINE_GRPC_ADDR", "hunter2:65536"),
    ("ENGINE_GRPC_ADDR", "hunter2:-1"),
    ("ENGINE_HTTP_ADDR", "hunter2"),
    ("ENGINE_HTTP_ADDR", "hunter2:8o8o"),
    ("ENGINE_RATE_LIMIT_RPS", "hunter2"),
    ("ENGINE_RATE_LIMIT_RPS", "0.0000"),
    ("ENGINE_RATE_LIMIT_RPS", "0.0009"),
    ("ENGINE_RATE_LIMIT_RPS", "-5"),
    ("ENGINE_RATE_LIMIT_BURST", "hunter2"),
    ("ENGINE_RATE_LIMIT_BURST", "1.5"),
    ("ENGINE_RATE_LIMIT_BURST", "00"),
    ("ENGINE_RATE_LIMIT_BURST", "-7"),
    ("ENGINE_GRPC_WORKERS", "many-hunter2"),
    ("ENGINE_GRPC_WORKERS", "000"),
    ("ENGINE_AUTO_MIGRATE", "hunter2"),
    ("ENGINE_AUTO_MIGRATE", "2"),
    ("ENGINE_LOG_LEVEL", "hunter2"),
    ("ENGINE_LOG_LEVEL", "TRACE"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_values_raise_config_error_naming_the_variable_not_the_value(name: str, value: str) -> None:
    message = config_error({**SECRETS, name: value})
    assert name in message
    assert value not in message
    for secret in SECRETS.values():
        assert secret not in message


def test_nan_rate_is_rejected() -> None:
    message = config_error({"ENGINE_RATE_LIMIT_RPS": "nan"})
    assert "ENGINE_RATE_LIMIT_RPS" in message


def test_non_ascii_digit_port_is_a_config_error() -> None:
    message = config_error({"ENGINE_GRPC_ADDR": "localhost:²"})
    assert "ENGINE_GRPC_ADDR" in message


def test_require_serving_secrets_passes_with_all_three() -> None:
    Settings.from_env(SECRETS).require_serving_secrets()


@pytest.mark.parametrize(
    ("missing", "first_named"),
    [
        (("ENGINE_API_KEY",), "ENGINE_API_KEY"),
        (("WORKFLOW_ENGINE_INTERNAL_PSK",), "WORKFLOW_ENGINE_INTERNAL_PSK"),
        (("ENGINE_SECRET_KEY",), "ENGINE_SECRET_KEY"),
        (("ENGINE_API_KEY", "WORKFLOW_ENGINE_INTERNAL_PSK", "ENGINE_SECRET_KEY"), "ENGINE_API_KEY"),
        (("WORKFLOW_ENGINE_INTERNAL_PSK", "ENGINE_SECRET_KEY"), "WORKFLOW_ENGINE_INTERNAL_PSK"),
        (("ENGINE_API_KEY", "ENGINE_SECRET_KEY"), "ENGINE_API_KEY"),
    ],
)
def test_require_serving_secrets_names_first_missing(missing: tuple[str, ...], first_named: str) -> None:
    env = {name: value for name, value in SECRETS.items() if name not in missing}
    settings = Settings.from_env(env)
    with pytest.raises(ConfigError) as caught:
        settings.require_serving_secrets()
    message = str(caught.value)
    assert first_named in message
    for other in set(SECRETS) - {first_named}:
        assert other not in message
    for secret in SECRETS.values():
        assert secret not in message


def test_require_serving_secrets_treats_empty_as_missing() -> None:
    settings = Settings.from_env({**SECRETS, "WORKFLOW_ENGINE_INTERNAL_PSK": ""})
    with pytest.raises(ConfigError, match="WORKFLOW_ENGINE_INTERNAL_PSK"):
        settings.require_serving_secrets()


def test_require_serving_secrets_rejects_short_secret_key() -> None:
    short = "short-secret-key-abcdefghijklmn"
    assert len(short) == MIN_SECRET_KEY_LENGTH - 1
    settings = Settings.from_env({**SECRETS, "ENGINE_SECRET_KEY": short})
    with pytest.raises(ConfigError) as caught:
        settings.require_serving_secrets()
    message = str(caught.value)
    assert "ENGINE_SECRET_KEY" in message
    assert "32" in message
    assert short not in message


def test_require_serving_secrets_accepts_exactly_min_length_key() -> None:
    assert MIN_SECRET_KEY_LENGTH == 32
    Settings.from_env({**SECRETS, "ENGINE_SECRET_KEY": "x" * 32}).require_serving_secrets()


def test_repr_and_str_never_show_secrets() -> None:
    settings = Settings.from_env(SECRETS)
    for text in (repr(settings), str(settings), repr(settings.master_api_key), f"{settings.secret_key}"):
        for secret in SECRETS.values():
            assert secret not in text
    assert "**********" in repr(settings)
    # Non-secret settings are still shown, so the repr stays useful.
    assert "127.0.0.1:50051" in repr(settings)


def test_secret_str_hides_value_but_compares_by_value() -> None:
    secret = SecretStr("hunter2")
    assert secret.get() == "hunter2"
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert secret == SecretStr("hunter2")
    assert secret != SecretStr("hunter3")
    assert secret != "hunter2"
    assert hash(secret) == hash(SecretStr("hunter2"))
    assert bool(secret) and not bool(SecretStr(""))
    assert repr(SecretStr("")) == "SecretStr('')"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.grpc_workers = 1  # type: ignore[misc]
