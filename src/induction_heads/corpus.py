"""The offline English corpus: public-domain prose that installs by Debian package name.

Two sources, both public domain, both fetched with ``apt-get download`` and unpacked with
``dpkg -x`` (no root, no R, no network beyond Debian's archive):

* Jane Austen's six novels, from ``r-cran-janeaustenr`` (an R lazy-load database, read with
  the PyPI package ``rdata``);
* the King James Bible, from ``bible-kjv-text`` + ``bible-kjv`` (printed by its ``bible`` program).

The text is split into documents (chapters / books), and a seeded fraction of documents is held
out, so held-out text is never seen in training.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from .metrics import atomic_write_text

AUSTEN_PACKAGE = "r-cran-janeaustenr"
KJV_PACKAGES = ("bible-kjv-text", "bible-kjv")

SOURCES = {
    "austen": {
        "packages": (AUSTEN_PACKAGE,),
        "title": "Jane Austen's six published novels",
        "origin": "Debian package r-cran-janeaustenr (Project Gutenberg texts)",
        "license": "public domain",
    },
    "kjv": {
        "packages": KJV_PACKAGES,
        "title": "The King James Version of the Bible (1611/1769)",
        "origin": "Debian packages bible-kjv-text and bible-kjv",
        "license": "public domain",
    },
}


class CorpusError(RuntimeError):
    """A corpus source could not be obtained or read."""


def download_debian_package(package: str, dest_dir: Path) -> Path:
    """Fetch ``package``'s .deb from Debian's archive into ``dest_dir`` (no root needed)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(dest_dir.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        proc = subprocess.run(
            ["apt-get", "download", package], cwd=tmp, capture_output=True, text=True
        )
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise CorpusError(
                f"`apt-get download {package}` failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-500:]}\n"
                f"This machine cannot fetch the corpus package. Offline alternative: copy "
                f"{package}_*.deb (from any Debian machine: `apt-get download {package}`) into "
                f"{dest_dir}/ and rerun; or run `apt-get update` first if the package lists are empty."
            )
        final = dest_dir / debs[0].name
        shutil.move(str(debs[0]), final)
    return final


def extract_deb(deb: Path, dest_dir: Path) -> Path:
    """Unpack a .deb's files (not its scripts) under ``dest_dir`` with ``dpkg -x``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(deb), str(dest_dir)], check=True)
    return dest_dir


# --------------------------------------------------------------------------- Austen


def read_r_lazyload_db(rdx: Path, rdb: Path) -> dict[str, object]:
    """Read every variable of an R lazy-load database (``Rdata.rdx`` index + ``Rdata.rdb`` blobs).

    The index is a gzip'd RDS file mapping names to (offset, length); each blob is a 4-byte
    big-endian length followed by a zlib stream of one serialized R object.
    """
    import rdata

    index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(rdx.read_bytes())))
    blob = rdb.read_bytes()
    out: dict[str, object] = {}
    for name, (offset, length) in index["variables"].items():
        raw = zlib.decompress(blob[int(offset) + 4 : int(offset) + int(length)])
        out[str(name)] = rdata.conversion.convert(rdata.parser.parse_data(raw))
    return out


_AUSTEN_CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+[0-9IVXLC]+", re.MULTILINE)


def austen_documents(root: Path) -> list[str]:
    """Austen's novels split into chapters (one document each), from an unpacked package root."""
    data = root / "usr/lib/R/site-library/janeaustenr/data"
    novels = read_r_lazyload_db(data / "Rdata.rdx", data / "Rdata.rdb")
    docs: list[str] = []
    for name in sorted(novels):
        lines = [str(x) for x in novels[name]]
        text = _join_wrapped_lines(lines)
        chapters = [c.strip() for c in _AUSTEN_CHAPTER.split(text)]
        docs.extend(c for c in chapters if len(c) > 200 and c not in ("CHAPTER", "Chapter"))
    return docs


def _join_wrapped_lines(lines: list[str]) -> str:
    """Undo hard line wrapping: blank lines separate paragraphs, other newlines become spaces."""
    paragraphs, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(paragraphs)


# --------------------------------------------------------------------------- KJV

_VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+)\s+(.*)$")


