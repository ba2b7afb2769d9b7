"""The error the fake answers with, in the shapes real Twenty uses for each API and dialect."""

from __future__ import annotations

from typing import Any


class TwentyError(Exception):
    """One GraphQL error (message + extensions.code) that REST renders as a status + messages body."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT", /, *, status: int = 400, **extensions: Any):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extensions = extensions

    def graphql(self, path: list[str | int] | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message}
        if path is not None:
            error["path"] = path
        error["extensions"] = {"code": self.code, **self.extensions}
        return error

    def rest(self) -> tuple[int, dict[str, Any]]:
        # Observed on 1.x: {"statusCode":400,"error":"UserInputError","messages":[...]}.
        name = {
            "BAD_USER_INPUT": "UserInputError",
            "NOT_FOUND": "NotFoundException",
            "FORBIDDEN": "ForbiddenException",
            "UNAUTHENTICATED": "UNAUTHENTICATED",
            "CONFLICT": "ConflictException",
        }.get(self.code, "InternalServerError")
        return self.status, {"statusCode": self.status, "error": name, "messages": [self.message]}


def not_found(message: str) -> TwentyError:
    return TwentyError(message, "NOT_FOUND", status=404)


def metadata_invalid(
    dialect: str,
    kind: str,
    sub_code: str,
    message: str,
    *,
    value: Any = None,
    identity: dict[str, Any] | None = None,
    user_message: str | None = None,
    legacy_code: str = "BAD_USER_INPUT",
) -> TwentyError:
    """A metadata validation failure.

    2.x (flat-entity validators) answers METADATA_VALIDATION_FAILED with the per-entity report the
    fact sheet describes; 1.x (pre-v2 services) threw plain exceptions mapped to UserInputError or
    ConflictError, carrying the exception code as `subCode`.
    """
    friendly = user_message or message
    if dialect == "1.x":
        return TwentyError(message, legacy_code, subCode=sub_code, userFriendlyMessage=friendly)
    entry = {"code": sub_code, "message": message, "value": value, "userFriendlyMessage": friendly}
    report: dict[str, list[dict[str, Any]]] = {"objectMetadata": [], "fieldMetadata": []}
    report[kind].append({**(identity or {}), "errors": [entry]})
    invalid_objects = len(report["objectMetadata"])
    invalid_fields = len(report["fieldMetadata"])
    summary = {
        "invalidObjectMetadata": invalid_objects,
        "invalidFieldMetadata": invalid_fields,
        "invalidView": 0,
        "invalidViewField": 0,
        "invalidViewGroup": 0,
        "invalidIndex": 0,
        "totalErrors": 1,
    }
    overall = f"Validation failed for {invalid_objects} object(s) and {invalid_fields} field(s)"
    return TwentyError(
        overall,
        "METADATA_VALIDATION_FAILED",
        errors=report,
        summary=summary,
        message=overall,
        userFriendlyMessage=friendly,
    )
