"""What the workflow names stays where it belongs: `worktree_copy` / `worktree_link` paths
inside the repository, and each task's log in a file of its own (issue 14, item 2)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.attempts import log_name

# Names as a workflow may hold them, and ones made to look like another name's log file.
_names = st.one_of(
    st.text(max_size=250),
    st.text(alphabet="aAbB_-/.0123456789cdef", max_size=30),
    st.builds(
        lambda a, h: f"{a}-{h}",
        st.text(alphabet="abAB_/.", min_size=1, max_size=5),
        st.text(alphabet="0123456789abcdef", min_size=8, max_size=16),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_names, unique=True, min_size=2, max_size=8))
def test_log_names_are_distinct_also_after_case_folding_and_safe(names: list[str]) -> None:
    files = [log_name(n) for n in names]
    # Also each name's own log name as a task name: it must not get the same file.
    stems = [f.removesuffix(".log") for f in files]
    files += [log_name(stem) for stem in stems if stem not in names]
    for fold in (str, str.casefold, str.lower):
        assert len({fold(f) for f in files}) == len(files), files
    for f in files:
        assert "/" not in f and "\0" not in f and f not in (".", "..") and not f.startswith(".")
        assert 0 < len(f.encode()) <= 120


def test_the_reported_pair_gets_two_log_files() -> None:
    taken = log_name("a/b")
    assert log_name(taken.removesuffix(".log")) != taken  # `a_b-c14cddc0` named as a task
    assert log_name("build") == "build.log" and log_name("lint-2") == "lint-2.log"
