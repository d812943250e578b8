"""The ``cmhbench`` command: argument parsing and messages only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Mapping, Sequence

import cmhbench
from cmhbench.conventions import PER_QUERY_METRICS, RESCORE_METRICS, VARIANCES
from cmhbench.errors import UserError
from cmhbench.logs import configure_cli_logging

EXIT_USAGE = 2
EXIT_BUG = 1
BUG_HINT = ("cmhbench: this is a bug, not a mistake of yours: please report it with the command line and the "
            "traceback above")


class UsageError(UserError):
    """Bad input the CLI itself detects (options that do not fit together)."""


#: Where tune's run options really differ from run's; the rest is declared once (cmhbench.harness.config).
TUNE_DIFFERENCES: dict[str, dict[str, Any]] = {
    "methods": {"required": True, "help": "comma-separated registered methods"},
    "preset": {"help": "values of the parameters not searched (default: paper)"},
    "bits": {"help": "comma-separated bit lengths; the objective averages over them (default: 32)"},
    "seeds": {"help": "comma-separated seeds; the objective averages over them (default: 0)"},
    "param": {"help": "fix a hyper-parameter (repeatable); a searched parameter given here is still searched"},
    "out": {"required": True, "help": "study folder: study.journal, trials/, tuned.toml"},
}


def _add_run_options(parser: argparse.ArgumentParser,
                     differences: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Every run option, as :mod:`cmhbench.harness.config` declares it, with a command's own differences."""
    from cmhbench.harness.config import flag_of, run_options

    for key, option in run_options().items():
        if option.flag:
            how = {**option.argparse_kwargs(), **(differences or {}).get(key, {})}
            parser.add_argument(flag_of(key), dest=key, **how)


