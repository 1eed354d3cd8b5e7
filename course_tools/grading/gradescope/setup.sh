#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (an Ubuntu image).
# It installs what is missing of Python 3.11+ (with venv) and bubblewrap (the grader's sandbox)
# from Ubuntu's packages, then, in a virtual environment, the course's pinned packages, torch as
# its CPU build, and puts the bundled course on that environment's path.
#
# Optional environment (Gradescope sets none of these):
#   AUTOGRADER_ROOT   the root instead of /autograder (tests lay out a throwaway one)
#   AUTOGRADER_VENV   where the virtual environment goes (default: $AUTOGRADER_ROOT/venv)
#   TORCH_INDEX_URL   where torch comes from (default: the index the bundle was built with);
#                     set it empty to take torch from pip's own configuration
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, pip.conf: read by pip as usual (a mirror)
set -euo pipefail

ROOT="${AUTOGRADER_ROOT:-/autograder}"
SRC="$ROOT/source"
VENV="${AUTOGRADER_VENV:-$ROOT/venv}"
TORCH_PIN="@TORCH@"
TORCH_INDEX_URL="${TORCH_INDEX_URL-@TORCH_INDEX@}"

python_ok() { command -v "$1" >/dev/null 2>&1 && "$1" -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
find_python() {
    for py in python3.13 python3.12 python3.11 python3; do
        if python_ok "$py"; then echo "$py"; return 0; fi
    done
}

apt_install() {  # Ubuntu's packages, where we may (Gradescope runs this as root)
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq && APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

PY="$(find_python || true)"
if [ -z "$PY" ]; then
    echo "Installing Python 3.11 from Ubuntu's packages"
    apt_install python3.11 python3.11-venv || true
    PY="$(find_python || true)"
fi
# bubblewrap is wanted, not needed: without it the grader says so in every result and grades with the clean kernel alone
command -v bwrap >/dev/null 2>&1 || apt_install bubblewrap || echo "warning: could not install bubblewrap"
if [ -z "$PY" ]; then
    echo "setup.sh: no Python 3.11 or newer with venv here, and apt-get could not install python3.11." >&2
    exit 1
fi
echo "Python: $(command -v "$PY") ($("$PY" --version))"

"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q)
if [ -n "$TORCH_INDEX_URL" ]; then
    "${PIP[@]}" --index-url "$TORCH_INDEX_URL" "$TORCH_PIN"
else
    "${PIP[@]}" "$TORCH_PIN"
fi
"${PIP[@]}" -r "$SRC/requirements.txt"

# The course as bundled (course/): on the environment's path as it is, with no build step.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$SRC/course" > "$SITE/course.pth"

"$VENV/bin/python" - <<'PYEOF'
import torch

import course_tools.grading.autograder  # noqa: F401 (the grader and its dependencies import)
import course_utils

assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build: set TORCH_INDEX_URL to CPU wheels"
print(f"torch {torch.__version__} (CPU build); course_utils from {course_utils.__file__}")
PYEOF
if command -v bwrap >/dev/null 2>&1; then
    echo "bubblewrap: $(command -v bwrap) (whether it can sandbox here is checked at each run)"
else
    echo "bubblewrap: not installed; submissions will be graded with the clean kernel alone, and their results say so"
fi
