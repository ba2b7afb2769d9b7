"""Counters and a request log, so tests can assert on *how* the bridge used the API."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]  # lower-case names

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


@dataclass
class FakeWhopStats:
    calls_per_path: Counter[str] = field(default_factory=Counter)  # every request, by path
    responses: Counter[int] = field(default_factory=Counter)  # by status code
    api_calls: int = 0  # requests under /api/v1 (including ones answered with an injected error)
    served_429: int = 0
    served_5xx_injected: int = 0
    authorizations: int = 0  # consent pages approved
    codes_issued: int = 0
    tokens_issued: int = 0  # access tokens, from codes and refreshes
    refreshes: int = 0
    revocations: int = 0
    requests: deque[RecordedRequest] = field(default_factory=lambda: deque(maxlen=20_000))

    def reset(self) -> None:
        fresh = FakeWhopStats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def as_dict(self) -> dict[str, object]:
        return {
            "calls_per_path": dict(self.calls_per_path),
            "responses": {str(k): v for k, v in self.responses.items()},
            "api_calls": self.api_calls,
            "served_429": self.served_429,
            "served_5xx_injected": self.served_5xx_injected,
            "authorizations": self.authorizations,
            "codes_issued": self.codes_issued,
            "tokens_issued": self.tokens_issued,
            "refreshes": self.refreshes,
            "revocations": self.revocations,
        }
