"""Everything that shapes one fake: seed, timing profile, clock, keys and limits.

>>> MockConfig(seed=7, profile="instant").profile_timing().name
'instant'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .catalog import PROFILES, Profile
from .delivery import DeliveryPolicy, Fault, FaultRule
from .signing import check_secret

__all__ = ["Chaos", "KeyPolicy", "KeyState", "MockConfig"]

#: 7 days: how long outputs are kept (docs).
OUTPUT_TTL = 604_800
#: How long an Idempotency-Key is remembered (sdk: "about 24 h").
IDEMPOTENCY_WINDOW = 86_400
#: Retry-After of a 409 while the first request with a key is in flight (sdk: "about 5 s").
IDEMPOTENCY_RETRY_AFTER = 5
#: 10 MB body limit (docs); read as MiB (assumed).
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Chaos:
    """Randomised bad days, drawn from the seed: shares of `/v1` requests answered 429 or 503,
    and of callbacks given each fault (by fault name: drop, duplicate, delay, ...)."""

    rate_429: float = 0.0
    rate_503: float = 0.0
    callback_faults: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rates = [self.rate_429, self.rate_503, *self.callback_faults.values()]
        if any(not 0 <= r <= 1 for r in rates):
            raise ValueError("chaos rates must be between 0 and 1")
        if self.rate_429 + self.rate_503 > 1 or sum(self.callback_faults.values()) > 1:
            raise ValueError("chaos rates of one kind must add up to at most 1")
        known = {f.value for f in Fault}
        unknown = set(self.callback_faults) - known
        if unknown:
            raise ValueError(f"unknown callback fault(s) {', '.join(sorted(unknown))}")

    @property
    def active(self) -> bool:
        return bool(self.rate_429 or self.rate_503)


class KeyState(Enum):
    ACTIVE = "active"
    REVOKED = "revoked"  # 401
    FORBIDDEN = "forbidden"  # 403


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What one API key may do. `balance` counts tasks it can still create (None: unlimited)."""

    state: KeyState = KeyState.ACTIVE
    balance: int | None = None
    webhook_secret: str | None = None

    def __post_init__(self) -> None:
        if self.webhook_secret is not None:
            check_secret(self.webhook_secret)


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
    webhook_secret: str | None = None  # signs every key's callbacks unless the key has its own
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    callback_https_only: bool = False
    callback_hosts: tuple[str, ...] = ()  # when set, the only hosts callbacks may go to
    callback_faults: tuple[FaultRule, ...] = ()
    chaos: Chaos = field(default_factory=Chaos)
    journal_size: int = 10_000
    control_token: str | None = None  # when set, the /_mock control API requires it
    rules: tuple[Mapping[str, Any], ...] = ()  # the starting scenario, in the control API's form

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
        if self.webhook_secret is not None:
            check_secret(self.webhook_secret)

    def signing_key(self, api_key: str) -> str | None:
        """The key that signs this API key's callbacks, if any."""
        policy = self.keys.get(api_key)
        if policy is not None and policy.webhook_secret is not None:
            return policy.webhook_secret
        return self.webhook_secret

    def callback_fault(self, url: str, prompt: str) -> FaultRule | None:
        return next((r for r in self.callback_faults if r.matches(url, prompt)), None)
