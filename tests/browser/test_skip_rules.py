"""Without a browser the browser tests skip with install advice, except in CI, where they fail."""

from __future__ import annotations

import pytest

from .conftest import INSTALL_HINT, _unavailable, find_chromium


@pytest.mark.parametrize("ci", ["", "false"])
def test_outside_ci_a_missing_browser_skips_and_says_how_to_install(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        _unavailable("Chromium was not found")


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_in_ci_a_missing_browser_is_a_failure(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true") as failure:
        _unavailable("Chromium was not found")
    assert INSTALL_HINT in str(failure.value)


def test_an_explicit_browser_path_that_does_not_exist_counts_as_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("EVBROKER_CHROMIUM", str(tmp_path / "no-such-chromium"))
    assert find_chromium() is None
    fake = tmp_path / "chromium"
    fake.write_text("")
    monkeypatch.setenv("EVBROKER_CHROMIUM", str(fake))
    assert find_chromium() == str(fake)
