"""Every renderer keeps outside text inert: hostile values in every field of a plan, shown escaped (terminal),
exact (JSON), as code (markdown, checked with GitHub's renderer), marked when they break the vendor's rules."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.inert import inert, md_code
from reconciler.plan import (
    Action,
    BindingChange,
    BindingValues,
    Change,
    Plan,
    Resource,
    SignatureChange,
    SignatureValues,
    summarize,
)
from reconciler.render.plan import render_compact, render_json, render_markdown, render_text
from reconciler.review import BaseComparison, Label, Review
from tests.support.hostile import HOSTILE, html_text, markdown_findings, raw_controls, render_github, runner_commands

GROUP = "0009db9c828549768a200320714b8930"
API = "a0000000000000000000000000000001"


def _plan(name: str = "orders_backend", key: str = "ordersKey01", api_name: str = "orders_list", api_id: str = API,
          group: str = GROUP, signature: str = "orders_backend", region: str = "cn-hangzhou",
          source: str = "manifests/m.yaml:3", base: str | None = "origin/main",
          targets: tuple[str, ...] | None = ("group=*",), group_name: str | None = "orders") -> Review:
    """A plan with every action, each field set from the arguments (so a test puts a value in all of them), as
    reviewed against `base` and narrowed to `targets`."""
    sig = SignatureValues(name=name, key=key, secret="(sensitive value)")
    other = SignatureValues(name=name, key=key + "2", secret="(sensitive value)")

    def bound(to: str) -> BindingValues:
        return BindingValues(group=group, stage="RELEASE", api_id=api_id, api_name=api_name, signature=to)

    def change(action: Action, resource: Resource, before: SignatureValues | BindingValues | None,
               after: SignatureValues | BindingValues | None, label: Label, changed: tuple[str, ...] = (),
               still_bound: tuple[BindingValues, ...] | None = None) -> Change:
        address = (f"signature.{region}.{name}" if resource is Resource.SIGNATURE
                   else f"binding.{region}.{group}.RELEASE.{api_id}")
        # Each change its own address, as in any plan (labels go by address): the first create and unbind keep
        # the address their values make.
        if (action, label) not in ((Action.CREATE, Label.INTRODUCED), (Action.UNBIND, Label.INTRODUCED)):
            address += f".{action.value}"
        labels[address] = label
        if resource is Resource.SIGNATURE:
            assert not isinstance(before, BindingValues) and not isinstance(after, BindingValues)
            return SignatureChange(action=action, resource=resource, address=address, region=region, before=before,
                                   after=after, changed=changed, source=source, still_bound=still_bound)
        assert not isinstance(before, SignatureValues) and not isinstance(after, SignatureValues)
        return BindingChange(action=action, resource=resource, address=address, region=region, before=before,
                             after=after, changed=changed, source=source)

    labels: dict[str, Label] = {}

    changes = (
        change(Action.CREATE, Resource.SIGNATURE, None, sig, Label.INTRODUCED),
        change(Action.UPDATE, Resource.SIGNATURE, sig, other, Label.DRIFT, ("key", "secret")),
        change(Action.DELETE, Resource.SIGNATURE, sig, None, Label.INTRODUCED),
        change(Action.UNMANAGED, Resource.SIGNATURE, sig, None, Label.DRIFT),
        change(Action.DELETE_BLOCKED, Resource.SIGNATURE, sig, None, Label.INTRODUCED,
               still_bound=(bound(name), bound(signature), bound(name), bound(name))),
        change(Action.REBIND, Resource.BINDING, bound(signature), bound(name), Label.INTRODUCED, ("signature",)),
        change(Action.BIND, Resource.BINDING, None, bound(signature), Label.DRIFT),
        change(Action.UNBIND, Resource.BINDING, bound(signature), None, Label.INTRODUCED),
        change(Action.UNBIND, Resource.BINDING, bound(name), None, Label.RESOLVED),
    )
    pending = changes[:-1]
    plan = Plan(regions=(region,), secrets_checked=False, changes=pending, summary=summarize(pending, 3),
                group_names={group: group_name} if group_name else None)
    comparison = None if base is None else BaseComparison(
        name=base, labels={a: label for a, label in labels.items() if label is not Label.RESOLVED},
        resolved=changes[-1:], regions=(region,))
    return Review(plan, base=comparison, targets=targets)


def _every_field(value: str) -> Review:
    return _plan(name=value, key=value, api_name=value, api_id=value, group=value, signature=value, region=value,
                 source=value, base=value, targets=(value,), group_name=value)


_SGR = re.compile("\x1b\\[[0-9;]*m")


def _assert_terminal_inert(text: str) -> None:
    assert raw_controls(text) == []
    assert runner_commands(text) == []


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_text_and_compact_show_every_value_escaped(name: str) -> None:
    value = HOSTILE[name]
    for render in (render_text, render_compact):
        text = render(_every_field(value), color=False)
        _assert_terminal_inert(text)
        assert inert(value) in text
        # Colour adds our own SGR sequences and nothing else.
        assert _SGR.sub("", render(_every_field(value), color=True)) == text


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_json_carries_every_value_exactly_and_escaped(name: str) -> None:
    value = HOSTILE[name]
    text = render_json(_every_field(value))
    _assert_terminal_inert(text)
    document = json.loads(text)
    assert document["base"] == value and document["targets"] == [value]
    assert {c["before"]["name"] for c in document["changes"] if c["resource"] == "signature" and c["before"]} \
        == {value}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("max_chars", [None, 1_500])
def test_markdown_keeps_every_value_in_code(name: str, max_chars: int | None) -> None:
    value = HOSTILE[name]
    plan = _every_field(value)
    markdown = render_markdown(plan) if max_chars is None else render_markdown(plan, max_chars=max_chars)
    assert markdown_findings(markdown) == []
    _, text, _ = html_text(render_github(markdown))
    assert inert(value) in text


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_markdown_without_base_or_targets(name: str) -> None:
    value = HOSTILE[name]
    plan = _plan(name=value, key=value, api_name=value, api_id=value, group=value, signature=value, base=None,
                 targets=None)
    assert markdown_findings(render_markdown(plan)) == []
    no_changes = Plan(regions=(value,), secrets_checked=True, changes=(), summary=summarize((), 0))
    assert markdown_findings(render_markdown(no_changes)) == []


def test_the_screen_clearing_api_name_is_shown_not_obeyed() -> None:
    text = render_text(_plan(api_name=HOSTILE["clear-screen"]))
    assert "\x1b" not in text
    assert ("  + bind   \\x1b[2J\\x1b[HNo changes. Live state matches the manifests. (not a valid API name) "
            f"({API}) -> orders_backend  [drift]") in text.splitlines()


def test_values_that_break_the_vendor_rules_are_marked_in_every_format() -> None:
    plan = _plan(name="bad name\u202e", key="k", api_name="x", api_id="not-an-id", group="payments", group_name=None)
    text = render_text(plan)
    assert '  # signature "bad name\\u202e" (not a valid signature name) will be created  (manifests/m.yaml:3)' \
           "  [introduced]" in text
    assert '      + key    = "k" (not a valid key)' in text
    assert "  # bindings in group payments (not a valid group id), stage RELEASE" in text
    assert ("  - unbind x (not a valid API name) (not-an-id (not a valid API id)) from orders_backend  [introduced]"
            in text)
    compact = render_compact(plan)
    assert ("- unbind    binding.cn-hangzhou.payments.RELEASE.not-an-id (not a valid group id) (not a valid API id) "
            "x (not a valid API name) from orders_backend  [introduced]") in compact
    markdown = render_markdown(plan)
    assert ("| **unbind** | binding | `binding.cn-hangzhou.payments.RELEASE.not-an-id` (not a valid group id) "
            "(not a valid API id) | `x (not-an-id)` (not a valid API name) (not a valid API id) from "
            "`orders_backend` (RELEASE) |") in markdown
    assert "(group `payments` (not a valid group id), RELEASE, cn-hangzhou)" in markdown


def test_ordinary_values_are_not_marked() -> None:
    plan = _plan(api_name="订单查询")
    for text in (render_text(plan), render_compact(plan), render_markdown(plan)):
        assert "not a valid" not in text


@pytest.mark.parametrize(("value", "span"), [
    ("plain", "`plain`"),
    ("a`b", "``a`b``"),
    ("a``b`", "``` a``b` ```"),
    ("`x`", "`` `x` ``"),
    (" x ", "`  x  `"),
    ("", "` `"),
    ("a|b", "`a|b`"),
])
def test_code_spans_are_longer_than_any_backtick_run(value: str, span: str) -> None:
    assert md_code(value) == span
    html = render_github(f"see {span} here")
    assert html == f"<p>see <code>{value.replace('&', '&amp;') or ' '}</code> here</p>\n"


def test_a_pipe_stays_in_its_table_cell() -> None:
    cell = md_code("x|y\\|z", in_table=True)
    html = render_github(f"| a | b |\n|---|---|\n| {cell} | after |\n")
    assert "<td><code>x|y\\|z</code></td>\n<td>after</td>" in html


def test_inert_escapes_each_kind_of_control_and_leaves_text_alone() -> None:
    assert inert("a\x1b[2Jb\x07\x00\x7f\x9b\t\r\n") == "a\\x1b[2Jb\\x07\\x00\\x7f\\x9b\\t\\r\\n"
    assert inert("\u202e\u2066\u2069\u200e\u200f\u061c\u2028\u2029\u200b\ufeff\U000e0041") == (
        "\\u202e\\u2066\\u2069\\u200e\\u200f\\u061c\\u2028\\u2029\\u200b\\ufeff\\U000e0041")
    assert inert("\udcff\u3164") == "\\udcff\\u3164"
    for ordinary in ("orders_backend", "订单签名_01", "manifests/m.yaml:3", "Ünïcödé façade", "a\\b"):
        assert inert(ordinary) == ordinary


# Any character, lone surrogates included (a file name read with surrogateescape holds them).
# Markdown's own characters, often, to reach the corners of code spans, tables and autolinks.
_FIELD_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40) | \
    st.text(alphabet="`*_[]()<>!@#:/|\\~&;.= \n\twhtps0", max_size=30) | \
    st.sampled_from(sorted(HOSTILE.values()))


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({field: _FIELD_TEXT for field in (
    "name", "key", "api_name", "api_id", "group", "signature", "region", "source", "base", "group_name")}),
    st.lists(_FIELD_TEXT, max_size=2))
def test_renderers_never_fail_nor_let_text_out_raw(fields: dict[str, str], targets: list[str]) -> None:
    plan = _plan(**fields, targets=tuple(targets) if targets else None)
    for text in (render_text(plan), render_compact(plan)):
        _assert_terminal_inert(text)
    json.loads(render_json(plan))
    markdown = render_markdown(plan)
    assert markdown_findings(markdown) == []
    _, text, _ = html_text(render_github(markdown))
    assert inert(fields["name"]) in text and inert(fields["api_name"]) in text
    assert markdown_findings(render_markdown(plan, max_chars=1_200)) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_inert_is_one_line_idempotent_and_keeps_printable_text(text: str) -> None:
    shown = inert(text)
    assert raw_controls(shown) == [] and "\n" not in shown
    assert inert(shown) == shown
    if not raw_controls(text) and "\n" not in text:
        assert shown == text
