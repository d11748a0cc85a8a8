#!/usr/bin/env bash
# Set up (if needed) and build the documentation site (MkDocs Material + mkdocstrings) into site/.
# --strict turns every warning into an error: a broken link, a missing page or an API reference (`::: name`)
# that does not resolve fails the build. Preview while editing docs/: .venv/bin/mkdocs serve
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export NO_MKDOCS_2_WARNING=1   # Material's banner about MkDocs 2.0; not about this site
exec .venv/bin/mkdocs build --strict --site-dir site "$@"
