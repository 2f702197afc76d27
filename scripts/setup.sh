#!/usr/bin/env bash
# Set up everything the workflow needs, idempotently:
#   .venv/ with pinned packages (torch 2.13.0 CPU first, then requirements.txt, then this package),
#   and the Debian packages of the offline corpus and WordNet, fetched into results/downloads/debian/
#   (`apt-get download` + `dpkg -x`: no root needed, nothing installed system-wide).
# Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing pinned packages into .venv (a few minutes the first time)"
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# Debian packages: the corpus (Austen, KJV) and WordNet for the fuzzy-induction experiment.
debs=results/downloads/debian
mkdir -p "$debs"
for pkg in r-cran-janeaustenr bible-kjv-text bible-kjv wordnet-base; do
  if ! ls "$debs/${pkg}"_*.deb >/dev/null 2>&1; then
    if ! (cd "$debs" && apt-get download "$pkg" >/dev/null 2>&1); then
      # Empty package lists on a fresh machine: refresh them when we may.
      if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
      (cd "$debs" && apt-get download "$pkg" >/dev/null 2>&1) || {
        echo "setup: could not fetch Debian package $pkg. Copy ${pkg}_*.deb into $debs/ by hand" >&2
        echo "       (from any Debian machine: apt-get download $pkg) and rerun." >&2
        exit 1
      }
    fi
  fi
done

# Tools the tests use, optional for the workflow itself: pdftoppm (poppler-utils) renders report
# pages; a headless Chromium checks the HTML report renders offline. Installed when we are root.
if [ "$(id -u)" = 0 ]; then
  command -v pdftoppm >/dev/null 2>&1 || apt-get install -y -qq poppler-utils >/dev/null 2>&1 \
    || echo "setup: poppler-utils not installed (report page tests will be skipped)" >&2
  command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1 \
    || apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null 2>&1 \
    || echo "setup: no headless Chromium (the browser test of the report will be skipped)" >&2
fi
echo "setup: ready (.venv, $(ls "$debs" | wc -l) Debian packages in $debs)"
