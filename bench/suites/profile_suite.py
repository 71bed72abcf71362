"""A suite whose protocol follows a named profile (:mod:`bench.profiles`): option ``profile``.

The profile's per-metric options become the suite's :meth:`metric_options` (``--metric-args`` still win, and
are then reported as breaking comparability), its crop rounding is the evaluation transform's unless
``eval_crop_rounding`` is given, and ``protocol()["profile"]`` records its name, settings and quirks.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.metrics.preprocess import Preprocess
from bench.options import Option
from bench.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile, override_issues
from bench.suites.base import Suite


class ProfiledSuite(Suite):
    """Base of suites that take ``profile=NAME``."""

    options = {"profile": Option(DEFAULT_PROFILE, str, tuple(PROFILES), "protocol profile (bench list profiles)")}

    @property
    def profile(self) -> Profile:
        return get_profile(self.args["profile"])

    def metric_options(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.profile.metrics)

    def preprocess(self) -> Preprocess:
        return Preprocess.from_args(self.args, crop_rounding=self.profile.crop_rounding)

    def preprocess_deviations(self) -> list[str]:
        """How the evaluation transform departs from the profile's."""
        got, want = self.preprocess().as_dict(), Preprocess(crop_rounding=self.profile.crop_rounding).as_dict()
        return [f"evaluation transform {k}={got[k]} instead of the {self.profile.name} profile's {want[k]}"
                for k in want if got.get(k, want[k]) != want[k]]

    def profile_deviations(self, metric_overrides: dict[str, dict[str, Any]] | None) -> list[str]:
        """Transform deviations plus one line per ``--metric-args`` option that overrides the profile."""
        return self.preprocess_deviations() + override_issues(self.profile, metric_overrides)

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "profile": self.profile.record()}
