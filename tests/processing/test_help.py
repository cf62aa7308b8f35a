"""What the algorithm dialogs show: help escaped for QGIS's HTML, and one grammar for lists everywhere."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from otbtf_qgis.processing import helptext
from otbtf_qgis.processing.provider import algorithm_classes
from tests.processing.conftest import algorithm

NAMES = [cls.NAME for cls in algorithm_classes()]
PROCESSING = Path(helptext.__file__).parent

#: Text parameters typed as per-source lists, and the hint their description carries.
PER_SOURCE = {
    "patchesextraction": {"PATCH_SIZES": helptext.SIZES_HINT, "SOURCE_NAMES": helptext.NAMES_HINT,
                          "NODATA": helptext.NODATA_HINT},
    "modelserve": {"RFIELDS": helptext.SIZES_HINT, "PLACEHOLDERS": helptext.NAMES_HINT,
                   "NODATA": helptext.NODATA_HINT},
}
#: Text parameters typed as lists (not per source).
LISTS = {"modelserve": ("OUTPUT_NAMES", "USER_PLACEHOLDERS", "CREATION_OPTIONS")}
#: Text parameters typed as one size.
SIZES = {"patchesselection": ("PATCH_SIZE", "STEP", "OFFSET"), "modelserve": ("EFIELD",)}
#: HTML the helps mean (none so far): removed before looking for a raw '<' or '>'.
MEANT_HTML = re.compile(r"</?(?:b|i|code)>")


def paragraphs(help_text: str) -> list[str]:
    """The paragraphs QGIS shows: it wraps each line of the short help in <p>…</p>."""
    return help_text.split("\n")


@pytest.mark.parametrize("name", NAMES)
def test_help_is_escaped_for_html(qgis_app, name):
    alg = algorithm(name)
    shown = alg.shortHelpString()
    assert shown, name
    for paragraph in paragraphs(shown):
        raw = MEANT_HTML.sub("", paragraph)
        assert "<" not in raw and ">" not in raw, paragraph
    # nothing but the escaping changed: QGIS shows the help as written
    assert html.unescape(shown) == alg.tr(alg.HELP)


def test_train_model_help_shows_the_input_names(qgis_app):
    shown = algorithm("trainmodel").shortHelpString()
    assert "input_&lt;source&gt;" in shown and "&lt;OUTPUT_MODEL&gt;_training" in shown
    assert "input_<source>" in html.unescape(shown)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_descriptions_hold_no_markup(qgis_app, name):
    alg = algorithm(name)
    for parameter in alg.parameterDefinitions():
        assert "<" not in parameter.description() and ">" not in parameter.description(), parameter.name()


@pytest.mark.parametrize("name", NAMES)
def test_every_help_speaks_of_lists_and_sizes_in_the_same_words(qgis_app, name):
    alg = algorithm(name)
    text = html.unescape(alg.shortHelpString())
    descriptions = {p.name(): p.description() for p in alg.parameterDefinitions()}
    per_source = PER_SOURCE.get(name, {})
    # an algorithm whose help or parameters mention per-source lists is in the table above
    if "per source" in " ".join(descriptions.values()) or "per-source" in text:
        assert per_source, f"{name} has per-source parameters: list them in PER_SOURCE"
    if per_source or name in LISTS:
        assert helptext.LIST_GRAMMAR in text
        assert "are per-source lists" in text or not per_source
    else:
        assert helptext.LIST_GRAMMAR not in text
    for parameter, hint in per_source.items():
        assert parameter in text and hint in descriptions[parameter], parameter
    for parameter in LISTS.get(name, ()):
        assert parameter in text and helptext.LIST_HINT in descriptions[parameter], parameter
    if name in SIZES or any(hint == helptext.SIZES_HINT for hint in per_source.values()):
        assert helptext.SIZE_GRAMMAR in text
        for parameter in SIZES.get(name, ()):
            assert parameter in text and re.search(r"\d+ or \d+x\d+", descriptions[parameter]), parameter
    # the old words of the grammar are gone
    stale = re.compile(r"comma-separated|separated by ';'|\bauto\b|\btokens?\b|64,32")
    for shown in (text, *descriptions.values()):
        assert not stale.search(shown), (name, shown)


def test_processing_never_splits_a_list_itself():
    """Lists typed as text go to the core as typed, or through otbtf_qgis.core.jobs.params.

    The one exception is createenvironment's PACKAGES: pip requirement specifiers, which hold
    commas and semicolons themselves, separated by spaces as on pip's command line.
    """
    splitting = re.compile(r"\.split\(|re\.split|\.splitlines\(|\.partition\(")
    found = {path.name: line.strip() for path in sorted(PROCESSING.glob("*.py"))
             for line in path.read_text(encoding="utf-8").splitlines() if splitting.search(line)}
    assert found == {"createenvironment.py": "packages = self.parameterAsString(parameters, self.PACKAGES, "
                                             "context).split()"}
