"""References: one .bib file, cited with {cite} in both editions, nothing uncited.

references.bib (repository root) holds every work a chapter cites. The English
edition cites with {cite:t}`key` / {cite:p}`key`, the Chinese one with the same key
prefixed by "zh-", and each edition's references page lists its citations with
its own {bibliography} directive (the Chinese one with `:keyprefix: zh-`), so the
two editions never list the same citation key twice in one Sphinx project. The
book build (-W) fails on a key that references.bib lacks; this test adds what
the build cannot see: every entry is cited in both editions (nothing uncited is
listed), no key is defined twice, and each edition uses its own prefix.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from book_helpers import markdown_texts

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "references.bib"
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
ENTRY = re.compile(r"^@(\w+)\s*\{\s*([^,\s]+)\s*,", re.M)
TARGET = re.compile(r"\s*(?:\{[^{}]*\})?\s*([^{}\s,]+)\s*(?:\{[^{}]*\})?\s*")


def bib_keys():
    text = BIB.read_text(encoding="utf-8")
    return [
        key
        for kind, key in ENTRY.findall(text)
        if kind.lower() not in ("comment", "string", "preamble")
    ]


def cited_keys(lang):
    """{key as written: [where]} for every {cite} role of one edition."""
    keys: dict[str, list[str]] = {}
    for where, text in markdown_texts(lang):
        for m in CITE.finditer(text):
            for target in m.group(1).split(","):
                key = TARGET.fullmatch(target)
                assert key, f"{where}: malformed citation {m.group(0)!r}"
                keys.setdefault(key.group(1), []).append(where)
    return keys


def test_no_key_is_defined_twice():
    keys = bib_keys()
    assert keys, "references.bib has no entries"
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


@pytest.mark.parametrize("lang, prefix", [("en", ""), ("zh", "zh-")])
def test_every_entry_is_cited_and_every_citation_is_an_entry(lang, prefix):
    cited = cited_keys(lang)
    wrong_prefix = {k: w for k, w in cited.items() if k.startswith("zh-") != (prefix == "zh-")}
    assert not wrong_prefix, (
        f"{lang} edition: citation keys must {'' if prefix else 'not '}start with 'zh-': {wrong_prefix}"
    )
    keys = {k.removeprefix(prefix) for k in cited}
    entries = set(bib_keys())
    assert not keys - entries, f"{lang}: cited but not in references.bib: {sorted(keys - entries)}"
    assert not entries - keys, (
        f"{lang}: in references.bib but cited nowhere: {sorted(entries - keys)}"
    )


@pytest.mark.parametrize("lang, option", [("en", None), ("zh", ":keyprefix: zh-")])
def test_references_page_holds_the_bibliography(lang, option):
    page = (ROOT / "chapters" / lang / "references.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\{bibliography\}\n(.*?)```", page, re.S)
    assert len(blocks) == 1, f"{lang}/references.md needs exactly one {{bibliography}} directive"
    if option:
        assert option in blocks[0]
    else:
        assert "keyprefix" not in blocks[0]


def test_the_book_reads_the_bib_file():
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    assert re.search(r"^bibtex_bibfiles:\s*\[\s*references\.bib\s*\]", config, re.M)
