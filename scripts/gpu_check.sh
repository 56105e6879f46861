#!/usr/bin/env bash
# Everything to check on a GPU machine, in one command (from the repository root, or from anywhere):
#
#   scripts/gpu_check.sh                 # all parts, in this order:
#   scripts/gpu_check.sh parity          #   the CPU-vs-GPU parity test (tests/test_device_parity.py), verbose
#   scripts/gpu_check.sh unit            #   every unit test (tests/), on whatever device each test picks
#   scripts/gpu_check.sh lessons         #   every lesson through nbval (the lessons use course_lib.device(): the GPU)
#   scripts/gpu_check.sh timing          #   a few methods timed on the CPU and the GPU (scripts/gpu_timing.py)
#
# Several parts can be named: `scripts/gpu_check.sh parity timing`. It sets up .venv first if needed (make setup),
# prints nvidia-smi and torch's view of the device, and writes one log per part under $OUT (default:
# ${TMPDIR:-/tmp}/gpu_check). Exit status: 0 if every part passed. Without a GPU it still runs: the parity test skips with a
# message and the timing table has a CPU column only (a dry run).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-${TMPDIR:-/tmp}/gpu_check}"
mkdir -p "$OUT"
PY=.venv/bin/python
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(parity unit lessons timing)

if [ ! -x "$PY" ]; then
    make setup || { echo "make setup failed" >&2; exit 2; }
fi

{
    date
    if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi; else echo "nvidia-smi: not found (no NVIDIA GPU?)"; fi
    "$PY" - <<'EOF'
import torch
import course_lib
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"GPU: {torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
print(f"course_lib.device() -> {course_lib.device()}")
EOF
} 2>&1 | tee "$OUT/device.txt"

status=0
run() {  # run NAME COMMAND...: log to $OUT/NAME.txt, remember a failure
    local name=$1
    shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.txt"
    echo "=== $name: exit $rc after $((SECONDS - start)) s (log: $OUT/$name.txt)"
    [ $rc -eq 0 ] || status=1
}

for part in "${PARTS[@]}"; do
    case $part in
        parity)  run parity "$PY" -m pytest -q -s -rA -o addopts="" -p no:cacheprovider tests/test_device_parity.py ;;
        unit)    run unit "$PY" -m pytest -q -o addopts="" -p no:cacheprovider tests/ ;;
        lessons) run lessons "$PY" -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env lessons/ ;;
        timing)  run timing env OUT="$OUT" "$PY" scripts/gpu_timing.py ;;
        *) echo "unknown part '$part' (parity, unit, lessons, timing)" >&2; status=2 ;;
    esac
done
echo "gpu_check: $([ $status -eq 0 ] && echo 'all passed' || echo 'FAILURES, see the logs') (logs in $OUT)"
exit $status
