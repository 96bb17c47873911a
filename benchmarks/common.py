"""What every benchmark module shares: timing, peak memory, result rows, the machine.

Timing: each case runs once to warm up, then ``repeats`` times; the median of
``time.perf_counter`` differences is reported. The cases of one comparison are run in turns
(A, B, C, A, B, C, ...) so that a change in the machine's load hits all of them alike: the ratios
stay meaningful on a shared machine even when the absolute times move.

Memory: ``tracemalloc`` sees every NumPy allocation (NumPy reports its buffers to it), so the
traced peak while a kernel runs, output included, is the memory the kernel needs on top of its
input (allocated before tracing starts). It is reported as a multiple of the kernel's largest
array, its input or its output, whichever is larger (``Memory.multiple``), and the target
``MEMORY_TARGET`` applies to that multiple: a decoder must hold its output, 7x its input for
Q4_0 -> float32, so a target on the input alone would fail every decoder for memory it cannot
avoid, while against the larger array a hidden full-size float copy still shows (+1x or more).
torch's allocations are invisible to tracemalloc, so torch references get no memory figure.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

SPEED_TARGET = 2.0  # quantbook time / best reference time
MEMORY_TARGET = 3.0  # peak traced memory / bytes of the larger of input and output


@dataclass
class Timing:
    """One kernel against its references: median seconds, measured in the same run."""

    group: str
    kernel: str
    data: str
    seconds: float
    references: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)  # e.g. a plain copy of the bytes
    target: float = SPEED_TARGET  # the largest ratio that meets the target

    def best(self) -> tuple[str, float]:
        name = min(self.references, key=self.references.get)
        return name, self.references[name]

    def ratio(self) -> float:
        return self.seconds / self.best()[1]

    def met(self) -> bool:
        return self.ratio() <= self.target


@dataclass
class Memory:
    """Peak traced memory of one kernel call, output included.

    Measured against the larger of input and output: a decoder that turns 1 byte into 4 bytes
    of float32 cannot stay within 3x of its input, but a hidden float64 copy of its output (2x
    the output on top of it) still shows.
    """

    kernel: str
    input_bytes: int
    output_bytes: int
    peak_bytes: int

    def multiple(self) -> float:
        return self.peak_bytes / max(self.input_bytes, self.output_bytes)

    def met(self) -> bool:
        return self.multiple() <= MEMORY_TARGET


@dataclass
class Duration:
    """A wall-clock duration with its own limit (notebooks, book builds, explorer redraws)."""

    group: str
    name: str
    seconds: float
    limit: float | None = None
    note: str = ""

    def met(self) -> bool | None:
        return None if self.limit is None else self.seconds <= self.limit


def time_cases(cases: dict, repeats: int = 7) -> dict[str, float]:
    """Median seconds of each callable in ``cases``, warmed up, timed in turns."""
    for run in cases.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def compare(group, kernel, data, ours, references, floor=None, repeats=7,
            target=SPEED_TARGET) -> Timing:
    """Time ``ours`` against ``references`` (and ``floor``), all callables, in one go."""
    floor = floor or {}
    cases = {"quantbook": ours, **references, **floor}
    medians = time_cases(cases, repeats)
    return Timing(
        group,
        kernel,
        data,
        medians["quantbook"],
        {name: medians[name] for name in references},
        {name: medians[name] for name in floor},
        target,
    )


def nbytes(result) -> int:
    """Bytes of an array, a tensor or a tuple of them."""
    if isinstance(result, tuple):
        return sum(nbytes(r) for r in result)
    return np.asarray(result).nbytes


def memory(kernel: str, run, *inputs) -> Memory:
    """Peak traced memory while ``run()`` executes, its result included, and the sizes."""
    run()  # warm-up: imports and caches are not the kernel's memory
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Memory(kernel, sum(nbytes(a) for a in inputs), nbytes(result), peak - base)


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "n/a"


def machine() -> dict[str, str]:
    """CPU model, cores, RAM and the versions that matter, as printable strings."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    ram = "n/a"
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        ram = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    versions = {"Python": platform.python_version()}
    for package in ("numpy", "torch", "faiss-cpu", "gguf", "jupyter-book"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        **versions,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": " ".join([os.path.relpath(sys.executable)] + sys.argv),
    }
