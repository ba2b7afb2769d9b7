"""Twenty's naming rules, tag colours and composite shapes, as the fake enforces them.

Written from /work/shared/research/twenty-api.md (2.x) and twenty-observed.md (1.x). Kept apart
from the bridge's own copy on purpose: a fake that imports the code under test shares its bugs.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

Dialect = str  # "1.x" | "2.x"
DIALECTS: Final = ("1.x", "2.x")

NAME_RE: Final = re.compile(r"^[a-z][a-zA-Z0-9]*$")
SELECT_VALUE_RE: Final = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
MAX_IDENTIFIER: Final = 63  # PostgreSQL's identifier limit, Twenty's IDENTIFIER_MAX_CHAR_LENGTH

TAG_COLORS: Final = frozenset(
    "red ruby crimson tomato orange amber yellow lime grass green jade mint turquoise cyan sky blue "
    "iris violet purple plum pink bronze gold brown gray".split()
)

# twenty-shared RESERVED_METADATA_NAME_KEYWORDS plus the words the input DTO refuses.
RESERVED_NAMES: Final = frozenset(
    """approvedAccessDomain approvedAccessDomains appToken appTokens billingCustomer billingCustomers
    billingEntitlement billingEntitlements billingMeter billingMeters billingPrice billingPrices
    billingProduct billingProducts billingSubscription billingSubscriptions billingSubscriptionItem
    billingSubscriptionItems featureFlag featureFlags job jobs keyValuePair keyValuePairs pageLayout
    pageLayouts pageLayoutTab pageLayoutTabs pageLayoutWidget pageLayoutWidgets postgresCredential
    postgresCredentials twoFactorMethod twoFactorMethods user users userWorkspace userWorkspaces
    workspace workspaces role roles userWorkspaceRole userWorkspaceRoles plan plans event events field
    fields link links currency currencies fullNames address addresses type types object objects index
    relation relations aggregate not or and Int Float Boolean String ID""".split()
)
FORBIDDEN_NAME_CHARS: Final = frozenset("'\"\\;.=*/")

# Sub-fields of each composite type with the value an unset sub-field reads as.
_COMPOSITES_COMMON: Final[dict[str, dict[str, Any]]] = {
    "FULL_NAME": {"firstName": "", "lastName": ""},
    "EMAILS": {"primaryEmail": "", "additionalEmails": None},
    "LINKS": {"primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": None},
    "PHONES": {
        "primaryPhoneNumber": "",
        "primaryPhoneCountryCode": "",
        "primaryPhoneCallingCode": "",
        "additionalPhones": None,
    },
    "CURRENCY": {"amountMicros": None, "currencyCode": ""},
    "ADDRESS": {
        "addressStreet1": "",
        "addressStreet2": "",
        "addressCity": "",
        "addressState": "",
        "addressCountry": "",
        "addressPostcode": "",
        "addressLat": None,
        "addressLng": None,
    },
    "ACTOR": {"source": "MANUAL", "workspaceMemberId": None, "name": "", "context": {}},
}
_RICH: Final = {"blocknote": None, "markdown": None}


def composite_subfields(dialect: Dialect, field_type: str) -> dict[str, Any] | None:
    """Sub-fields and their defaults, or None when the type is not composite in this dialect.

    1.x calls the block-note type RICH_TEXT_V2 (RICH_TEXT is a plain string there); 2.x renamed it
    RICH_TEXT, and RICH_TEXT_V2 is no longer in its FieldMetadataType enum.
    """
    if field_type in _COMPOSITES_COMMON:
        return _COMPOSITES_COMMON[field_type]
    if (dialect == "1.x" and field_type == "RICH_TEXT_V2") or (dialect == "2.x" and field_type == "RICH_TEXT"):
        return _RICH
    return None


COMPOSITE_TYPENAMES: Final = {
    "FULL_NAME": "FullName",
    "EMAILS": "Emails",
    "LINKS": "Links",
    "PHONES": "Phones",
    "CURRENCY": "Currency",
    "ADDRESS": "Address",
    "ACTOR": "Actor",
    "RICH_TEXT_V2": "RichTextV2",
    "RICH_TEXT": "RichText",
}

# The sub-field a unique composite is matched on (Twenty's unique index covers only this column).
UNIQUE_SUBFIELD: Final = {"EMAILS": "primaryEmail", "LINKS": "primaryLinkUrl", "PHONES": "primaryPhoneNumber"}

UNIQUE_CAPABLE_TYPES: Final = frozenset(
    "UUID TEXT PHONES EMAILS DATE_TIME DATE BOOLEAN NUMBER NUMERIC LINKS CURRENCY FULL_NAME ADDRESS "
    "RAW_JSON RICH_TEXT ACTOR ARRAY".split()
)
NOT_CREATABLE_TYPES: Final = frozenset({"TS_VECTOR", "POSITION", "ACTOR", "MORPH_RELATION"})


def words(text: str) -> list[str]:
    """Split like lodash `words` does for ASCII: case changes, digits and separators all split."""
    return re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", text)


def camel_case(text: str) -> str:
    parts = words(text)
    if not parts:
        return ""
    return parts[0].lower() + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:])


def name_from_label(label: str) -> str:
    """computeMetadataNameFromLabel: the camelCase of the label ("Opportunities" -> "opportunities")."""
    ascii_label = re.sub(r"[^A-Za-z0-9]+", " ", label)
    return camel_case(ascii_label)


def name_problem(name: str) -> tuple[str, str] | None:
    """(sub-code, message) when `name` breaks Twenty's metadata naming rules, else None."""
    if not name:
        return ("INVALID_NAME", "Name is required")
    if len(name) > MAX_IDENTIFIER:
        return ("NAME_TOO_LONG", f'Name "{name}" exceeds {MAX_IDENTIFIER} characters')
    if any(c in FORBIDDEN_NAME_CHARS for c in name) or not NAME_RE.match(name):
        return ("INVALID_NAME", f'Name "{name}" should be in camelCase (^[a-z][a-zA-Z0-9]*$)')
    if camel_case(name) != name:
        return ("INVALID_NAME", f'Name "{name}" should be in camelCase')
    if name in RESERVED_NAMES:
        return ("RESERVED_KEYWORD", f'Name "{name}" is reserved and cannot be used')
    return None


