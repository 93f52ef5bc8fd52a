#!/bin/bash
# Runs the indexbench harness against moorage and its peers (nginx static tree, devpi-server,
# pypiserver) in one sitting on this machine, so the figures compare as ratios.
#
#   INDEXBENCH=/path/to/indexbench bash bench/run.sh [SCALE] [PROFILES]
#
# SCALE defaults to "medium"; PROFILES to "static-nginx devpi pypiserver moorage".
# moorage is installed from this checkout into /tmp/bench-venvs/moorage; results land in
# bench/results/<profile>-<scale>.json; `bash bench/table.sh` prints the summary.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
: "${INDEXBENCH:?set INDEXBENCH to the directory of the indexbench harness (indexbench.py)}"
SCALE=${1:-medium}
PROFILES=${2:-"static-nginx devpi pypiserver moorage"}
EXTRA=${BENCH_ARGS:-"--wrk-repeats 3 --install-repeats 3 --quiet-wait 30"}

bash "$INDEXBENCH/setup_env.sh"
python3 -m venv /tmp/bench-venvs/moorage
/tmp/bench-venvs/moorage/bin/pip install -q --upgrade "$REPO"
python3 "$INDEXBENCH/indexbench.py" gen --scale "$SCALE"
mkdir -p "$HERE/results"
for prof in $PROFILES; do
  if [ "$prof" = moorage ]; then profile="$HERE/profiles/moorage.toml"; else profile="$prof"; fi
  echo "=== $prof $SCALE $(date +%T)"
  # shellcheck disable=SC2086
  timeout 5400 python3 "$INDEXBENCH/indexbench.py" run --profile "$profile" --scale "$SCALE" \
    --results-dir "$HERE/results" $EXTRA > "$HERE/results/$prof-$SCALE.log" 2>&1 || echo "    $prof failed: see bench/results/$prof-$SCALE.log"
done
python3 "$INDEXBENCH/indexbench.py" table "$HERE"/results/*-"$SCALE".json
