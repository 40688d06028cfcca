"""Playbook parsing: what a valid playbook becomes, and how a bad one is reported."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clive.agent.actions import Keys, Run, Wait
from clive.experiments.playbook import (
    Budget,
    Expect,
    Move,
    Playbook,
    PlaybookError,
    Stop,
    load_playbook,
    missing_requirements,
)

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"

KERNEL_C = """\
#define LOOP_ORDER 0
#define BLOCK 0x40
int main(void) { return 0; }
"""
MAKEFILE = "CFLAGS = -O2\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder holding a playbook's workdir ``work/`` with a kernel, a Makefile and a harness."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "kernel.c").write_text(KERNEL_C)
    (work / "Makefile").write_text(MAKEFILE)
    (work / "harness.c").write_text("/* read-only */\n")
    (work / "src").mkdir()
    (work / "src" / "a.py").write_text("X = 1\n")
    return tmp_path


def write(folder: Path, front: str | None, body: str = "Do the thing.\n") -> Path:
    path = folder / "book.md"
    text = body if front is None else f"---\n{textwrap.dedent(front).strip()}\n---\n{body}"
    path.write_text(text)
    return path


def error_of(path: Path) -> PlaybookError:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    message = str(caught.value)
    assert "\n" not in message, "a PlaybookError is one line"
    assert message.startswith(f"{path}:{caught.value.line}: {caught.value.field}: ")
    return caught.value


EXPERIMENT = """\
name: tune
workdir: work
eval: make bench
metric: 'GFLOP/s: ([0-9.]+)'
"""


# --- what valid playbooks become ---------------------------------------------------------------


def test_full_playbook_parses_every_field(project: Path) -> None:
    path = write(
        project,
        """
        name: tune the kernel
        workdir: work
        setup: [make clean, make]
        check: make check
        eval: make bench
        metric: 'GFLOP/s: ([0-9.]+)'
        direction: maximize
        budget: {experiment_seconds: 60, max_experiments: 16, wall_seconds: 1800}
        repeats: 3
        noise: 0.03
        editable: [kernel.c, Makefile, "src/**/*.py"]
        readonly: [harness.c]
        stop: {target: 100, plateau: 6}
        requires: [gcc]
        model: claude-sonnet-4-5
        search:
          - name: loop order
            file: kernel.c
            pattern: '^#define LOOP_ORDER (\\d+)'
            values: [1, 2]
          - name: block
            file: kernel.c
            pattern: '^#define BLOCK (\\w+)'
            values: [0x20, 1.50, on, "-O3 x"]
        steps:
          - make
          - {type: keys, keys: "ls<Enter>", wait: prompt, expect: kernel.c}
          - {type: run, command: make check, expect: {regex: 'ok \\(\\d+'}}
        """,
        body="\n# Goal\nMake it fast.\n",
    )
    pb = load_playbook(path)
    assert pb == Playbook(
        path=path.resolve(),
        name="tune the kernel",
        body="# Goal\nMake it fast.\n",
        workdir=(project / "work").resolve(),
        setup=("make clean", "make"),
        eval="make bench",
        metric=re.compile("GFLOP/s: ([0-9.]+)", re.MULTILINE),
        direction="maximize",
        check="make check",
        budget=Budget(experiment_seconds=60.0, max_experiments=16, wall_seconds=1800.0),
        repeats=3,
        noise=0.03,
        editable=("kernel.c", "Makefile", "src/**/*.py"),
        readonly=("harness.c",),
        stop=Stop(target=100.0, plateau=6),
        search=(
            Move("loop order", "kernel.c", r"^#define LOOP_ORDER (\d+)", ("1", "2")),
            # values keep the text as written: no 0x20 -> 32, 1.50 -> 1.5 or on -> True
            Move("block", "kernel.c", r"^#define BLOCK (\w+)", ("0x20", "1.50", "on", "-O3 x")),
        ),
        steps=(
            Run(command="make"),
            Keys(keys="ls<Enter>", wait=Wait(kind="prompt")),
            Run(command="make check"),
        ),
        expects=(None, Expect(text="kernel.c"), Expect(regex=r"ok \(\d+")),
        requires=("gcc",),
        model="claude-sonnet-4-5",
    )
    assert pb.is_experiment


def test_minimal_front_matter_takes_the_defaults(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, "name: hello", body="Say hello.\n"))
    assert pb.name == "hello" and pb.body == "Say hello.\n"
    assert pb.workdir is None and pb.eval is None and pb.metric is None and pb.check is None
    assert pb.direction == "maximize" and pb.repeats == 1 and pb.noise == 0.02
    assert pb.budget == Budget(experiment_seconds=300.0) and pb.stop == Stop()
    assert pb.setup == pb.editable == pb.readonly == pb.search == pb.steps == pb.requires == ()
    assert not pb.is_experiment


def test_file_without_front_matter_is_a_plain_program_md(tmp_path: Path) -> None:
    text = "# program.md\n\nTrain the model; keep what lowers val_bpb.\n---\nnot front matter\n"
    path = tmp_path / "program.md"
    path.write_text(text)
    pb = load_playbook(path)
    assert pb.name == "program" and pb.body == text
    assert pb.eval is None and pb.search == () and pb.workdir is None


def test_empty_front_matter_is_all_defaults(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, "", body="body\n"))
    assert pb.name == "book" and pb.body == "body\n"


def test_budget_number_is_the_seconds_per_experiment(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, "budget: 60"))
    assert pb.budget == Budget(experiment_seconds=60.0)


def test_setup_and_requires_accept_a_single_string(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, "setup: make clean\nrequires: nvcc"))
    assert pb.setup == ("make clean",) and pb.requires == ("nvcc",)


def test_metric_is_compiled_multiline_with_one_group(project: Path) -> None:
    pb = load_playbook(write(project, EXPERIMENT.replace("'GFLOP/s: ([0-9.]+)'", "'^loss (.+)$'")))
    assert pb.metric is not None
    assert pb.metric.search("step 1\nloss 0.25\nend").group(1) == "0.25"


def test_workdir_is_relative_to_the_playbook_folder(project: Path, monkeypatch) -> None:
    monkeypatch.chdir("/")
    pb = load_playbook(write(project, "workdir: work"))
    assert pb.workdir == (project / "work").resolve()


def test_workdir_argument_overrides_the_playbook(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.py").write_text("")
    path = write(project, "workdir: work\neditable: [main.py]")
    assert load_playbook(path, workdir=other).workdir == other.resolve()
    with pytest.raises(PlaybookError, match="editable"):
        load_playbook(path)  # work/ has no main.py


def test_missing_requirements_lists_commands_not_on_path(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, "requires: [sh, clive-no-such-command-xyz]"))
    assert missing_requirements(pb) == ["clive-no-such-command-xyz"]


# --- how bad playbooks are reported ------------------------------------------------------------


def test_unknown_field_is_named_with_its_line(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "name: x\nevals: make bench"))
    assert (error.line, error.field) == (3, "evals")
    assert "unknown field" in error.problem


def test_unknown_nested_field_is_named(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "budget:\n  experiment_seconds: 5\n  max_runs: 3"))
    assert (error.line, error.field) == (4, "budget.max_runs")


def test_odd_keys_still_give_a_one_line_error(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, '"ev\\nal\\e[31m": make'))
    assert error.line == 2 and error.field == "ev al\\x1b[31m"


def test_duplicate_field_is_reported(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "name: a\nname: b"))
    assert (error.line, error.field) == (3, "name") and "twice" in error.problem


@pytest.mark.parametrize(
    ("front", "field", "expected", "got"),
    [
        ("repeats: three", "repeats", "integer", "'three'"),
        ("repeats: 2.5", "repeats", "integer", "2.5"),
        ("repeats: true", "repeats", "integer", "True"),
        ("noise: [0.1]", "noise", "number", "a list"),
        ("eval: 42", "eval", "string", "int 42"),
        ("setup: {a: 1}", "setup", "list of strings", "a mapping"),
        ("editable: [1, 2]", "editable[0]", "string", "int 1"),
        ("budget: {max_experiments: ten}", "budget.max_experiments", "integer", "'ten'"),
        ("budget: fast", "budget", "number", "'fast'"),
        ("stop: {plateau: 1.5}", "stop.plateau", "integer", "1.5"),
        ("stop: 5", "stop", "mapping", "int 5"),
        ("model: null", "model", "string", "null"),
    ],
)
def test_wrong_type_names_field_expected_type_and_value(
    tmp_path: Path, front: str, field: str, expected: str, got: str
) -> None:
    error = error_of(write(tmp_path, front))
    assert error.field == field and error.line == 2
    assert f"expected a {expected}" in error.problem or f"expected an {expected}" in error.problem
    assert got in error.problem


@pytest.mark.parametrize(
    ("front", "field", "problem"),
    [
        ("direction: upward", "direction", "maximize or minimize"),
        ("repeats: 0", "repeats", "at least 1"),
        ("noise: -0.1", "noise", "at least 0"),
        ("budget: 0", "budget", "more than 0"),
        ("budget: .inf", "budget", "finite"),
        (f"budget: {'9' * 400}", "budget", "finite"),
        ("stop: {plateau: 0}", "stop.plateau", "at least 1"),
        ("eval: '  '", "eval", "empty"),
        ("sandbox: {network: yes please}", "sandbox.network", "true or false"),
        ("sandbox: {gpu: 1}", "sandbox.gpu", "true or false"),
        ("sandbox: {home: [/root/.ssh]}", "sandbox.home", "relative to the home"),
        ("sandbox: {home: [../other/.ssh]}", "sandbox.home", "relative to the home"),
        ("sandbox: {paths: [data]}", "sandbox.paths", "absolute"),
        ("sandbox: {shell: zsh}", "sandbox.shell", "unknown"),
    ],
)
def test_out_of_range_values_are_rejected(tmp_path: Path, front: str, field: str, problem: str) -> None:
    error = error_of(write(tmp_path, front))
    assert error.field == field and problem in error.problem


@pytest.mark.parametrize(
    ("metric", "problem"),
    [
        ("'GFLOP/s: [0-9.]+'", "exactly 1 group"),
        ("'(\\w+): ([0-9.]+)'", "it has 2"),
        ("'GFLOP/s: ([0-9.+'", "bad regex"),
    ],
)
def test_metric_needs_exactly_one_group(project: Path, metric: str, problem: str) -> None:
    path = write(project, EXPERIMENT.replace("'GFLOP/s: ([0-9.]+)'", metric))
    error = error_of(path)
    assert (error.line, error.field) == (5, "metric") and problem in error.problem


def test_search_without_eval_says_eval_missing(project: Path) -> None:
    path = write(
        project,
        """
        workdir: work
        search:
          - {name: order, file: kernel.c, pattern: 'LOOP_ORDER (\\d)', values: [1]}
        """,
    )
    error = error_of(path)
    assert (error.line, error.field) == (3, "eval") and error.problem.startswith("missing")


def test_eval_without_metric_says_metric_missing(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "eval: make bench"))
    assert (error.line, error.field) == (2, "metric") and error.problem.startswith("missing")


def test_metric_without_eval_says_eval_missing(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "metric: 'x (\\d+)'"))
    assert error.field == "eval" and error.problem.startswith("missing")


def test_editable_glob_that_matches_nothing_is_rejected(project: Path) -> None:
    error = error_of(write(project, "workdir: work\neditable: [kernel.c, '*.cu']"))
    assert (error.line, error.field) == (3, "editable") and "'*.cu' matches no file" in str(error)


@pytest.mark.parametrize("glob", ["/etc/passwd", "../work/kernel.c", ""])
def test_editable_globs_stay_inside_the_workdir(project: Path, glob: str) -> None:
    error = error_of(write(project, f"workdir: work\neditable: ['{glob}']"))
    assert error.field == "editable" and "relative to the workdir" in error.problem


def test_missing_workdir_is_rejected(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "name: x\nworkdir: nowhere"))
    assert (error.line, error.field) == (3, "workdir") and "does not exist" in error.problem


def search_playbook(project: Path, move: str, extra: str = "") -> Path:
    return write(project, EXPERIMENT + extra + "search:\n" + textwrap.indent(move, "  "))


def test_search_move_file_must_exist(project: Path) -> None:
    move = "- name: order\n  file: kernel.cu\n  pattern: 'LOOP_ORDER (\\d)'\n  values: [1]\n"
    error = error_of(search_playbook(project, move))
    assert (error.line, error.field) == (8, "search[0] (order).file")
    assert "does not exist" in error.problem


def test_search_move_pattern_must_match_its_file(project: Path) -> None:
    move = "- name: order\n  file: kernel.c\n  pattern: 'LOOP_ORDER (\\d{3})'\n  values: [1]\n"
    error = error_of(search_playbook(project, move))
    assert (error.line, error.field) == (9, "search[0] (order).pattern")
    assert "matches nothing in kernel.c" in error.problem


def test_search_move_pattern_needs_one_group(project: Path) -> None:
    move = "- name: order\n  file: kernel.c\n  pattern: 'LOOP_ORDER \\d'\n  values: [1]\n"
    error = error_of(search_playbook(project, move))
    assert error.field == "search[0] (order).pattern" and "exactly 1 group" in error.problem


def test_search_move_may_not_edit_a_readonly_file(project: Path) -> None:
    move = "- name: h\n  file: harness.c\n  pattern: '(read)'\n  values: [x]\n"
    error = error_of(search_playbook(project, move, "readonly: [harness.c]\n"))
    assert error.field == "search[0] (h).file" and "readonly" in error.problem


def test_search_move_must_edit_an_editable_file(project: Path) -> None:
    move = "- name: flags\n  file: Makefile\n  pattern: 'CFLAGS = (.*)'\n  values: [-O3]\n"
    error = error_of(search_playbook(project, move, "editable: [kernel.c]\n"))
    assert error.field == "search[0] (flags).file" and "not editable" in error.problem


@pytest.mark.parametrize(
    ("move", "field", "problem"),
    [
        ("- name: a\n  file: kernel.c\n  pattern: 'ORDER (\\d)'\n", "search[0].values", "missing"),
        ("- {name: a, file: kernel.c, pattern: 'ORDER (\\d)', values: []}", "values", "non-empty"),
        ("- {name: a, file: kernel.c, pattern: 'ORDER (\\d)', values: [[1]]}", "values[0]", "list"),
        ("- {name: a, file: kernel.c, pattern: 'ORDER (\\d)', values: [~]}", "values[0]", "quote"),
        ("- {name: a, file: k.c, pattern: 'x(\\d)', values: [1], step: 2}", "step", "unknown"),
        ("- just a string", "search[0]", "expected a mapping"),
    ],
)
def test_bad_search_moves_are_named(project: Path, move: str, field: str, problem: str) -> None:
    error = error_of(search_playbook(project, move))
    assert error.field.endswith(field) and problem in error.problem


def test_search_move_names_are_unique(project: Path) -> None:
    move = "- {name: a, file: kernel.c, pattern: 'ORDER (\\d)', values: [1]}\n"
    error = error_of(search_playbook(project, move + move))
    assert error.field == "search[1].name" and "twice" in error.problem


def test_search_files_are_not_checked_without_a_workdir(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "eval: make\nmetric: 'x (\\d)'\nsearch: [{name: a, file: k.c, pattern: '(x)', values: [y]}]",
    )
    assert load_playbook(path).search == (Move("a", "k.c", "(x)", ("y",)),)


@pytest.mark.parametrize(
    ("steps", "line", "field", "problem"),
    [
        ("- {type: run}", 3, "steps[0]", "missing field 'command'"),
        ("- make\n- {type: fly, to: moon}", 4, "steps[1]", "unknown action 'fly'"),
        ("- type: run\n  command: make\n  timeout: -1", 5, "steps[0]", "must be positive"),
        ("- {type: run, command: x, expect: {regex: '(['}}", 3, "steps[0].expect.regex", "bad"),
        ("- {type: run, command: x, expect: {color: red}}", 3, "steps[0].expect", "expected a"),
        ("- 42", 3, "steps[0]", "expected an action"),
        ("- {type: [run]}", 3, "steps[0]", "type: expected a string"),
    ],
)
def test_bad_steps_are_named_with_their_line(tmp_path: Path, steps: str, line: int, field: str, problem: str) -> None:
    error = error_of(write(tmp_path, "steps:\n" + textwrap.indent(steps, "  ")))
    assert (error.line, error.field) == (line, field) and problem in error.problem


def test_missing_file_is_reported(tmp_path: Path) -> None:
    error = error_of(tmp_path / "nope.md")
    assert error.field == "file" and "no such file" in error.problem


def test_directory_is_not_a_playbook(tmp_path: Path) -> None:
    assert error_of(tmp_path).field == "file"


def test_non_utf8_file_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "book.md"
    path.write_bytes(b"---\nname: x\n---\nline 4 \xff\n")
    error = error_of(path)
    assert (error.line, error.field) == (4, "file") and "UTF-8" in error.problem


def test_bad_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "name: x\neval: [unclosed\nmetric: y"))
    assert error.field == "front matter" and "bad YAML" in error.problem
    assert error.line in (3, 4, 5)


def test_front_matter_must_be_a_mapping(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "- name: x"))
    assert (error.line, error.field) == (2, "front matter") and "mapping" in error.problem


def test_unclosed_front_matter_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "book.md"
    path.write_text("---\nname: x\n\nSome prose.\n")
    error = error_of(path)
    assert (error.line, error.field) == (1, "front matter") and "closing" in error.problem


def test_nothing_is_executed_while_parsing(project: Path) -> None:
    marker = project / "ran"
    path = write(project, EXPERIMENT + f"setup: [touch {marker}]\ncheck: touch {marker}\n")
    load_playbook(path)
    assert not marker.exists()


# --- shipped playbooks -------------------------------------------------------------------------


SHIPPED = sorted(PLAYBOOKS.glob("*.md"))


def test_the_shipped_playbooks_are_there() -> None:
    assert {p.stem for p in SHIPPED} >= {"matmul", "inference", "python", "cuda", "synthetic", "clive-flood"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_playbook_parses_as_an_experiment(path: Path) -> None:
    pb = load_playbook(path)
    assert pb.is_experiment and pb.check and pb.search and pb.body.strip()
    # clive-flood tunes clive itself: its workdir is this repository.
    own = PLAYBOOKS.parent if path.stem == "clive-flood" else PLAYBOOKS / path.stem
    assert pb.workdir == own.resolve()
    assert pb.budget.max_experiments and pb.stop.plateau
    for move in pb.search:
        text = (pb.workdir / move.file).read_text()
        current = re.search(move.pattern, text, re.MULTILINE).group(1)
        assert current not in move.values, f"{move.name}: the baseline is not a move"
    assert (pb.workdir / ".gitignore").is_file(), "build outputs stay out of checkpoints"


# --- any input: a Playbook or a PlaybookError, nothing else ------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for all generated playbooks (module scope: hypothesis reruns the test body)."""
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "work").mkdir()
    (folder / "work" / "kernel.c").write_text(KERNEL_C)
    return folder


