"""Everything that shapes one fake: seed, timing profile, clock, keys and limits.

>>> MockConfig(seed=7, profile="instant").profile_timing().name
'instant'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from .catalog import PROFILES, Profile

__all__ = ["KeyPolicy", "KeyState", "MockConfig"]

#: 7 days: how long outputs are kept (docs).
OUTPUT_TTL = 604_800
#: How long an Idempotency-Key is remembered (sdk: "about 24 h").
IDEMPOTENCY_WINDOW = 86_400
#: Retry-After of a 409 while the first request with a key is in flight (sdk: "about 5 s").
IDEMPOTENCY_RETRY_AFTER = 5
#: 10 MB body limit (docs); read as MiB (assumed).
MAX_BODY_BYTES = 10 * 1024 * 1024


class KeyState(Enum):
    ACTIVE = "active"
    REVOKED = "revoked"  # 401
    FORBIDDEN = "forbidden"  # 403


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What one API key may do. `balance` counts tasks it can still create (None: unlimited)."""

    state: KeyState = KeyState.ACTIVE
    balance: int | None = None


@dataclass(slots=True)
class MockConfig:
    """The fake's settings. With `keys` empty, any `sk-...` key is accepted and is its own tenant;
    with `keys` set, only those keys exist."""

    seed: int = 0
    profile: str | Profile = "fast"
    failure_rate: float = 0.0
    keys: Mapping[str, KeyPolicy] = field(default_factory=dict)
    rate_limit: bool | None = None  # None: on in the realistic profile only
    requests_per_minute: int = 60
    concurrent_requests: int = 10
    max_body_bytes: int = MAX_BODY_BYTES
    public_url: str | None = None
    image_cache_bytes: int = 256 * 1024 * 1024

    def profile_timing(self) -> Profile:
        if isinstance(self.profile, Profile):
            return self.profile
        try:
            return PROFILES[self.profile]
        except KeyError:
            names = ", ".join(PROFILES)
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {names}") from None

    def rate_limit_enforced(self) -> bool:
        if self.rate_limit is not None:
            return self.rate_limit
        return self.profile_timing().name == "realistic"

    def __post_init__(self) -> None:
        self.profile_timing()
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
