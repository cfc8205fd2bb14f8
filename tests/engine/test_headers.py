"""Each file's headers: the run's, the type by extension, and the header rules (the last matching one wins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_uploader.engine.headers import HeaderPlanner, parse_header_rule, read_header_rules, refused_fields
from async_uploader.errors import ConfigError
from async_uploader.providers.base import CONTENT_HEADER_FIELDS, ObjectHeaders


def planner(*rules: str, guess: bool = True, run: ObjectHeaders | None = None) -> HeaderPlanner:
    return HeaderPlanner(run or ObjectHeaders(), guess=guess, rules=[parse_header_rule(r) for r in rules])


def test_types_by_extension_are_one_instance_per_extension() -> None:
    plan = planner()
    first, second = plan.for_file("a.html", "p/a.html"), plan.for_file("b/c.HTML", "p/b/c.HTML")
    assert first.content_type == "text/html"
    assert first is second
    assert plan.for_file("x", "p/x").content_type == "application/octet-stream"


def test_the_last_matching_rule_wins_for_each_header() -> None:
    plan = planner(
        "**:Cache-Control: max-age=300",
        "assets/**:Cache-Control: max-age=31536000, immutable",
        "*.html:Cache-Control: no-cache",
        "*.html:content-type: text/html; charset=utf-8",
        "**:Content-Language: en",
    )
    index = plan.for_file("index.html", "index.html")
    assert (index.cache_control, index.content_type, index.content_language) == (
        "no-cache",
        "text/html; charset=utf-8",
        "en",
    )
    asset = plan.for_file("assets/app.js", "assets/app.js")
    assert (asset.cache_control, asset.content_type) == ("max-age=31536000, immutable", "text/javascript")
    assert plan.for_file("assets/b.js", "assets/b.js") is asset
    assert plan.for_file("other.txt", "other.txt").cache_control == "max-age=300"


def test_a_forced_type_or_none_at_all() -> None:
    assert planner(run=ObjectHeaders(content_type="text/plain")).for_file("a.js", "a.js").content_type == "text/plain"
    assert planner(guess=False).for_file("a.js", "a.js").content_type is None
    assert planner("*.js:Content-Type: text/x-js", guess=False).for_file("a.js", "a.js").content_type == "text/x-js"


@pytest.mark.parametrize(
    "text", ["*.html", "*.html:X-Custom: 1", ":Cache-Control: x", "*.html:Cache-Control:", "*.html:Cache-Control: é"]
)
def test_a_bad_rule_is_one_line_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match="--header-rule"):
        parse_header_rule(text)


def test_a_rules_file_skips_comments_and_names_the_bad_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.write_text("# site\n\n*.html:Cache-Control: no-cache\n  assets/**:Cache-Control: immutable\n")
    assert [str(rule) for rule in read_header_rules(rules)] == [
        "*.html:Cache-Control: no-cache",
        "assets/**:Cache-Control: immutable",
    ]
    rules.write_text("*.html:Cache-Control: no-cache\nnonsense\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_header_rules(rules)
    with pytest.raises(ConfigError, match="cannot read"):
        read_header_rules(tmp_path / "missing")


def test_refused_fields_name_the_options() -> None:
    asked = ObjectHeaders(content_type="text/html", sse="AES256", storage_class="GLACIER", sse_c_key=b"k" * 32)
    assert refused_fields(asked, CONTENT_HEADER_FIELDS) == ["--sse", "--sse-c-key-file", "--storage-class"]
    assert "k" * 32 not in repr(asked)
