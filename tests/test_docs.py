"""The docs ship with the repo: every link resolves inside it, nothing points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOC_PATH = re.compile(r"(?<![\w/.-])((?:docs|config|workflow|benchmarks|profiles)/[\w./-]+\.(?:md|yaml|rst|py))")
#: Names of the founding team's private notes; a clone does not contain them.
OUTSIDE = ("REFER" + "ENCE.md", "CONVEN" + "TIONS.md")  # spelled in parts so this file passes too
#: Paths the docs name as examples for the user to create.
EXAMPLES = {"profiles/slurm-mycluster/config.yaml"}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (e.g. an unpacked release): every file
        return [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return [REPO / line for line in out.stdout.splitlines() if (REPO / line).is_file()]


def text_files(suffixes: tuple[str, ...]) -> list[Path]:
    return [p for p in tracked_files() if p.suffix in suffixes or p.name in ("Snakefile", "Makefile")]


def test_markdown_links_resolve_inside_the_repo():
    broken = []
    for md in text_files((".md",)):
        for target in LINK.findall(md.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # URLs, mailto:, anchors
            path = (md.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or REPO not in (path, *path.parents):
                broken.append(f"{md.relative_to(REPO)} -> {target}")
    assert not broken, "links to missing files or outside the repo:\n" + "\n".join(broken)


def test_paths_named_in_docs_and_code_exist():
    missing = []
    for f in text_files((".md", ".py", ".smk", ".yaml", ".rst", ".cff")):
        for path in DOC_PATH.findall(f.read_text(encoding="utf-8", errors="replace")):
            path = path.rstrip(".")
            if "<" in path or "*" in path or "{" in path or path in EXAMPLES:
                continue
            if not (REPO / path).exists():
                missing.append(f"{f.relative_to(REPO)}: {path}")
    assert not missing, "named files that do not exist:\n" + "\n".join(sorted(set(missing)))


def test_nothing_refers_to_files_outside_the_repo():
    offenders = []
    for f in text_files((".md", ".py", ".smk", ".yaml", ".rst", ".cff", ".toml", ".cfg", ".txt", ".sh")):
        text = f.read_text(encoding="utf-8", errors="replace")
        rel = f.relative_to(REPO)
        for name in OUTSIDE:
            if name in text:
                offenders.append(f"{rel}: {name}")
        # test data may come from the shared datasets folder beside the checkout; nothing else may
        if "../shared" in text and rel.parts[0] != "tests":
            offenders.append(f"{rel}: ../shared")
    assert not offenders, "references to files outside the repo:\n" + "\n".join(offenders)