_FIELDS = st.sampled_from(
    [
        "name",
        "workdir",
        "setup",
        "eval",
        "metric",
        "direction",
        "check",
        "budget",
        "repeats",
        "noise",
        "editable",
        "readonly",
        "stop",
        "search",
        "steps",
        "requires",
        "model",
        "bogus",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["work", "kernel.c", "(\\d+)", "x(", "maximize", "minimize", "make"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "file",
                    "pattern",
                    "values",
                    "type",
                    "command",
                    "keys",
                    "expect",
                    "regex",
                    "text",
                    "experiment_seconds",
                    "plateau",
                    "target",
                    "wait",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


def _load_text(folder: Path, text: str) -> None:
    path = folder / "fuzz.md"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(load_playbook(path), Playbook)
    except PlaybookError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_FIELDS | st.text(max_size=8), _VALUES, max_size=8), st.text(max_size=30))
def test_any_yaml_front_matter_gives_a_playbook_or_a_playbook_error(scratch: Path, fields: dict, body: str) -> None:
    _load_text(scratch, f"---\n{yaml.safe_dump(fields, allow_unicode=True)}---\n{body}")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
            st.sampled_from(
                [
                    "---",
                    "...",
                    "name: x",
                    "  - a",
                    "eval: |",
                    "{",
                    "[",
                    ": :",
                    "*a",
                    "&a x",
                    "<<: *a",
                    "!!python/object:os.system x",
                    "? x",
                    "\t",
                    "search:",
                    "  - {name: a, file: kernel.c, pattern: (x), values: [1]}",
                    "workdir: work",
                    "metric: '(\\d)'",
                    "2001-02-30: x",
                    "x: 2001-02-30",
                ]
            ),
        ),
        max_size=12,
    )
)
def test_any_text_gives_a_playbook_or_a_playbook_error(scratch: Path, lines: list[str]) -> None:
    _load_text(scratch, "\n".join(lines))


def test_the_sandbox_view_and_who_needs_a_gpu(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, "sandbox: {network: true, home: [.gitconfig], paths: [/srv/data]}"))
    assert (pb.sandbox.network, pb.sandbox.home, pb.sandbox.paths) == (True, (".gitconfig",), ("/srv/data",))
    assert not pb.needs_gpu
    assert load_playbook(PLAYBOOKS / "cuda.md").needs_gpu  # it requires nvcc and asks each worker for a GPU
    assert not load_playbook(PLAYBOOKS / "matmul.md").needs_gpu
    assert load_playbook(write(tmp_path, "requires: [nvidia-smi]")).needs_gpu
    assert not load_playbook(write(tmp_path, "requires: [nvidia-smi]\nsandbox: {gpu: false}")).needs_gpu
