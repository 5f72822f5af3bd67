# Sourced by the device scripts: the repository root as the working folder, the carried wheels
# (.whl/, the device image lacks datasets) on the path, the offline and unbuffered settings, the
# output folder ($OUT, default runs/device) and the machine's name.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
out=${OUT:-runs/device}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU: $(uname -m) CPU"