def _run_values(args: argparse.Namespace) -> dict[str, Any]:
    """The run options of a parsed command line (None where not given)."""
    from cmhbench.harness.config import run_options

    return {key: getattr(args, key) for key, option in run_options().items() if option.flag}


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler's stop): the command stops as on Ctrl-C, workers
    included, and says so; exit code 143 (128 + 15), as a shell reports it."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmhbench", description="Benchmark suite for unsupervised cross-modal hashing.")
    parser.add_argument("--version", action="version", version=f"cmhbench {cmhbench.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run methods × datasets × bits × seeds and store every cell",
                         description="Run a grid of cells into a results folder; stored cells are skipped. "
                                     "With no options: every built-in method on the synthetic set, quick preset.")
    _add_run_options(run)
    run.add_argument("--force", action="store_true", help="recompute cells that are already stored")
    run.add_argument("--into-existing", dest="into_existing", action="store_true",
                     help="write into an existing --out folder that holds files cmhbench did not write (its "
                          "results.csv and leaderboard.md are rewritten); without it such a folder is refused")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")

    tune = sub.add_parser("tune", help="tune each method's hyper-parameters on a validation split (Optuna TPE)",
                          description="One seeded TPE study per method over the search ranges it declares; every "
                                      "trial is a set of cells scored on a validation split carved from the "
                                      "training/database rows (never the test queries). Writes OUT/tuned.toml; "
                                      "run again to continue an interrupted study.")
    _add_run_options(tune, TUNE_DIFFERENCES)
    tune.add_argument("--trials", type=int, required=True, help="completed trials per method")
    tune.add_argument("--metric", default="map@all", help="objective: mean of I→T and T→I of this metric on the "
                                                          "validation split (default: map@all)")
    tune.add_argument("--sampler-seed", dest="sampler_seed", type=int, default=0, help="TPE sampler seed (default: 0)")
    tune.add_argument("--search", metavar="NAME[,NAME...]",
                      help="search only these parameters (the others keep their values; default: every "
                           "search range the method declares)")

    priors = sub.add_parser("priors", help="choose every method's similarity prior, then its other values, on a "
                                           "validation split (one dataset)",
                            description="Stage 1 scores a grid of each method's prior parameters (the same size "
                                        "for every method) by the ROC-AUC of its similarity against validation "
                                        "labels; stage 2 tunes the other parameters with the same --trials for "
                                        "every method. Writes OUT/priors.toml, a run config with the paper rows "
                                        "and one -val row per method. See docs/tuning.md.")
    _add_run_options(priors, {**TUNE_DIFFERENCES, "out": {"required": True,
                                                          "help": "folder: priors.toml, study.journal, trials/"}})
    priors.add_argument("--trials", type=int, required=True, help="stage 2's completed trials per method")
    priors.add_argument("--metric", default="map@all", help="stage 2's objective (default: map@all)")
    priors.add_argument("--sampler-seed", dest="sampler_seed", type=int, default=0,
                        help="stage 2's TPE sampler seed (default: 0)")

    board = sub.add_parser("leaderboard", help="tables from stored results",
                           description="Build leaderboards from one or more results folders (merged).")
    board.add_argument("outs", nargs="+", metavar="OUT", help="results folders")
    board.add_argument("--metric", default="map@all", help="metric to tabulate (default: map@all)")
    board.add_argument("--format", choices=["md", "csv", "latex", "html"], default="md",
                       help="md (default), csv (tidy, long), latex (booktabs) or html (one self-contained page)")
    board.add_argument("-o", "--output", help="write to this file instead of standard output")
    board.add_argument("--methods", help="only these methods, comma-separated (default: every stored method)")
    board.add_argument("--ci", action="store_true", help="show 95%% intervals and mark entries not significantly "
                                                          "different from the best (md only; metrics with "
                                                          "per-query scores)")
    board.add_argument("--published", action="store_true",
                       help="beside our entries, the published values measured the same way, our difference and "
                            "whether ours reproduces them (md and html; computes the --ci intervals)")
    board.add_argument("--variance", choices=VARIANCES, default=VARIANCES[0],
                       help="what --ci's intervals and tests cover: seeds (default: training runs and queries; "
                            "3+ seeds) or queries (these trained models only)")

    cmp = sub.add_parser("compare", help="paired comparison of two methods, per dataset, direction and bits",
                         description="Paired difference A − B on the same queries (within each seed's split), "
                                     "its 95% interval and p-value, Holm-corrected over the rows.")
    cmp.add_argument("outs", nargs="+", metavar="OUT", help="results folders")
    cmp.add_argument("--methods", required=True, help="two methods: A,B")
    cmp.add_argument("--metric", default="map@all", help="map@all (default), map@50, tmap@all or p@r2")
    cmp.add_argument("--variance", choices=VARIANCES, default=VARIANCES[0],
                     help="seeds (default: t-test over training runs, with the query term where every seed "
                          "answered the same queries; 3+ seeds) or queries (bootstrap and permutation over "
                          "queries: these trained models only)")

    rank = sub.add_parser("rank", help="mean rank of each method across datasets, with a Friedman test",
                          description="Mean rank of each method over all leaderboard entries (dataset × protocol "
                                      "× coding × direction × bits); with three or more datasets, a Friedman test "
                                      "whose blocks are datasets and the Nemenyi critical difference.")
    rank.add_argument("outs", nargs="+", metavar="OUT", help="results folders")
    rank.add_argument("--metric", default="map@all", help="metric to rank by (default: map@all)")
    rank.add_argument("--methods", help="rank only these methods, comma-separated (default: every stored method)")

    report = sub.add_parser("report", help="figures, LaTeX and a self-contained HTML page from stored results",
                            description="Build a report from one or more results folders (no recomputation).")
    report.add_argument("outs", nargs="+", metavar="OUT", help="results folders")
    report.add_argument("-o", "--output", help="report folder (default: OUT/report of the first OUT)")
    report.add_argument("--metric", default="map@all", help="metric of the LaTeX table and the page's first view")

    ev = sub.add_parser("evaluate", help="re-score stored codes, or score codes made outside cmhbench",
                        description="Re-score every finished cell of results folders with the current metrics "
                                    "(no refitting), or score an external codes file with --codes.")
    ev.add_argument("outs", nargs="*", metavar="OUT", help="results folders to re-score in place")
    ev.add_argument("--metrics", default=",".join(RESCORE_METRICS),
                    help=f"comma-separated metrics (default: {','.join(RESCORE_METRICS)}; wider than run's, "
                         "since re-scoring is for adding metrics)")
    ev.add_argument("--codes", help="an .npz of codes made elsewhere: <dir>_query, <dir>_database, labels "
                                    "(format: README, section 'Scoring codes made elsewhere')")
    ev.add_argument("--labels", help="an .npz with query_labels and database_labels, if the codes file lacks them")

    chk = sub.add_parser("check", help="verify every stored cell (record schema, arrays checksum)",
                         description="Verify each cell of results folders: a valid record named by its folder, "
                                     "and an arrays.npz matching the record's checksum. Corrupt cells are "
                                     "listed (exit 1); `cmhbench run` computes them again.")
    chk.add_argument("outs", nargs="+", metavar="OUT", help="results folders")
    chk.add_argument("--rescore", action="store_true",
                     help="also re-derive every stored score from the stored codes and name any that differ")

    prune = sub.add_parser("prune", help="delete the cells of superseded method versions (the stale rows)",
                           description="List the cells that leaderboards flag as stale (computed by an older "
                                       "version of a method, or of its teacher, than other cells of that method "
                                       "beside them) and which of them a newer version's finished cell, of the same "
                                       "parameters, bits and seed, replaces. With --yes, delete the replaced ones "
                                       "and rewrite results.csv and leaderboard.md; a stale cell not replaced yet "
                                       "is kept.")
    prune.add_argument("outs", nargs="+", metavar="OUT", help="results folders (judged together, as a merged "
                                                              "leaderboard is)")
    prune.add_argument("--yes", action="store_true", help="delete them (default: only list them)")

    lst = sub.add_parser("list", help="list methods or datasets", description="List methods or datasets.")
    what = lst.add_subparsers(dest="what", metavar="WHAT")
    what.required = True
    methods = what.add_parser("methods", help="registered methods, built-in and plugins",
                              description="Registered methods (built-in and plugins) with kind, fidelity and venue.")
    methods.add_argument("--format", choices=["text", "md"], default="text",
                         help="text (default) or md: the built-in methods as README's Markdown table")
    listed = what.add_parser("datasets", help="datasets and whether their files are found",
                             description="Datasets, their protocols, and whether their files are found.")
    listed.add_argument("--data-dir", dest="data_dir",
                        help="where to look for dataset files (default: $CMHBENCH_DATA)")

    cache = sub.add_parser("cache", help="inspect or clear the cache of bit-independent work",
                           description="The cache holds work that methods reuse across bit lengths "
                                       "(teachers, generators, graphs). Safe to clear at any time.")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--cache-dir", dest="cache_dir", help="cache folder (default: $CMHBENCH_CACHE or "
                                                             "~/.cache/cmhbench)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    configure_cli_logging()
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        if args.command == "run":
            return _run_command(args, argv)
        if args.command == "tune":
            return _tune(args, argv)
        if args.command == "priors":
            return _priors(args, argv)
        if args.command == "leaderboard":
            return _leaderboard(args)
        if args.command == "cache":
            return _cache(args)
        if args.command == "report":
            return _report(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "rank":
            return _rank(args)
        if args.command == "check":
            return _check(args)
        if args.command == "prune":
            return _prune(args)
        return _list(args)
    except UserError as exc:  # wherever it was raised (a plugin's too): the message names what to fix
        print(f"cmhbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"cmhbench: {what}; every finished cell is stored: run the same command again to resume",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    except Exception:  # anything else is a bug: keep its traceback
        traceback.print_exc()
        print(BUG_HINT, file=sys.stderr)
        return EXIT_BUG
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _run_command(args: argparse.Namespace, argv: list[str]) -> int:
    from cmhbench import datasets, store
    from cmhbench.analysis import leaderboard
    from cmhbench.harness.config import run_settings
    from cmhbench.evaluation import check_metric
    from cmhbench.harness.estimate import estimate
    from cmhbench.harness.executor import plan, run_cells
    from cmhbench.harness.grid import build_cells
    from cmhbench.methods import registry
    from cmhbench.harness.runner import RunContext

    settings = run_settings(_run_values(args), registry.builtin_names())  # names only: nothing is imported
    for metric in settings.metrics:
        check_metric(metric)
    sources = {name: datasets.resolve(name, settings.data_dir, cache_dir=settings.cache_dir)
               for name in settings.grid.datasets}
    cells = build_cells(settings.grid, sources)
    store.prepare(settings.out, into_existing=args.into_existing)
    ctx = RunContext.from_settings(settings, force=args.force, argv=("cmhbench", *argv))
    grid = settings.grid
    sizes = [(grid.methods, "method"), (grid.datasets, "dataset"), (grid.bits, "bit length"),
             (grid.seeds, "seed"), (grid.database_coding, "coding")]
    print(f"cmhbench run: {' × '.join(_count(len(v), what) for v, what in sizes)}, preset {grid.preset}"
          f"{_preset_note(settings)} → {settings.out}", file=sys.stderr)
    if len(grid.methods) > 1 and any(registry.get(base).info.kind == "deep" for base in {c.base for c in cells}):
        from cmhbench.analysis.power import seed_advice

        print(seed_advice(len(grid.seeds)), file=sys.stderr)
    try:
        todo, _ = plan(cells, settings.out, args.force)
        workers = (os.cpu_count() or 1) if settings.jobs == -1 else settings.jobs
        line = estimate(todo, settings.out, workers).line()
    except store.StoreError:  # an unreadable record: `cmhbench check` names it; the run recomputes it
        line = None
    if line:
        print(line, file=sys.stderr)
    summary = run_cells(cells, sources, ctx, jobs=settings.jobs, backend=settings.backend,
                        scheduler=settings.scheduler, progress=args.progress)
    print(summary.line(), file=sys.stderr)
    for outcome in summary.failed:
        print(f"failed: {outcome.label}: {outcome.error}", file=sys.stderr)
    full = os.strerror(errno.ENOSPC)
    if any(full in (outcome.error or "") for outcome in summary.failed):
        print(f"cmhbench: the disk holding {settings.out} is full ({full}); every cell stored before stays "
              "stored: free some space and run the same command again", file=sys.stderr)
        return 1
    print(leaderboard.write_tables(settings.out, settings.metrics))
    collapsed = leaderboard.collapse_warning(store.load_results(settings.out), keys={c.key for c in cells})
    if collapsed:
        print(f"warning: {collapsed}", file=sys.stderr)
    print(f"figures, LaTeX and an HTML page: cmhbench report {settings.out}  (writes {settings.out / 'report'})",
          file=sys.stderr)
    return 1 if summary.failed else 0


def _tune(args: argparse.Namespace, argv: list[str]) -> int:
    from cmhbench import datasets
    from cmhbench.harness.config import run_settings
    from cmhbench.evaluation import check_metric
    from cmhbench.methods import registry
    from cmhbench.harness.runner import RunContext
    from cmhbench.harness.tune import DEFAULTS, TUNED_FILE, check_tunable, tune

    search = [name.strip() for name in args.search.split(",") if name.strip()] if args.search else None
    settings = run_settings(_run_values(args), [], DEFAULTS)
    check_metric(args.metric)
    check_tunable(settings.grid.methods, search)
    sources = {name: datasets.resolve(name, settings.data_dir, cache_dir=settings.cache_dir)
               for name in settings.grid.datasets}
    ctx = RunContext.from_settings(settings, argv=("cmhbench", *argv))
    results = tune(settings, sources, ctx, trials=args.trials, metric=args.metric,
                   sampler_seed=args.sampler_seed, search=search,
                   report=lambda line: print(line, file=sys.stderr))
    for r in results:
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.best_params.items())
        default = f"; defaults {r.default_value:.4f}" if r.default_value is not None else ""
        print(f"{r.variant}: validation {args.metric} {r.best_value:.4f} after {r.completed} trials{default} ({values})")
    print(f"wrote {settings.out / TUNED_FILE}; run it with: cmhbench run --config {settings.out / TUNED_FILE} "
          "--out RESULTS", file=sys.stderr)
    return 0


def _priors(args: argparse.Namespace, argv: list[str]) -> int:
    from cmhbench import datasets
    from cmhbench.harness.config import run_settings
    from cmhbench.evaluation import check_metric
    from cmhbench.harness.priors import PRIORS_FILE, check_priors, choose_priors
    from cmhbench.harness.tune import DEFAULTS
    from cmhbench.harness.runner import RunContext

    settings = run_settings(_run_values(args), [], DEFAULTS)
    check_metric(args.metric)
    check_priors(settings.grid.methods)
    sources = {name: datasets.resolve(name, settings.data_dir, cache_dir=settings.cache_dir)
               for name in settings.grid.datasets}
    ctx = RunContext.from_settings(settings, argv=("cmhbench", *argv))
    choices = choose_priors(settings, sources, ctx, trials=args.trials, metric=args.metric,
                            sampler_seed=args.sampler_seed, command=" ".join(("cmhbench", *argv)),
                            report=lambda line: print(line, file=sys.stderr))
    for c in choices:
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in c.study.best_params.items())
        print(f"{c.variant}: prior AUC {c.top[0].auc:.4f} (best of {len(c.points)}); validation {args.metric} "
              f"{c.study.best_value:.4f} after {c.study.completed} trials ({values})")
    print(f"wrote {settings.out / PRIORS_FILE}; run it with: cmhbench run --config {settings.out / PRIORS_FILE} "
          "--out RESULTS", file=sys.stderr)
    return 0


def _preset_note(settings) -> str:
    """Why this preset, when the user did not name it: the tour's quick, or paper implied by --methods."""
    if "preset" in settings.config:
        return ""
    if settings.grid.preset == "quick":
        return " (the default tour's; --preset paper for the papers' settings)"
    return (" (the default once --methods or --datasets is given: the papers' settings, slow for deep methods; "
            "--preset quick for a fast look)")


def _count(n: int, noun: str) -> str:
    """'1 method', '3 methods'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _report(args: argparse.Namespace) -> int:
    from cmhbench.report import build_report

    dest = Path(args.output) if args.output else Path(args.outs[0]) / "report"
    report = build_report([Path(o) for o in args.outs], dest, args.metric)
    print(f"wrote {report.index}, {report.latex} and {len(report.figures)} figures (PNG and SVG) in "
          f"{dest / 'figures'}")
    return 0


def _check_per_query(metric: str, what: str) -> None:
    """Statistics need per-query scores, which only some metrics store: say so before reading any."""
    if metric not in PER_QUERY_METRICS:
        raise UsageError(f"{what}: per-query scores are stored for {', '.join(PER_QUERY_METRICS)}, not {metric!r}")


def _selected(frame, methods: str | None):
    """The stored results of ``--methods`` (all of them without it)."""
    from cmhbench.harness.config import parse_list
    from cmhbench.analysis.leaderboard import select_methods

    return frame if methods is None else select_methods(frame, parse_list(methods, "methods"))


def _leaderboard(args: argparse.Namespace) -> int:
    from cmhbench import store
    from cmhbench.analysis import leaderboard

    if args.published and args.format not in ("md", "html"):
        raise UsageError(f"--published works with --format md or html, not {args.format}")
    frame = _selected(store.load_results(*args.outs), args.methods)
    if args.format == "latex":
        from cmhbench.report.latex import to_latex

        text = to_latex(frame, args.metric)
    elif args.format == "html":
        from cmhbench.report.html import to_html

        statistics = None
        if args.published:
            from cmhbench.analysis.stats import leaderboard_statistics

            _check_per_query(args.metric, "--published")
            statistics = {args.metric: leaderboard_statistics(frame, args.metric, variance=args.variance)}
        text = to_html(frame, metric=args.metric, statistics=statistics, published=args.published)
    elif args.format == "csv":
        text = leaderboard.to_csv(frame)
    elif args.ci or args.published:
        from cmhbench.analysis.stats import leaderboard_statistics

        _check_per_query(args.metric, "--published" if args.published else "--ci")
        text = leaderboard.to_markdown(frame, args.metric,
                                       leaderboard_statistics(frame, args.metric, variance=args.variance),
                                       published=args.published)
    else:
        text = leaderboard.to_markdown(frame, args.metric)
    if args.output:
        store.write_text_atomic(args.output, text)
        print(f"wrote {args.output} ({args.format})", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cmhbench.harness.config import parse_list
    from cmhbench.evaluation import check_metric
    from cmhbench.evaluation.rescore import load_npz, score_codes_file
    from cmhbench.harness.rescoring import rescore_folder

    metrics = parse_list(args.metrics, "metrics")
    for metric in metrics:
        check_metric(metric)
    if args.codes:
        given = load_npz(args.labels) if args.labels else {}
        labels = {k: v for k, v in given.items() if k in ("query_labels", "database_labels")}
        scores = score_codes_file(args.codes, metrics, **labels)
        for direction, values in scores.items():
            print(direction, " ".join(f"{m}={v:.4f}" for m, v in values.items()))
        return 0
    if not args.outs:
        raise UsageError("give results folders to re-score, or --codes FILE")
    for out in args.outs:
        result = rescore_folder(out, metrics)
        print(f"{out}: re-scored {result.cells} cells with {', '.join(metrics)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from cmhbench import store
    from cmhbench.analysis.stats import compare_methods, compare_text

    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if len(names) != 2:
        raise UsageError(f"--methods takes two methods A,B, got {args.methods!r}")
    _check_per_query(args.metric, "compare")
    frame = store.load_results(*args.outs)
    missing = [m for m in names if frame.empty or m not in set(frame["method"])]
    if missing:
        raise UsageError(f"no stored cells of {', '.join(missing)} in {', '.join(args.outs)}")
    table = compare_methods(frame, names[0], names[1], args.metric, args.variance)
    if table.empty:
        raise UsageError(f"{names[0]} and {names[1]} share no finished seed")
    print(compare_text(table, args.metric), end="")
    return 0


def _rank(args: argparse.Namespace) -> int:
    from cmhbench import store
    from cmhbench.analysis.stats import rank_methods, ranking_entries

    entries = ranking_entries(_selected(store.load_results(*args.outs), args.methods), args.metric)
    print(rank_methods(entries).to_markdown(args.metric))
    return 0


def _check(args: argparse.Namespace) -> int:
    from cmhbench import store

    corrupt = 0
    for out in args.outs:
        total, problems = store.check(out)
        for key, problem in sorted(problems.items()):
            print(f"corrupt: {store.cells_dir(out) / key}: {problem}")
        unverified = store.unverified(out)
        print(f"{out}: {total} cells, {total - len(problems)} intact, {len(problems)} corrupt"
              + (" (cmhbench run computes them again)" if problems else "")
              + (f"; {len(unverified)} unverified (records written before they carried a checksum: "
                 "check --rescore tests their scores)" if unverified else ""), file=sys.stderr)
        corrupt += len(problems)
        if args.rescore:
            from cmhbench.harness.rescoring import rescore_differences

            differing = rescore_differences(out)
            for key, found in sorted(differing.items()):
                print(f"differs: {store.cells_dir(out) / key}: {'; '.join(found)}")
            print(f"{out}: stored scores re-derived from the stored codes: {len(differing)} cell(s) differ",
                  file=sys.stderr)
            corrupt += len(differing)
    return 1 if corrupt else 0


def _prune(args: argparse.Namespace) -> int:
    from cmhbench.harness.pruning import prune, stale_groups

    where = ", ".join(args.outs)
    total, groups = stale_groups(*args.outs)
    for group in groups:
        print(f"stale: {group.describe()}")
    replaced = sum(len(g.keys) for g in groups)
    if not groups:
        print(f"{where}: no stale cells among {total}", file=sys.stderr)
    elif not replaced:
        print(f"{where}: no stale cell is replaced by a newer version yet; nothing to delete", file=sys.stderr)
    elif not args.yes:
        print(f"{where}: {replaced} of {total} cells are stale and replaced; nothing deleted "
              "(run again with --yes to delete them)", file=sys.stderr)
    else:
        deleted = prune(args.outs, groups)
        print(f"{where}: deleted {deleted} stale cells"
              + ("; results.csv and leaderboard.md rewritten" if deleted else ""), file=sys.stderr)
    return 0


def _cache(args: argparse.Namespace) -> int:
    from cmhbench.datasets.cache import cache_usage, clear_cache, default_cache_dir

    folder = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if args.action == "clear":
        left = clear_cache(folder)
        print(f"cleared {folder}" + (f" (left alone, not cmhbench's: {', '.join(left)})" if left else ""))
        return 0
    usage = cache_usage(folder)
    if not usage:
        print(f"{folder}: empty (nothing cached yet)")
        return 0
    print(f"{folder}:")
    for part in usage:
        print(f"  {part.part:<24} {part.files:>7} files {part.bytes / 2**20:>10.1f} MB")
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from cmhbench.methods import catalog, registry

        print(catalog.markdown() if args.format == "md" else catalog.table(), end="" if args.format == "md" else "\n")
        for plugin, error in registry.plugin_errors().items():
            print(f"plugin {plugin} failed to load and is skipped: {error}", file=sys.stderr)
    else:
        from cmhbench import datasets
        from cmhbench.published import protocols_by_dataset

        print(datasets.listing(args.data_dir, published=protocols_by_dataset()), end="")
    return 0
