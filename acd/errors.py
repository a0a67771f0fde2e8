"""Typed errors. A command that raises one has changed nothing."""

from __future__ import annotations

from dataclasses import dataclass


class AcdError(Exception):
    """A command that makes no sense in the current state. `code` is stable for API problem types."""

    code = "acd-error"


class UnknownAgent(AcdError):
    code = "unknown-agent"


class UnknownQueue(AcdError):
    code = "unknown-queue"


class UnknownContact(AcdError):
    code = "unknown-contact"


class DuplicateContact(AcdError):
    code = "duplicate-contact"


class InvalidTransition(AcdError):
    """E.g. complete a contact twice, hold a contact that is still queued."""

    code = "invalid-transition"


class OfferExpired(InvalidTransition):
    code = "offer-expired"


class NotYourContact(InvalidTransition):
    code = "not-your-contact"


class WrapUpCodeRequired(AcdError):
    code = "wrap-up-code-required"


class InvalidWrapUpCode(AcdError):
    code = "invalid-wrap-up-code"


class InvalidReason(AcdError):
    code = "invalid-reason"


class AgentHasWork(InvalidTransition):
    code = "agent-has-work"


class InvalidContact(AcdError):
    """A contact that could never be routed: unknown skill, level out of range, channel nobody takes."""

    code = "invalid-contact"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str  # dotted path into the configuration, e.g. "queues.bylaw.steps[1].after_s"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """The configuration is impossible; every problem found is listed, each naming its field."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))
