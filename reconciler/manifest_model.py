"""The manifest file's model: what the JSON Schema of manifests is generated from, and what words every
validation error of a manifest.

Most manifests are checked by `manifest.check_manifest` (the same rules as one loop over plain values);
this module, and pydantic with it, is imported only where that check declines a file or for the schema:
a plan that parses its manifests in a child process (`readahead`) forks before importing pydantic, which
the child then does not need.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import ManifestError, raise_collected
from reconciler.inert import inert
from reconciler.manifest import ENV_REFERENCE, CheckedManifest, field_path
from reconciler.vendor_rules import (
    MANAGED_STAGES,
    REGION_RULE,
    RESOURCE_ID_RULE,
    SIGNATURE_KEY_HINT,
    SIGNATURE_KEY_RULE,
    SIGNATURE_NAME_HINT,
    SIGNATURE_NAME_RULE,
    SIGNATURE_SECRET_HINT,
    SIGNATURE_SECRET_RULE,
    UNMANAGED_STAGE_HINT,
    Stage,
)
from reconciler.yamlsource import YamlDocument


def _rule(pattern: re.Pattern[str], what: str, help_text: str) -> AfterValidator:
    def check(value: str) -> str:
        if not value:
            raise ValueError(f"{what} must not be empty")
        if not pattern.fullmatch(value):
            raise ValueError(f"{what} {value!r} breaks the vendor's rule: {help_text}")
        return value

    return AfterValidator(check)


def _secret_field(value: str) -> str:
    if not value:
        raise ValueError("secret must not be empty")
    if "${" in value and not ENV_REFERENCE.fullmatch(value):
        raise ValueError("malformed reference: write the whole value as ${env:VARIABLE_NAME}")
    if not ENV_REFERENCE.fullmatch(value) and not SIGNATURE_SECRET_RULE.fullmatch(value):
        # The literal itself is never echoed.
        raise ValueError(f"literal secret breaks the vendor's rule: {SIGNATURE_SECRET_HINT}")
    return value


def _managed_stage(value: Stage) -> Stage:
    if value == "PRE":
        raise ValueError(f"stage PRE cannot be managed: {UNMANAGED_STAGE_HINT}")
    return value


def _region_field(value: str) -> str:
    if not REGION_RULE.fullmatch(value):
        raise ValueError(f"{value!r} is not a region id (e.g. cn-hangzhou)")
    return value


def _group_id(value: str) -> str:
    # A group is named by its id, never by its name: the id is what the API takes, and a value that is not
    # one would only reach the live state (and every message) as text from the pull request.
    if not RESOURCE_ID_RULE.fullmatch(value):
        raise ValueError(f"must be an API group id (32 lowercase hex characters), not '{inert(value)}'")
    return value


def _nonempty(what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(f"{what} must not be empty")
        return value

    return AfterValidator(check)


def _schema(pattern: re.Pattern[str] | str, description: str) -> Any:
    """Publish a rule in the JSON Schema for editors; the check itself is the validator's."""
    text = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    return Field(description=description, json_schema_extra={"pattern": f"^(?:{text})$"})


