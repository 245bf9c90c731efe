"""The provider base: settings validated at config load, one guard for SDK calls, readiness polling."""

from __future__ import annotations

import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from farm.config import parse_config
from farm.errors import ConfigError
from providers import spec_of, validate_settings
from providers.base import Provider, ProviderError
from providers.errors import Failure, retry_after_seconds
from providers.polling import poll_until
from providers.spec import ProviderSettings, ProviderSpec


class ToySettings(ProviderSettings):
    region: str = "eu"


class Toy(Provider):
    spec = ProviderSpec(name="toy", adapter="tests.test_provider_base:Toy", settings=ToySettings,
                        credentials=("TOY_API_KEY",), credential_hint="get one from toy.example")

    def classify(self, exc):
        if isinstance(exc, LookupError):
            return Failure("not_found", f"gone: {exc}", 404)
        return super().classify(exc)


class SDKWrapped(Exception):
    """An SDK that catches everything and re-raises its own type, as Daytona's does."""


def test_bad_provider_setting_fails_at_config_load_with_did_you_mean():
    with pytest.raises(ConfigError, match=r"providers\.morph\.snapshot_idd is not a setting \(did you mean 'snapshot_id'\?\)"):
        parse_config({"providers": {"morph": {"snapshot_idd": "x"}}})
    with pytest.raises(ConfigError, match=r"providers\.modal\.python: must be quoted"):
        parse_config({"providers": {"modal": {"python": 3.1}}})
    with pytest.raises(ConfigError, match=r"providers\.nope: unknown provider 'nope'"):
        parse_config({"providers": {"nope": {}}})
    with pytest.raises(ConfigError, match=r"finite"):
        parse_config({"providers": {"e2b": {"sandbox_timeout": float("inf")}}})


def test_every_registered_provider_declares_itself_without_its_sdk():
    for name in ("local", "sim", "daytona", "e2b", "modal", "morph", "codesandbox"):
        spec = spec_of(name)
        assert spec.name == name
        validate_settings(name, {})  # defaults are valid for every provider


def test_credentials_are_checked_by_the_base(monkeypatch):
    monkeypatch.delenv("TOY_API_KEY", raising=False)
    with pytest.raises(ProviderError, match=r"toy: TOY_API_KEY is not set: get one from toy.example") as info:
        Toy().check()
    assert info.value.error_class == "auth"


def test_guard_classifies_and_scrubs_credentials(monkeypatch):
    monkeypatch.setenv("TOY_API_KEY", "tk-123456")
    toy = Toy({"region": "us"})
    assert toy.settings.region == "us"
    with pytest.raises(ProviderError) as info:
        with toy.guard("create"):
            raise LookupError("sandbox tk-123456 missing\nsecond line")
    assert info.value.error_class == "not_found" and info.value.status == 404
    assert str(info.value) == "toy create: gone: sandbox *** missing second line"


def test_guard_lets_harness_exceptions_through_even_when_an_sdk_wraps_them():
    toy = Toy()
    with pytest.raises(SoftTimeLimitExceeded):
        with toy.guard("create"):
            raise SoftTimeLimitExceeded()
    with pytest.raises(SoftTimeLimitExceeded):
        with toy.guard("create"):
            try:
                raise SoftTimeLimitExceeded()
            except SoftTimeLimitExceeded as exc:
                raise SDKWrapped("request failed") from exc
    with pytest.raises(KeyboardInterrupt):
        toy.call("run", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))


def test_status_and_retry_after_from_any_exception_shape():
    class HTTPish(Exception):
        status_code = 429
        headers = {"Retry-After": "2.5"}

    toy = Toy()
    err = toy.error("create", HTTPish("slow down"))
    assert (err.error_class, err.status, err.retry_after) == ("rate_limited", 429, 2.5)
    assert toy.error("run", TimeoutError("read timed out")).error_class == "timeout"
    assert toy.error("run", ConnectionRefusedError("refused")).error_class == "network"
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("soon") is None


def test_poll_until_sees_readiness_within_its_resolution():
    ready_at = time.perf_counter() + 0.2
    polled = poll_until(lambda: True if time.perf_counter() >= ready_at else None, timeout=5, what="boot",
                        max_s=0.025)
    late_ms = (time.perf_counter() - ready_at) * 1000
    assert polled.value is True and polled.polls > 1
    assert late_ms < 25 + 375  # resolution plus scheduling slack for load 8 on 2 cores (a 1 s poll: >= 800)
    with pytest.raises(ProviderError, match="boot: not ready after 0.05 s") as info:
        poll_until(lambda: None, timeout=0.05, what="boot")
    assert info.value.error_class == "timeout"