def kjv_documents(root: Path) -> list[str]:
    """The King James Bible split into chapters, printed by the package's own ``bible`` program."""
    program = root / "usr/bin/bible"
    data_dir = root / "usr/lib"
    proc = subprocess.run(
        [str(program), "-f", "-p", str(data_dir), "Gen1:1-Rev22:21"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise CorpusError(f"{program} failed (exit {proc.returncode}): {proc.stderr[-300:]}")
    chapters: dict[tuple[str, str], list[str]] = {}
    for line in proc.stdout.splitlines():
        m = _VERSE.match(line)
        if m:
            chapters.setdefault((m.group(1), m.group(2)), []).append(m.group(4).strip())
    return [" ".join(verses) for verses in chapters.values()]


# --------------------------------------------------------------------------- split


@dataclass(frozen=True)
class CorpusSplit:
    train: list[str]
    heldout: list[str]


def split_documents(docs: list[str], heldout_fraction: float, seed: int) -> CorpusSplit:
    """Hold out a seeded random subset of whole documents (at least one each side)."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if len(docs) < 2:
        raise ValueError("need at least two documents to make a held-out split")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_held = min(len(docs) - 1, max(1, round(heldout_fraction * len(docs))))
    held = set(order[:n_held])
    return CorpusSplit(
        train=[d for i, d in enumerate(docs) if i not in held],
        heldout=[d for i, d in enumerate(docs) if i in held],
    )


DOCUMENT_SEPARATOR = "\n\n"


def read_documents(path: Path) -> list[str]:
    """Documents as written by :func:`write_documents` (separated by an empty line)."""
    text = path.read_text(encoding="utf-8")
    return [d for d in text.split(DOCUMENT_SEPARATOR) if d.strip()]


def write_documents(docs: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = [d.replace(DOCUMENT_SEPARATOR, "\n") for d in docs]
    path.write_text(DOCUMENT_SEPARATOR.join(clean) + "\n", encoding="utf-8")


def build_documents(source: str, package_dir: Path, unpack_dir: Path) -> list[str]:
    """Fetch, unpack and read one named source (``austen`` or ``kjv``)."""
    if source not in SOURCES:
        raise CorpusError(f"unknown corpus source {source!r}; known: {sorted(SOURCES)}")
    root = unpack_dir / source
    for package in SOURCES[source]["packages"]:
        extract_deb(download_debian_package(package, package_dir), root)
    return austen_documents(root) if source == "austen" else kjv_documents(root)


def build_corpus(
    sources: list[str],
    out_dir: Path,
    package_dir: Path,
    heldout_fraction: float,
    seed: int,
    max_documents: int | None = None,
) -> dict:
    """Build ``train.txt``, ``heldout.txt`` and ``corpus.json`` (sources, licences, sizes)."""
    out_dir = Path(out_dir)
    docs, info = [], {"sources": [], "heldout_fraction": heldout_fraction, "seed": seed}
    with tempfile.TemporaryDirectory() as unpack:
        for source in sources:
            source_docs = build_documents(source, Path(package_dir), Path(unpack))
            if max_documents is not None:
                source_docs = source_docs[:max_documents]
            docs.extend(source_docs)
            info["sources"].append(
                {**{k: v for k, v in SOURCES[source].items() if k != "packages"},
                 "name": source, "packages": list(SOURCES[source]["packages"]),
                 "documents": len(source_docs), "characters": sum(map(len, source_docs))}
            )  # fmt: skip
    split = split_documents(docs, heldout_fraction, seed)
    write_documents(split.train, out_dir / "train.txt")
    write_documents(split.heldout, out_dir / "heldout.txt")
    info.update(train_documents=len(split.train), heldout_documents=len(split.heldout))
    atomic_write_text(out_dir / "corpus.json", json.dumps(info, indent=2) + "\n")
    return info
