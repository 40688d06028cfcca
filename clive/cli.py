"""The command line: errors become one line and an exit code here, and only here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from clive import __version__
from clive.experiments.playbook import STRATEGIES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a program that `| head` stopped


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _port(text: str) -> int:
    value = _natural(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port (0-65535): {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clive",
        description="An agent that inhabits a terminal: it reads the screen, types keys, and "
        "keeps or discards experiments in git.",
        epilog="Exit codes: 0 done, 1 the run failed, 2 bad usage or input, 130 interrupted, 141 the output "
        "was closed early (| head).",
    )
    parser.add_argument("--version", action="version", version=f"clive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a playbook headless (progress on stderr)",
        description="Run a playbook: an experiment loop (eval + metric) or scripted steps.",
        epilog="examples:\n"
        "  clive run playbooks/matmul.md --max-experiments 12\n"
        "  clive run playbooks/matmul.md --policy claude --model claude-sonnet-4-6\n"
        "  clive run playbooks/matmul.md --workers 2          # two experiments at once, this machine\n"
        "  clive run playbooks/cuda.md --cluster 10.0.0.5:6379 --workers 8   # on a Ray cluster\n"
        "  clive run --resume 20261124-220313-8cc6\n"
        "Progress goes to stderr; the session (events, cast, results.tsv) to --sessions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("playbook", nargs="?", type=Path, help="the playbook (.md); optional with --resume")
    run.add_argument("--policy", choices=("scripted", "claude"), default="scripted",
                     help="who decides: the offline scripted policy (default) or Claude")
    run.add_argument("--workdir", type=Path, help="the folder or git repository to work on")
    run.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings go")
    run.add_argument("--max-experiments", type=_positive, metavar="N", help="stop after N experiments")
    run.add_argument("--max-cycles", type=_positive, metavar="N", help="stop after N observe-act cycles")
    run.add_argument("--resume", metavar="SESSION", help="continue an interrupted or killed session")
    run.add_argument("--model", help="model for --policy claude (default: $CLIVE_MODEL)")
    run.add_argument("--approve", action="store_true", help="ask before every action (on stdin)")
    run.add_argument("--deny", action="append", default=[], metavar="REGEX",
                     help="refuse commands matching REGEX (adds to the built-in guard)")
    sandboxing = run.add_mutually_exclusive_group()
    sandboxing.add_argument("--sandbox", action="store_true", default=None,
                            help="run the shell under bubblewrap in a view of the machine: system programs "
                            "read-only, the workdir and a scratch folder writable, an empty home, no network "
                            "(the default with --policy claude)")
    sandboxing.add_argument("--no-sandbox", action="store_false", dest="sandbox",
                            help="run a model's commands without the sandbox")
    run.add_argument("--sandbox-net", action="store_true", help="sandboxed, with the network reachable")
    run.add_argument("--workers", type=_positive, metavar="N",
                     help="keep N experiments in flight, each in its own terminal and working copy (needs "
                     "clive[cluster]; default: the playbook's workers, else 1)")
    run.add_argument("--cluster", metavar="ADDRESS",
                     help="run the workers on an existing Ray cluster (with --workers N, $RAY_ADDRESS says the same; "
                     "without either, --workers N starts a private Ray on 127.0.0.1 for the run)")
    run.add_argument("--search", choices=STRATEGIES, metavar="STRATEGY",
                     help="how the offline policy searches the playbook's moves: tpe (default: multivariate "
                     "TPE, learns how knobs interact), greedy (one knob at a time from the best), random, grid, "
                     "cmaes (needs the cmaes package), gp (needs torch)")
    run.add_argument("--seed", type=_natural, metavar="N", help="the search's random seed (default: the playbook's, "
                     "else a fresh one, recorded in meta.json)")
    run.add_argument("--tui", action="store_true", help="watch the run live in the viewer")
    run.add_argument("--serve", type=_port, metavar="PORT",
                     help="run headless and serve the live viewer to a browser on 127.0.0.1:PORT (0: a free "
                     "port; needs clive[serve])")

    sessions = sub.add_parser("sessions", help="list recorded sessions, one line each")
    sessions.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings are")

    replay = sub.add_parser("replay", help="open a recorded session")
    replay.add_argument("session", help="a session id or folder")
    replay.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings are")
    replay.add_argument("--print", action="store_true", dest="print_",
                        help="print the cycle timeline to stdout instead of opening the viewer")
    replay.add_argument("--no-follow", action="store_true", help="do not watch for new events")

    report = sub.add_parser(
        "report", help="what an experiment run found: best, speedup, noise, plateau, knob effects, near misses",
        description="Question an experiment run: baseline, best and speedup, keep rate, experiments per hour, "
        "the noise seen in repeats, whether it has plateaued, the effect of each knob, near misses (discarded "
        "within the noise of the best: candidates to combine) and the top experiments. Two sessions of one "
        "playbook are compared side by side.",
    )
    report.add_argument("session", nargs="+", metavar="SESSION", help="a session id or folder (two to compare)")
    report.add_argument("--json", action="store_true", help="print the report as JSON (for scripts and agents)")
    report.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings are")

    show = sub.add_parser("show", help="one experiment of a run: what it changed (its diff), its metric, why",
                          description="Print experiment N of a run: description, metric, status, why it was "
                          "tried, and its diff against the state it started from; discarded and crashed "
                          "experiments are kept under refs/clive/<session>/tried/<N>.")
    show.add_argument("session", help="a session id or folder")
    show.add_argument("n", type=_natural, metavar="N", help="the experiment's number (results.tsv's experiment column)")
    show.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings are")

    serve = sub.add_parser(
        "serve", help="the viewer in a browser: a recorded session, a run watched live, or the co-pilot",
        description="Serve the viewer to a web browser (needs clive[serve]): each browser that opens the "
        "printed address gets its own viewer. On 127.0.0.1 (the default) no token is needed; with --host "
        "the address carries one, and requests without it are refused.",
        epilog="examples:\n"
        "  clive serve 20261124-220313-8cc6                  # then open http://127.0.0.1:8000/\n"
        "  clive serve --port 0 --run playbooks/matmul.md --max-experiments 12\n"
        "  ssh -L 8000:127.0.0.1:8000 gpu-box                # a remote box's viewer, on this machine\n"
        "Options of serve come before --run; everything after it is the run's.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("session", nargs="?", help="a session id or folder")
    serve.add_argument("--run", nargs=argparse.REMAINDER, metavar="PLAYBOOK [RUN OPTIONS]",
                       help="start `clive run PLAYBOOK [RUN OPTIONS]` headless and serve it live; the "
                       "session stays served after the run ends, until Ctrl-C")
    serve.add_argument("--tui", nargs=argparse.REMAINDER, metavar="[PLAYBOOK] [TUI OPTIONS]",
                       help="the co-pilot (`clive tui [PLAYBOOK] [TUI OPTIONS]`): each browser that opens the "
                       "address starts a co-pilot session of its own, with a shell you drive from the page")
    serve.add_argument("--port", type=_port, help="the port (default 8000; 0 picks a free one)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1); any other needs the token the "
                       "printed address carries")
    serve.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings are")

    tui = sub.add_parser(
        "tui", help="the interactive co-pilot: approve (a), edit (e), reject (r), pause (p), take over (t)"
    )
    tui.add_argument("playbook", nargs="?", type=Path,
                     help="the playbook to run with you watching; without one you drive: e writes an action, "
                     "t types into the terminal")
    tui.add_argument("--policy", choices=("scripted", "claude"), default="scripted")
    tui.add_argument("--workdir", type=Path, help="the folder or git repository to work on")
    tui.add_argument("--model", help="model for --policy claude")
    tui.add_argument("--sandbox", action="store_true",
                     help="run the shell under bubblewrap (see clive run --help); the co-pilot is not sandboxed "
                     "unless asked, since you watch and approve")
    tui.add_argument("--ssh", metavar="USER@HOST",
                     help="start on a shell there: clive runs ssh in its terminal (key-based login; clive types no "
                     "password) and gives that shell its prompt markers, so commands there end exactly")
    tui.add_argument("--resume", metavar="SESSION",
                     help="continue a co-pilot session that was quit, interrupted or killed")
    tui.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings go")

    mcp = sub.add_parser(
        "mcp", help="serve terminals to an MCP client (Claude Code, Claude Desktop, ...); each is a recorded session",
        description="A Model Context Protocol server (needs clive[mcp]). Its tools open terminals, run commands\n"
        "(exit code, duration, complete output), press keys, type, look at the screen and the terminal's state,\n"
        "wait, interrupt, resize and checkpoint the working directory in git. Every terminal is recorded under\n"
        "--sessions (clive replay shows what the client did); the command guard and --deny apply, and password\n"
        "prompts are never typed into. Stdio by default; --http serves streamable HTTP on 127.0.0.1 with a\n"
        "bearer token.",
        epilog="examples:\n"
        "  claude mcp add clive -- clive mcp --sessions ~/clive-sessions\n"
        "  clive mcp --http 8765                 # prints the URL and a fresh bearer token on stderr\n"
        "  CLIVE_MCP_TOKEN=... clive mcp --http 8765 --host 0.0.0.0   # other machines too, same token\n"
        "The server closes every terminal it opened when the client goes (stdin closes) or it is stopped.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mcp.add_argument("--http", type=_port, metavar="PORT",
                     help="serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio (0: a free port)")
    mcp.add_argument("--host", help="with --http: listen on this address instead of 127.0.0.1 (clients on "
                     "other machines are then let in, still only with the token)")
    mcp.add_argument("--token", help="with --http: the bearer token clients must send (default: "
                     "$CLIVE_MCP_TOKEN, else a fresh one printed at start)")
    mcp.add_argument("--deny", action="append", default=[], metavar="REGEX",
                     help="refuse commands matching REGEX (adds to the built-in guard)")
    mcp.add_argument("--sessions", type=Path, default=Path("sessions"), help="where recordings go")

    sub.add_parser("demo", help="drive bash and vim in a real PTY and show what clive sees")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from clive.agent.policy import PolicyError
    from clive.experiments.errors import BadInput, RunFailed
    from clive.experiments.playbook import PlaybookError
    from clive.experiments.workspace import WorkspaceError
    from clive.session import SessionError
    from clive.terminal import TerminalError

    try:
        code = _dispatch(args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe meets the handler below
        return code
    except (BadInput, PlaybookError, SessionError, WorkspaceError) as exc:
        print(f"clive: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RunFailed, PolicyError, TerminalError) as exc:
        print(f"clive: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("clive: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read the output (head, grep -m1) has stopped: end quietly, as the tools around us
        # do. Python still flushes stdout on exit, which would fail again: point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OUTPUT_CLOSED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from clive.demo import run_demo

        return run_demo()
    if args.command == "run":
        from clive.experiments.runner import RunOptions, run

        options = RunOptions(
            playbook=args.playbook,
            policy=args.policy,
            workdir=args.workdir,
            sessions=args.sessions,
            max_experiments=args.max_experiments,
            resume=args.resume,
            model=args.model,
            approve=args.approve,
            deny=tuple(args.deny),
            max_cycles=args.max_cycles,
            sandbox=args.sandbox,
            sandbox_net=args.sandbox_net,
            workers=args.workers,
            cluster=args.cluster,
            search=args.search,
            seed=args.seed,
        )
        if args.serve is not None:
            from clive.experiments.errors import BadInput
            from clive.tui.serve import serve_run, without_serve

            if args.tui:
                raise BadInput("--tui and --serve both show the run: choose one")
            return serve_run(without_serve(args.argv[args.argv.index("run") + 1:]), port=args.serve,
                             keep_serving=False)
        if args.tui:
            from clive.experiments.runner import runs_in_parallel

            if runs_in_parallel(options):
                from clive.tui.watch import watch_run

                after_run = args.argv[args.argv.index("run") + 1:]
                return watch_run([a for a in after_run if a != "--tui"])
            from clive.tui.live import run_live

            return run_live(options, auto_approve=True)
        return run(options)
    if args.command == "sessions":
        from clive.session import format_sessions, list_sessions

        summaries = list_sessions(args.sessions)
        if not summaries:
            print(f"clive: no sessions in {args.sessions}", file=sys.stderr)
        for line in format_sessions(summaries):
            print(line)
        return EXIT_OK
    if args.command == "replay":
        from clive.session import SessionReader, format_timeline, format_workers, resolve_session

        session_dir = resolve_session(args.session, args.sessions)
        if not args.print_:
            from clive.tui.replay import run_replay

            return run_replay(session_dir, follow=not args.no_follow)
        reader = SessionReader.open(session_dir)
        for line in format_timeline(reader) + format_workers(reader):
            print(line)
        for problem in reader.problems:
            print(f"clive: {problem}", file=sys.stderr)
        return EXIT_OK
    if args.command == "report":
        import json

        from clive.experiments.errors import BadInput
        from clive.experiments.report import build_report, compare_reports, format_report
        from clive.session import resolve_session

        if len(args.session) > 2:
            raise BadInput(f"report takes one session, or two to compare; got {len(args.session)}")
        reports = [build_report(resolve_session(ref, args.sessions)) for ref in args.session]
        if args.json:
            print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        else:
            lines = format_report(reports[0]) if len(reports) == 1 else compare_reports(*reports)
            print("\n".join(lines))
        return EXIT_OK
    if args.command == "show":
        from clive.experiments.report import show_experiment
        from clive.session import resolve_session

        print("\n".join(show_experiment(resolve_session(args.session, args.sessions), args.n)))
        return EXIT_OK
    if args.command == "serve":
        from clive.experiments.errors import BadInput
        from clive.session import resolve_session
        from clive.tui.serve import serve_copilot, serve_run, serve_session

        if args.tui is not None:
            if args.session is not None or args.run is not None:
                raise BadInput("serve takes one of SESSION, --run PLAYBOOK or --tui [PLAYBOOK]")
            tui_args = build_parser().parse_args(["tui", *args.tui])  # bad co-pilot options: said first
            if tui_args.playbook is not None:
                from clive.experiments.playbook import load_playbook

                load_playbook(tui_args.playbook, workdir=tui_args.workdir)  # a bad playbook: said now, once
            return serve_copilot(args.tui, args.host, args.port)
        if (args.session is None) == (args.run is None):
            raise BadInput("serve takes a SESSION, or --run PLAYBOOK [run options]")
        if args.run is None:
            return serve_session(resolve_session(args.session, args.sessions), args.host, args.port)
        if not args.run:
            raise BadInput("--run needs a playbook (or --resume SESSION)")
        run_args = build_parser().parse_args(["run", *args.run])  # bad run options: said before anything starts
        if run_args.tui or run_args.serve is not None:
            raise BadInput("after --run come the run's own options, not --tui or --serve")
        return serve_run(args.run, args.host, args.port)
    if args.command == "mcp":
        from clive.mcp.command import McpOptions, serve

        return serve(McpOptions(sessions=args.sessions, http=args.http, host=args.host, token=args.token,
                                deny=tuple(args.deny)))
    if args.command == "tui":
        from clive.experiments.runner import RunOptions, check_ssh_target
        from clive.tui.live import run_live

        policy = args.policy if args.playbook is not None else "human"  # a resumed session keeps its own
        ssh = check_ssh_target(args.ssh) if args.ssh is not None else None
        return run_live(RunOptions(playbook=args.playbook, policy=policy, sessions=args.sessions,
                                   workdir=args.workdir, model=args.model, resume=args.resume,
                                   sandbox=args.sandbox, ssh=ssh))
    return EXIT_USAGE
