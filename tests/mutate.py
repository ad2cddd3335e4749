"""Mutation testing: plant one small bug at a time and check that a test fails.

Not part of the test suite (too slow for CI); run it before resolving an issue that touches the
model, the runner, the optimizers or the analysis:

    python tests/mutate.py                          # the default modules and their tests
    python tests/mutate.py bench/mlp.py --jobs 2    # one module
    python tests/mutate.py --list bench/runner.py   # show the mutants, run nothing
    python tests/mutate.py --planted                # the named bugs below, against the whole suite

Each mutant changes one node of a module's syntax tree: a comparison (< and <=, > and >=, ==
and !=), an arithmetic operator (+ and -, * and /), a number (n -> n + 1, x -> 2x, 0 -> 1), a
boolean (and/or, True/False, a dropped ``not`` or unary minus), or a numpy function for its twin
(minimum/maximum, fmin/fmax, any/all, argmin/argmax, less/greater, floor/ceil).  Docstrings,
strings and annotations are left alone.  The mutated module replaces the original in a private
copy of the repository, and that module's tests run there (``-x``, first failure stops them).  A
mutant is *killed* when a test fails or errors, *survives* when all pass, and *times out* after
ten times the clean run (counted as killed: an infinite loop is caught).

The score is killed / (killed + survived).  Survivors are printed with their line, so each can be
killed by a test or named as harmless (an equivalent mutant).

``--planted`` runs the bugs of ``PLANTED`` instead, each against the whole test suite: bugs that
once got through, so that they never get through again.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> the tests that exercise it
TESTS = {
    "bench/mlp.py": ["tests/test_mlp.py", "tests/test_tails.py", "tests/test_perf.py"],
    "bench/runner.py": [
        "tests/test_runner.py",
        "tests/test_stagnation.py",
        "tests/test_restarts.py",
        "tests/test_readme.py",
    ],
    "bench/hessian.py": ["tests/test_hessian.py"],
    "bench/analysis/stats.py": ["tests/test_analysis.py", "tests/test_report.py"],
    "bench/analysis/compare.py": ["tests/test_compare.py"],
    "bench/analysis/endpoints.py": ["tests/test_endpoints.py"],
    "bench/analysis/attractors.py": ["tests/test_attractors.py"],
    "bench/analysis/landscape.py": ["tests/test_attractors.py", "tests/test_endpoints.py"],
    "optimizers/base.py": ["tests/test_optimizers.py", "tests/test_config.py"],
    "optimizers/gd.py": ["tests/test_optimizers.py"],
    "optimizers/momentum.py": ["tests/test_optimizers.py", "tests/test_perf.py"],
    "optimizers/rprop.py": ["tests/test_optimizers.py"],
    "optimizers/stagnation.py": ["tests/test_stagnation.py", "tests/test_restarts.py"],
    "optimizers/restarts.py": [
        "tests/test_restarts.py",
        "tests/test_stagnation.py",
        "tests/test_readme.py::test_the_restart_trigger_defaults_are_the_readmes",
    ],
    "optimizers/genetic.py": ["tests/test_genetic.py"],
    "optimizers/random_search.py": ["tests/test_restarts.py", "tests/test_runner.py"],
}

# (module, text, replacement, what the bug is): each must fail at least one test.
PLANTED = [
    (
        "optimizers/rprop.py",
        "(loss > state.prev_loss)",
        "(loss >= state.prev_loss)",
        "irprop+ backtracks on E(t) >= E(t-1)",
    ),
    (
        "optimizers/genetic.py",
        "rng.random(size) < s.mutation_probability",
        "rng.random(size) < s.crossover_probability",
        "the GA's mutation probability reads the crossover probability",
    ),
    ("bench/config.py", "patience: float = 0.25", "patience: float = 0.5", "default stagnation patience 0.5"),
    ("bench/config.py", "\n    min_delta: float = 1e-3", "\n    min_delta: float = 1e-2", "default min_delta 1e-2"),
    ("bench/runner.py", "diverged = ~np.isfinite(loss)", "diverged = np.isnan(loss)", "diverged counts NaN, not inf"),
    ("bench/mlp.py", "np.sqrt(6.0 / (lay.n_in", "np.sqrt(3.0 / (lay.n_in", "Glorot range sqrt(3 / (in + out))"),
    (
        "bench/mlp.py",
        "np.multiply(e, d, out=slope)\n    np.copyto(z, d)",
        "np.multiply(d, 1.0 - d, out=slope)\n    np.copyto(z, d)",
        "the logistic slope as a (1 - a) where z >= 0 (0 in the positive tail)",
    ),
    (
        "optimizers/stagnation.py",
        "\n            return watched & (best[:, None] >= keep * then)",
        "\n            return watched & (best[:, None] > keep * then)",
        "stuck only on a drop strictly less than min_delta (rows stepping together)",
    ),
    (
        "optimizers/stagnation.py",
        "\n        return watched & (best[:, None] >= keep * then)",
        "\n        return watched & (best[:, None] > keep * then)",
        "stuck only on a drop strictly less than min_delta (rows stepping apart)",
    ),
]

COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
NAME_SWAPS = {
    "minimum": "maximum",
    "maximum": "minimum",
    "fmin": "fmax",
    "fmax": "fmin",
    "any": "all",
    "all": "any",
    "argmin": "argmax",
    "argmax": "argmin",
    "less": "greater",
    "greater": "less",
    "floor": "ceil",
    "ceil": "floor",
}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int  # which mutation point, in walk order
    line: int
    description: str


def _skipped(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations and everything under them."""
    skip: set[int] = set()

    def under(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                under(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            under(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                under(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            under(node.annotation)
        if isinstance(node, ast.JoinedStr):
            under(node)
    return skip


def _points(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every mutation point of a tree, in a fixed order: (node, what the mutation does)."""
    skip = _skipped(tree)
    points = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare) and type(node.ops[0]) in COMPARE_SWAPS:
            points.append((node, f"{type(node.ops[0]).__name__} -> {COMPARE_SWAPS[type(node.ops[0])].__name__}"))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOP_SWAPS:
            points.append((node, f"{type(node.op).__name__} -> {BINOP_SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            points.append((node, f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            points.append((node, f"drop {type(node.op).__name__}"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            points.append((node, f"constant {node.value!r} -> {_new_constant(node.value)!r}"))
        elif isinstance(node, ast.Attribute) and node.attr in NAME_SWAPS and isinstance(node.ctx, ast.Load):
            points.append((node, f"{node.attr} -> {NAME_SWAPS[node.attr]}"))
    return points


def _new_constant(value: int | float | bool) -> int | float | bool:
    if isinstance(value, bool):
        return not value
    if value == 0:
        return 1
    return value + 1 if isinstance(value, int) else value * 2


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def generic_visit(self, node: ast.AST) -> ast.AST:
        node = super().generic_visit(node)
        if node is not self.target:
            return node
        if isinstance(node, ast.Compare):
            node.ops[0] = COMPARE_SWAPS[type(node.ops[0])]()
        elif isinstance(node, (ast.BinOp, ast.AugAssign)):
            node.op = BINOP_SWAPS[type(node.op)]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant):
            node.value = _new_constant(node.value)
        elif isinstance(node, ast.Attribute):
            node.attr = NAME_SWAPS[node.attr]
        return node


def mutants(module: str) -> list[Mutant]:
    tree = ast.parse((ROOT / module).read_text())
    return [Mutant(module, i, node.lineno, what) for i, (node, what) in enumerate(_points(tree))]


def mutated_source(mutant: Mutant) -> str:
    tree = ast.parse((ROOT / mutant.module).read_text())
    tree = copy.deepcopy(tree)
    target = _points(tree)[mutant.index][0]
    return ast.unparse(ast.fix_missing_locations(_Replace(target).visit(tree)))


def _copy_repository(into: Path) -> Path:
    for name in ("bench", "optimizers", "datasets", "tests"):
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    for name in ("pyproject.toml", "README.md"):  # the README: tests hold it to the code
        shutil.copy(ROOT / name, into / name)
    return into


def _pytest(workdir: Path, tests: list[str], timeout: float | None) -> tuple[int | None, float]:
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start
    return done.returncode, time.perf_counter() - start


def _each_in_a_workdir(items: list, test_one, workdirs: list[Path]) -> None:
    """``test_one(item, workdir)`` for every item, as many at once as there are workdirs."""
    free = list(workdirs)

    def lease(item) -> None:
        workdir = free.pop()
        try:
            test_one(item, workdir)
        finally:
            free.append(workdir)

    with ThreadPoolExecutor(len(workdirs)) as pool:
        list(pool.map(lease, items))


def _with_source(workdir: Path, module: str, source: str, tests: list[str], timeout: float | None) -> str:
    """Run ``tests`` in ``workdir`` with ``module`` replaced by ``source``: killed, survived or timeout."""
    try:
        (workdir / module).write_text(source)
        code, _ = _pytest(workdir, tests, timeout)
    finally:
        shutil.copy(ROOT / module, workdir / module)
    return "timeout" if code is None else ("survived" if code == 0 else "killed")


def _judge(mutant: Mutant, workdir: Path, results: dict[int, str], tests: list[str], timeout: float) -> None:
    results[mutant.index] = _with_source(workdir, mutant.module, mutated_source(mutant), tests, timeout)


def run(modules: list[str], jobs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdirs = [_copy_repository(Path(tmp) / f"w{j}") for j in range(jobs)]
        total_killed = total_survived = 0
        for module in modules:
            tests = TESTS[module]
            code, clean = _pytest(workdirs[0], tests, None)
            if code != 0:
                print(f"{module}: its tests fail without a mutant; fix them first", file=sys.stderr)
                return 1
            todo = mutants(module)
            print(f"{module}: {len(todo)} mutants, tests {' '.join(tests)} ({clean:.0f} s clean)", flush=True)
            results: dict[int, str] = {}
            judge = functools.partial(_judge, results=results, tests=tests, timeout=10 * clean + 30)
            _each_in_a_workdir(todo, judge, workdirs)
            survived = [m for m in todo if results[m.index] == "survived"]
            killed = len(todo) - len(survived)
            total_killed, total_survived = total_killed + killed, total_survived + len(survived)
            score = killed / len(todo) if todo else 1.0
            print(f"{module}: score {score:.1%} ({killed} killed, {len(survived)} survived)", flush=True)
            for m in survived:
                print(f"    survived  {module}:{m.line}  {m.description}", flush=True)
        n = total_killed + total_survived
        print(f"all: score {total_killed / max(n, 1):.1%} ({total_killed} of {n} mutants killed)")
    return 0


def run_planted(jobs: int) -> int:
    """Each bug of PLANTED against the whole suite; returns 1 if any got through."""
    outcome: dict[str, str] = {}

    def one(bug: tuple[str, str, str, str], workdir: Path) -> None:
        module, text, replacement, what = bug
        source = (ROOT / module).read_text()
        if source.count(text) != 1:
            outcome[what] = f"NOT PLANTED: {text!r} occurs {source.count(text)} times in {module}"
            return
        result = _with_source(workdir, module, source.replace(text, replacement), ["tests"], None)
        outcome[what] = "caught" if result == "killed" else "GOT THROUGH"

    with tempfile.TemporaryDirectory() as tmp:
        _each_in_a_workdir(PLANTED, one, [_copy_repository(Path(tmp) / f"w{j}") for j in range(jobs)])
    for *_, what in PLANTED:
        print(f"{outcome[what]:12s} {what}")
    return 0 if all(v == "caught" for v in outcome.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=list(TESTS), help="modules to mutate (default: all known)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested in parallel")
    parser.add_argument("--list", action="store_true", help="list the mutants and run nothing")
    parser.add_argument("--planted", action="store_true", help="run the named bugs of PLANTED instead")
    args = parser.parse_args()
    if args.planted:
        return run_planted(args.jobs)
    unknown = [m for m in args.modules if m not in TESTS]
    if unknown:
        parser.error(f"no tests are mapped for {', '.join(unknown)}; known: {', '.join(TESTS)}")
    if args.list:
        for module in args.modules:
            for m in mutants(module):
                print(f"{module}:{m.line}  {m.description}")
        return 0
    return run(args.modules, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