def is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def option_problems(options: object, *, require_ids: bool) -> list[str]:
    """Every reason a SELECT / MULTI_SELECT option list is refused (empty list when it is fine)."""
    if not isinstance(options, list) or not options:
        return ["Options are required for enum fields"]
    problems: list[str] = []
    seen: dict[str, set[object]] = {"id": set(), "value": set(), "position": set()}
    for option in options:
        if not isinstance(option, dict):
            problems.append(f"Option {option!r} must be an object")
            continue
        value, label, color = option.get("value"), option.get("label"), option.get("color")
        if not isinstance(value, str) or not (1 <= len(value) <= MAX_IDENTIFIER):
            problems.append(f"Option value {value!r} must be 1 to {MAX_IDENTIFIER} characters")
        elif not SELECT_VALUE_RE.match(value) or "__" in value:
            problems.append(f'Value must be in UPPER_CASE and follow snake_case "{value}"')
        if not isinstance(label, str) or not (1 <= len(label) <= MAX_IDENTIFIER):
            problems.append(f"Option label {label!r} must be 1 to {MAX_IDENTIFIER} characters")
        elif "," in label:
            problems.append(f'Label must not contain a comma "{label}"')
        if color is not None and color not in TAG_COLORS:
            problems.append(f'Option color "{color}" is not a valid tag color')
        option_id = option.get("id")
        if option_id is None:
            if require_ids:
                problems.append(f'Option "{value}" has no id; every option needs a UUID id on update')
        elif not is_uuid(option_id):
            problems.append(f'Option id "{option_id}" is not a valid UUID')
        for key in ("id", "value", "position"):
            item = option.get(key)
            if item is None:
                continue
            if item in seen[key]:
                problems.append(f"Duplicate option {key} {item!r}")
            seen[key].add(item)
    return problems


def unquote_default(value: object) -> object:
    """SQL-quoted defaults ("'NEW'") read as their inner value; everything else as itself."""
    if isinstance(value, str):
        match = re.fullmatch(r"""['"](.*)['"]""", value, flags=re.S)
        if match:
            return match.group(1)
    return value
