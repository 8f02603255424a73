"""Task names that are mermaid, HTML or markdown syntax, or text that is hard to keep intact:
each must reach every diagram and report literally."""

from __future__ import annotations

LONG_NAME = ("long name " + "x" * 200)[:200]
# Task names that are mermaid or HTML syntax; each must render, and read back literally.
HOSTILE = [
    "end",
    "graph",
    "subgraph",
    "style",
    "classDef",
    "flowchart",
    "click",
    "linkStyle",
    'say "hi"',
    '"quoted"',
    "it's",
    "'single'",
    "[brackets]",
    "(parens)",
    "{braces}",
    "[(mixed)]",
    "<b>bold</b>",
    "<script>alert(1)</script>",
    "a --> b",
    "a -.-> b",
    "#quot;",
    "&amp;",
    "#",
    "a & b",
    "`backticks`",
    "|pipe|",
    ";semi",
    "%%comment",
    "x:::cls",
    "back\\slash",
    "**not markdown**",
    "🚀 deploy ✅",
    "构建 テスト 빌드",
    "בדיקה اختبار",
    LONG_NAME,
]
# Names that broke our output once (regressions), each rendered in its own small diagrams so
# that one breaking a whole diagram cannot hide the others:
ISOLATED_NAMES = [
    "deploy %%{init: {'theme':'dark'}}%% now",  # mermaid reads `%%{...}%%` anywhere as a directive
    "50%%{wrap",  # ... and a directive without `}%%` swallows the rest of the diagram
    "fa:fa-car",  # mermaid turns `fa:fa-*` into a Font Awesome <i> icon: the text vanishes
    "👩‍💻 review",  # ZWJ emoji sequence: U+200D must survive
    "می‌خواهم",  # Persian with ZWNJ (U+200C): must survive
]
