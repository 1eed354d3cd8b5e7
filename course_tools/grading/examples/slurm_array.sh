#!/bin/bash
# Grade a class as a Slurm job array: each task grades its 1/N of the submissions (grade --shard I/N).
#
#   sbatch --array=1-8 course_tools/grading/examples/slurm_array.sh SUBMISSIONS OUT [grade options...]
#   # when every task is done:
#   .venv/bin/python -m course_tools.grading merge OUT/shard-*-of-8 --out OUT/class
#
# Submit from the course folder (its .venv made by `make setup`) on a file system every node
# sees. A task that is stopped or preempted can be run again (sbatch --array=3 ...): --resume
# skips what it had finished. Tested by tests/test_grading_shards.py, which runs it without Slurm.
#SBATCH --job-name=grade
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=grade-%A_%a.log
set -euo pipefail
SUBMISSIONS=$1
OUT=$2
shift 2
N=$SLURM_ARRAY_TASK_COUNT
I=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-1} + 1))  # 1..N whatever the array's first index
cd "${SLURM_SUBMIT_DIR:-.}"
exec "${PYTHON:-.venv/bin/python}" -m course_tools.grading grade "$SUBMISSIONS" --shard "$I/$N" \
    --out "$OUT/shard-$I-of-$N" --jobs "${SLURM_CPUS_PER_TASK:-1}" --resume "$@"
