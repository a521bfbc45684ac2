#!/usr/bin/env bash
# Install Synapse (and the bench-only plotting dependency) into bench/.venv-synapse.
#
# Idempotent: when the venv already holds the pinned Synapse series and matplotlib,
# it exits after one quick import check. Set SYNAPSE_SPEC to try another version.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/.venv-synapse"
spec="${SYNAPSE_SPEC:-matrix-synapse[postgres]~=1.163.0}"
python="${PYTHON:-python3.11}"
command -v "${python}" >/dev/null 2>&1 || python=python3

if [[ -x "${venv}/bin/python" ]] \
    && "${venv}/bin/python" - <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import matplotlib, psycopg2, synapse  # noqa: F401
sys.exit(0 if version("matrix-synapse").startswith("1.163.") else 1)
PY
then
    echo "synapse $("${venv}/bin/python" -c 'from importlib.metadata import version; print(version("matrix-synapse"))') already installed in ${venv}"
    exit 0
fi

"${python}" -m venv "${venv}"
"${venv}/bin/pip" install --quiet --upgrade pip
"${venv}/bin/pip" install --quiet "${spec}" "matplotlib>=3.8"
echo "installed synapse $("${venv}/bin/python" -c 'from importlib.metadata import version; print(version("matrix-synapse"))') into ${venv}"
