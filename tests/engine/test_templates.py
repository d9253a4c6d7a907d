from __future__ import annotations

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from relayflow.engine import templates


class TestRender:
    def test_renders_variables(self) -> None:
        variables = {"contact": {"first_name": "Ada"}}

        assert templates.render("Hi {{ contact.first_name }}", variables) == "Hi Ada"

    def test_plain_text_is_returned_unchanged(self) -> None:
        assert templates.render("no braces here", {}) == "no braces here"

    def test_missing_variable_raises(self) -> None:
        with pytest.raises(UndefinedError):
            templates.render("{{ contact.nope }}", {"contact": {}})

    def test_default_filter_fills_a_missing_variable(self) -> None:
        assert templates.render("{{ contact.nope | default('x') }}", {"contact": {}}) == "x"

    def test_html_is_not_escaped(self) -> None:
        assert templates.render("{{ v }}", {"v": "<b>&</b>"}) == "<b>&</b>"

    def test_internals_are_refused(self) -> None:
        with pytest.raises(SecurityError):
            templates.render("{{ v.__class__ }}", {"v": ""})


class TestRenderValue:
    def test_renders_every_string_in_nested_values(self) -> None:
        value = {"a": "{{ x }}", "b": ["{{ x }}-1", 3, None], "c": {"d": True}}

        assert templates.render_value(value, {"x": "X"}) == {
            "a": "X", "b": ["X-1", 3, None], "c": {"d": True}
        }


class TestEvaluate:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [("contact.plan == 'pro'", True), ("contact.plan == 'free'", False), ("1 + 2", 3)],
    )
    def test_evaluates_expression(self, source: str, expected: object) -> None:
        assert templates.evaluate(source, {"contact": {"plan": "pro"}}) == expected


class TestCheckTemplate:
    def test_syntax_error_raises(self) -> None:
        with pytest.raises(templates.TemplateSyntaxError):
            templates.check_template("{{ unclosed ")

    def test_valid_template_passes(self) -> None:
        templates.check_template("{% if x %}{{ x }}{% endif %}")


class TestCompileExpression:
    def test_syntax_error_raises(self) -> None:
        with pytest.raises(templates.TemplateSyntaxError):
            templates.compile_expression("contact.plan ==")


class TestStringsIn:
    def test_yields_strings_from_nested_values(self) -> None:
        value = {"a": "1", "b": ["2", {"c": "3"}, 4], "d": None}

        assert list(templates.strings_in(value)) == ["1", "2", "3"]


class TestSecretRefs:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("Bearer {{ secrets.CRM_TOKEN }}", {"CRM_TOKEN"}),
            ("{{ secrets['A'] }}:{{ secrets.B }}", {"A", "B"}),
            ("{{ secrets[name] }}", {"*"}),
            ("{{ secrets }}", {"*"}),
            ("{{ contact.email }}", set()),
            ("plain", set()),
        ],
    )
    def test_template_references(self, source: str, expected: set[str]) -> None:
        assert templates.secret_refs(source) == expected

    def test_expression_references(self) -> None:
        assert templates.secret_refs("secrets.X == 'y'", expression=True) == {"X"}


class TestRenderChainedDefault:
    def test_default_covers_attribute_chains_on_a_missing_value(self) -> None:
        source = "{{ steps.lookup.account['tier'] | default('standard') }}"

        assert templates.render(source, {"steps": {}}) == "standard"

    def test_chain_on_a_missing_value_without_default_raises_naming_the_root(self) -> None:
        with pytest.raises(UndefinedError, match="lookup"):
            templates.render("{{ steps.lookup.tier }}", {"steps": {}})

    def test_comparing_a_missing_chain_raises(self) -> None:
        with pytest.raises(UndefinedError):
            templates.evaluate("steps.lookup.tier == 'gold'", {"steps": {}})

    def test_is_defined_test_works_on_a_chain(self) -> None:
        assert templates.evaluate("steps.lookup.tier is defined", {"steps": {}}) is False
