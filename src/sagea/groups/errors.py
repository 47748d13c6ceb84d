"""The one error of group sampling: a group kind or group set that cannot be formed."""

from __future__ import annotations


class GroupSamplingError(RuntimeError):
    """A group kind cannot be formed within the configured budget."""
