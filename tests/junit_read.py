"""Reading a written junit.xml back: what each test case says."""

from __future__ import annotations

from xml.etree import ElementTree


def junit_cases(xml: bytes) -> dict[str, tuple[str, str]]:
    """Each test case: (its outcome, the message of a skip or failure)."""
    cases = {}
    for case in ElementTree.fromstring(xml).iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, message = kind, found.get("message", "")
        cases[case.get("name", "")] = (outcome, message)
    return cases
