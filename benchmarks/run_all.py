"""Run the Quantbook benchmarks and print (or write) the results table.

    .venv/bin/python benchmarks/run_all.py            # kernels, search, memory, engine: minutes
    .venv/bin/python benchmarks/run_all.py --all      # + notebooks, book build, explorers
    .venv/bin/python benchmarks/run_all.py --all --write   # ... into benchmarks/README.md

Every time is the median of several runs after a warm-up, and every figure is a ratio to a
reference measured in the same run (see common.py), so the table means something on a busy
machine too. Targets: quantbook within 2x of the best reference, peak memory within 3x of the
kernel's largest array, every notebook under 60 s, the book from clean under 5 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import common
import kernels
import search

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MARKER = "<!-- results: everything below is written by run_all.py --write -->"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log2-size", type=int, default=24,
                        help="element-wise kernels run on 2**N values (default 24)")
    parser.add_argument("--corpus", type=int, default=100_000, help="embeddings searched")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case")
    parser.add_argument("--notebooks", action="store_true", help="time every notebook (nbmake)")
    parser.add_argument("--notebook-cache", type=Path, default=None,
                        help="embedding cache for --notebooks (default: a fresh, empty one, "
                        "as on Colab; _build/quantbook-cache is the one `make test` uses)")
    parser.add_argument("--book", action="store_true",
                        help="build the book from clean and from cache in a scratch copy")
    parser.add_argument("--explorers", action="store_true",
                        help="explorer input-to-redraw latency in headless Chromium")
    parser.add_argument("--engine", action="store_true",
                        help="the ONNX Runtime engine table (chapter 14); part of the default "
                        "run, this flag adds it to --skip-kernels")
    parser.add_argument("--no-engine", action="store_true", help="leave out the engine table")
    parser.add_argument("--all", action="store_true", help="all of the above")
    parser.add_argument("--skip-kernels", action="store_true",
                        help="only the optional parts asked for")
    parser.add_argument("--scratch", type=Path,
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "quantbook-bench-book",
                        help="folder outside the repository where the book is copied and "
                        "built (deleted and rebuilt on every run)")
    parser.add_argument("--write", action="store_true", help="write the tables into README.md")
    args = parser.parse_args(argv)
    if args.all:
        args.notebooks = args.book = args.explorers = True
    return args


def mark(ok) -> str:
    return {True: "yes", False: "**no**", None: ""}[ok]


def timing_table(rows) -> list[str]:
    lines = [
        "| kernel | data | quantbook ms | best reference | reference ms | ratio | within 2x "
        "| copy ms | x copy |",
        "|---|---|--:|---|--:|--:|:-:|--:|--:|",
    ]
    for r in rows:
        ref, ref_s = r.best()
        copy = r.floor.get("np.copy")
        copy_cells = f"{copy * 1e3:.1f} | {r.seconds / copy:.1f}" if copy else " | "
        lines.append(
            f"| {r.kernel} | {r.data} | {r.seconds * 1e3:.1f} | {ref} | {ref_s * 1e3:.1f} "
            f"| {r.ratio():.2f} | {mark(r.met())} | {copy_cells} |"
        )
    return lines


def memory_table(rows) -> list[str]:
    lines = [
        "| kernel | input MB | output MB | peak MB | peak / largest array | within 3x |",
        "|---|--:|--:|--:|--:|:-:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.kernel} | {r.input_bytes / 1e6:.1f} | {r.output_bytes / 1e6:.1f} "
            f"| {r.peak_bytes / 1e6:.1f} | {r.multiple():.2f} | {mark(r.met())} |"
        )
    return lines


def seconds(value) -> str:
    if value is None:
        return ""
    if value != value:  # NaN: no time, see the note
        return "n/a"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.1f} s"


def duration_table(rows) -> list[str]:
    lines = ["| what | time | limit | met | note |", "|---|--:|--:|:-:|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {seconds(r.seconds)} | {seconds(r.limit)} | {mark(r.met())} "
                     f"| {r.note} |")
    return lines


def report(args, timings, memories, durations, loads, engine_table=None) -> str:
    info = common.machine()
    lines = ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {key} | `{value}` |" if key == "command" else f"| {key} | {value} |"
              for key, value in info.items()]
    lines += [f"| load average (1/5/15 min), {when} | {load} |" for when, load in loads]
    lines.append("")
    if timings:
        lines += ["## Speed", "", f"Median of {args.repeats} runs after a warm-up.", ""]
        lines += timing_table(timings) + [""]
    if memories:
        lines += ["## Peak memory", ""] + memory_table(memories) + [""]
    if engine_table:
        lines += ["## Engine (ONNX Runtime, chapter 14)", "", engine_table, ""]
    for group in dict.fromkeys(d.group for d in durations):
        lines += [f"## {group}", ""]
        lines += duration_table([d for d in durations if d.group == group]) + [""]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = HERE / "README.md"
    head = readme.read_text().split(MARKER)[0] if readme.exists() else "# Benchmarks\n\n"
    readme.write_text(f"{head.rstrip()}\n\n{MARKER}\n\n{text}")


def main(argv=None) -> int:
    args = parse_args(argv)
    timings, memories, durations, loads = [], [], [], []

    def starting(part: str) -> None:
        loads.append((f"start of {part}", common.load_average()))
        print(f"{part} ... (load average {loads[-1][1]})", flush=True)

    # The slow, optional parts first, so that the kernels are measured last.
    if args.notebooks or args.book or args.explorers:
        import book

        if args.notebooks:
            starting("notebooks")
            durations += book.time_notebooks(REPO, args.notebook_cache)
        if args.book:
            starting("book builds")
            durations += book.time_book_builds(REPO, args.scratch)
        if args.explorers:
            starting("explorer latency")
            durations += book.explorer_latency(REPO)
    if not args.skip_kernels:
        n = 2**args.log2_size
        starting("kernels")
        timings += kernels.run(n, args.repeats)
        starting("search")
        timings += search.run(args.corpus, args.repeats)
        starting("memory")
        memories = kernels.run_memory(n) + search.run_memory(args.corpus)
    engine_table = None
    if not args.no_engine and (args.engine or not args.skip_kernels):
        import engine as engine_bench

        starting("engine")
        engine_table = engine_bench.table(args.repeats)
    loads.append(("end", common.load_average()))

    text = report(args, timings, memories, durations, loads, engine_table)
    print(text)
    if args.write:
        write_readme(text)
        print(f"written to {HERE / 'README.md'}")
    missed = [t for t in timings if not t.met()] + [m for m in memories if not m.met()]
    missed += [d for d in durations if d.met() is False]
    print(f"{len(missed)} figure(s) miss their target" if missed else "all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