SignatureName = Annotated[str, _rule(SIGNATURE_NAME_RULE, "signature name", SIGNATURE_NAME_HINT),
                          _schema(SIGNATURE_NAME_RULE, f"Signature name, unique in the region; {SIGNATURE_NAME_HINT}.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class SignatureSpec(_Strict):
    name: SignatureName
    key: Annotated[str, _rule(SIGNATURE_KEY_RULE, "key", SIGNATURE_KEY_HINT),
                   _schema(SIGNATURE_KEY_RULE, f"The SignatureKey; {SIGNATURE_KEY_HINT}.")]
    secret: Annotated[str, AfterValidator(_secret_field),
                      _schema(f"{ENV_REFERENCE.pattern}|{SIGNATURE_SECRET_RULE.pattern}",
                              "The SignatureSecret: ${env:VARIABLE} (recommended) or a literal; "
                              f"{SIGNATURE_SECRET_HINT}.")]


class BindingSpec(_Strict):
    group: Annotated[str, _nonempty("group"), AfterValidator(_group_id),
                     _schema(RESOURCE_ID_RULE, "API group id (32 lowercase hex characters).")]
    stage: Annotated[Stage, AfterValidator(_managed_stage),
                     Field(description="RELEASE or TEST (PRE bindings cannot be read back or removed).",
                           json_schema_extra={"enum": list(MANAGED_STAGES)})]
    signature: SignatureName
    apis: Annotated[list[Annotated[str, _nonempty("API id or name")]],
                    Field(min_length=1, description="API ids (32 hex characters) or API names in the group.")]


# What the JSON Schema offers editors for a required stage: PRE is refused with a FILE:LINE error (see _stages).
_REQUIRABLE_STAGES: dict[str, Any] = {"enum": list(MANAGED_STAGES), "type": "string"}


class ManifestFile(_Strict):
    """One manifest file as written; the JSON Schema of manifests is generated from this model."""

    region: Annotated[str, AfterValidator(_region_field),
                      _schema(REGION_RULE, "Region id, e.g. cn-hangzhou.")]
    prune: bool | None = Field(
        default=None, description="true: signatures live in the region but in no manifest are deleted.")
    ignore: list[Annotated[str, _nonempty("ignore pattern")]] = Field(
        default=[], description="Signature names or globs never reported (nor their bindings unbound).")
    signatures: list[SignatureSpec] = []
    bindings: list[BindingSpec] = []
    require_signature: list[Stage] = Field(
        default=[], description="Stages (RELEASE, TEST) in which every published API of every group of the region "
                                "must have a backend signature bound (plan and scan report each one that does not).",
        json_schema_extra={"items": _REQUIRABLE_STAGES, "uniqueItems": True})
    require_signature_by_group: dict[str, list[Stage]] = Field(
        default={}, description="Per API group id: the stages that replace require_signature for that group "
                                "([] exempts it).",
        json_schema_extra={"propertyNames": {"pattern": f"^{RESOURCE_ID_RULE.pattern}$"},
                           "additionalProperties": {"type": "array", "items": _REQUIRABLE_STAGES,
                                                    "uniqueItems": True}})


_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
               "list": "a list", "dict": "a mapping", "NoneType": "nothing (null)"}


def _describe(value: Any) -> str:
    return _TYPE_NAMES.get(type(value).__name__, type(value).__name__)


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    loc = err["loc"]
    if kind == "extra_forbidden":
        return f"unknown field '{loc[-1]}'"
    if kind == "missing":
        return "required field is missing"
    if kind == "too_short":
        return "must list at least one item"
    if kind == "literal_error":
        return f"must be RELEASE or TEST (got {err['input']!r})"
    if kind in ("string_type", "bool_type", "list_type", "model_type", "dict_type", "model_attributes_type"):
        expected = {"string_type": "a string", "bool_type": "true or false", "list_type": "a list",
                    "model_type": "a mapping", "dict_type": "a mapping",
                    "model_attributes_type": "a mapping"}[kind]
        hint = " (quote it)" if kind == "string_type" and isinstance(err["input"], int | float | bool) else ""
        return f"expected {expected}, got {_describe(err['input'])}{hint}"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def validated(doc: YamlDocument) -> CheckedManifest:
    """`doc`'s value validated by `ManifestFile`, where `check_manifest` declined it; raises a ManifestError (or
    ManifestErrors) for each field that breaks a rule, with its line (from the exact reading of the document)."""
    if not doc.exact:
        try:
            return CheckedManifest.of(ManifestFile.model_validate(doc.data))
        except ValidationError:
            doc = doc.exactly()  # the exact reading decides what is wrong, and where
    if not isinstance(doc.data, dict):
        raise ManifestError(doc.path, doc.line_of(()), None,
                            f"a manifest must be a mapping with 'region', got {_describe(doc.data)}")
    try:
        return CheckedManifest.of(ManifestFile.model_validate(doc.data))
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            loc = err["loc"]
            # A missing field is reported at its parent; an unknown one at itself.
            line = doc.line_of(loc if err["type"] != "missing" else loc[:-1])
            found.append(ManifestError(doc.path, line, field_path(loc), _message(err)))
        raise_collected(found)
        raise  # unreachable: a ValidationError has at least one error
