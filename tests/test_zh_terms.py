"""The Traditional Chinese edition uses Taiwan terms and no Simplified characters.

The term list is the glossary page itself (chapters/zh/glossary.md): every term
of its mainland column (中國大陸用語) is looked for, as written and converted
to Traditional characters (數據, 默認, 內存 ...), in the markdown cells of every
chapters/zh/*.ipynb and in every chapters/zh/*.md except the glossary. A
Simplified character is any CJK ideograph that Big5 (cp950) cannot encode,
plus a few Simplified forms that Big5 happens to contain (优, 据).

Collisions are handled explicitly below: a mainland term that is also (part of)
a Taiwan term in the glossary is not looked for; EXEMPT lists mainland terms
that are ordinary Taiwan words with another meaning; ALLOWED_PHRASES lists
Taiwan phrases that contain a mainland term and are removed before searching.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from book_helpers import markdown_texts

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "chapters" / "zh"
GLOSSARY = ZH / "glossary.md"

CJK = re.compile(r"[\u4e00-\u9fff]+")

# Simplified -> Traditional for the characters of the glossary's mainland column.
S2T = dict(
    zip(
        "习传内则别动单参变图块处实对导库张归损数断显权标样测温点热独现码稳笔签类约线练组经络编节计认训记识词试误负软辑运逻链阵馏优据准舍档",
        "習傳內則別動單參變圖塊處實對導庫張歸損數斷顯權標樣測溫點熱獨現碼穩筆簽類約線練組經絡編節計認訓記識詞試誤負軟輯運邏鏈陣餾優據準捨檔",
    )
)

# Simplified forms that Big5 also encodes (as rare or variant characters).
SIMPLIFIED_IN_BIG5 = set("优据")

# Mainland terms that are ordinary Taiwan words in another sense: never flagged.
EXEMPT = {
    "文件": "in Taiwan 文件 means 'document' (the mainland 'file' is 檔案 here)",
    "對象": "in Taiwan 對象 means 'counterpart, target of an action'",
    "推理": "in Taiwan 推理 means 'reasoning' (inference is 推論)",
    "分塊": "分塊 (block-wise, 分塊矩陣) is standard Taiwan mathematics",
}

# Taiwan phrases that contain a mainland term; removed before the search.
ALLOWED_PHRASES = [
    "錯誤代碼",  # error code
    "計算機概論",
    "計算機科學",  # course and field names used in Taiwan
    "作業程序",
    "標準程序",
    "程序性",  # 'procedure'
]


def glossary_rows():
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("English", "---") or set(cells[0]) <= set("-"):
            continue
        rows.append(tuple(cells))
    return rows


def to_traditional(term):
    return "".join(S2T.get(ch, ch) for ch in term)


def mainland_terms():
    """{term to search for: (English, Taiwan)}, collisions removed."""
    rows = glossary_rows()
    taiwan_words = [w for _, tw, _ in rows for w in CJK.findall(tw)]
    terms = {}
    for en, tw, ml in rows:
        for word in CJK.findall(ml):
            for form in {word, to_traditional(word)}:
                if len(form) < 2 or form in EXEMPT:
                    continue  # single characters (行, 列, 包) are caught by the script check
                if any(form in t for t in taiwan_words):
                    continue  # also the Taiwan term, or part of one (交叉熵, 樣本 ...)
                terms[form] = (en, tw)
    return terms


def is_simplified(ch):
    if ch in SIMPLIFIED_IN_BIG5:
        return True
    try:
        ch.encode("cp950")
    except UnicodeEncodeError:
        return True
    return False


def zh_texts():
    """(label, text) for each markdown cell and each .md page of the zh edition."""
    return markdown_texts("zh", skip=(GLOSSARY.name,))


def problems_in(text, terms):
    found = []
    clean = text
    for phrase in ALLOWED_PHRASES:
        clean = clean.replace(phrase, "□" * len(phrase))
    for term, (en, tw) in terms.items():
        for m in re.finditer(re.escape(term), clean):
            context = text[max(0, m.start() - 8) : m.end() + 8].replace("\n", " ")
            found.append(f"mainland term {term!r} (for {en!r}; use {tw!r}) in '…{context}…'")
    for m in re.finditer(r"[\u4e00-\u9fff]", text):
        if is_simplified(m.group()):
            context = text[max(0, m.start() - 8) : m.end() + 8].replace("\n", " ")
            found.append(f"Simplified character {m.group()!r} in '…{context}…'")
    return found


def test_glossary_is_parsed():
    rows = glossary_rows()
    assert len(rows) >= 40
    terms = mainland_terms()
    for expected in ("概率", "默認", "數據", "內存", "優化", "程序", "比特", "批量"):
        assert expected in terms, expected
    for collision in ("交叉熵", "函數", "樣本", "文件", "推理"):
        assert collision not in terms, collision


def test_detector_catches_and_spares():
    terms = mainland_terms()
    bad = problems_in("這段代码用默認的數據計算概率。", terms)
    assert any("默認" in p for p in bad) and any("數據" in p for p in bad)
    assert any("概率" in p for p in bad) and any("'码'" in p for p in bad)
    good = "這段程式碼用預設的資料計算機率：交叉熵損失函數、PyTorch 文件、錯誤代碼。"
    assert problems_in(good, terms) == []


def test_glossary_taiwan_column_is_traditional():
    for en, tw, _ in glossary_rows():
        assert not [ch for ch in tw if "\u4e00" <= ch <= "\u9fff" and is_simplified(ch)], en


@pytest.mark.parametrize(
    "label,text",
    [pytest.param(label, t, id=label) for label, t in zh_texts()]
    or [pytest.param("(no zh pages yet)", "", id="none")],
)
def test_zh_page_uses_taiwan_terms(label, text):
    problems = problems_in(text, mainland_terms())
    assert not problems, f"{label}:\n  " + "\n  ".join(problems)


# --- One term per concept (the glossary settles it; zh-style.md's terms table) ---------------
#
# The Chinese edition once used two words for one concept in different chapters. Each entry:
# the non-preferred variant (a regular expression), the preferred term, and what it means. The
# search covers markdown and code cells (comments, figure labels) of every chapters/zh/*.ipynb
# and every chapters/zh/*.md except the glossary, which lists the variants on purpose.
# 欄 is the column of a table and stays; only a *matrix* column written 欄 is flagged: 第 $k$ 欄
# (a column indexed by a math symbol is never a table's) and 矩陣…欄 within one clause.

NON_PREFERRED = [
    (
        re.compile(
            r"^#{1,6}\s*(?:\d+(?:\.\d+)*\s*)?(?:本章小結|本章重點|小結|本章摘要|摘要|總結)\s*$",
            re.M,
        ),
        "重點整理",
        "the summary heading (## N.k 重點整理)",
    ),
    (re.compile(r"檢查程式"), "檢查器", "checker of an exercise"),
    (re.compile(r"遮罩"), "遮蔽", "masked (class), mask"),
    (re.compile(r"原地"), "就地", "in-place"),
    (re.compile(r"尖峰"), "峰值", "peak (memory)"),
    (re.compile(r"傳回"), "回傳", "return (a value)"),
    (re.compile(r"丟出"), "拋出", "raise (an error)"),
    (
        re.compile(r"第\s*\$[^$\n]+\$\s*欄|矩陣[^。，；：\n]{0,12}欄"),
        "行",
        "column of a matrix (欄 is a table's)",
    ),
    (
        re.compile(r"小批次（micro-batch）|micro-batch）?[^。\n]{0,3}小批次"),
        "微批次（micro-batch）",
        "micro-batch",
    ),
    (
        re.compile(r"區塊（chunk）"),
        "分塊（chunk）",
        "chunk (of rows or of the vocabulary); 區塊 is Triton's BLOCK",
    ),
]


def zh_texts_with_code():
    """(label, text) for every markdown and code cell and every .md page of the zh edition."""
    for path in sorted(ZH.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells, start=1):
            if cell.cell_type in ("markdown", "code"):
                yield f"{path.relative_to(ROOT)} (cell {i})", cell.source
    for path in sorted(ZH.glob("*.md")):
        if path != GLOSSARY:
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def variant_problems(text):
    found = []
    for pattern, preferred, meaning in NON_PREFERRED:
        for m in pattern.finditer(text):
            context = text[max(0, m.start() - 10) : m.end() + 10].replace("\n", " ")
            found.append(
                f"{m.group(0).strip()!r} for {meaning}: use {preferred!r} in '…{context}…'"
            )
    return found


def test_variant_detector_catches_and_spares():
    bad = (
        "## 5.7 小結\n請用檢查程式。被遮罩的類別，原地寫入，記憶體尖峰，傳回 NaN，丟出錯誤，"
        "$W$ 的第 $c$ 欄，小批次（micro-batch），區塊（chunk）"
    )
    assert len(variant_problems(bad)) == 10
    good = (
        "## 5.7 重點整理\n用檢查器。被遮蔽的類別，就地寫入，記憶體峰值，回傳 NaN，拋出錯誤，"
        "$W$ 的第 $c$ 行，表格的第 2 欄，微批次（micro-batch），分塊（chunk），區塊（block）"
    )
    assert variant_problems(good) == []


def test_glossary_settles_the_preferred_terms():
    taiwan = " ".join(tw for _, tw, _ in glossary_rows())
    for term in (
        "重點整理",
        "檢查器",
        "遮蔽",
        "就地",
        "峰值",
        "回傳",
        "拋出",
        "微批次（micro-batch）",
        "分塊（chunk）",
        "區塊（block）",
    ):
        assert term in taiwan, term


@pytest.mark.parametrize(
    "label,text",
    [pytest.param(label, t, id=label) for label, t in zh_texts_with_code()]
    or [pytest.param("(no zh pages yet)", "", id="none")],
)
def test_zh_page_uses_one_term_per_concept(label, text):
    problems = variant_problems(text)
    assert not problems, f"{label}:\n  " + "\n  ".join(problems)
