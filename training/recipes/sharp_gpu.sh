#!/usr/bin/env bash
# Issue 10's whole retrain (sharp_cpu.sh pipeline, then aggregate and ship) on a lent GPU machine, in the few
# calls a lease allows. Written 2026-12-02 (ninth working period), when runs/ had not survived two working periods
# and the CPU plan needs far more hours than one period has; checked here with a stand-in fer-train
# (tests/training/test_recipes.py), NOT yet run on a GPU: no GPU has been lent to this project's tasks so far.
# Usage: training/recipes/sharp_gpu.sh STAGE  (pack | stash | run | collect | wrapper | status)
#   pack          here: .gpu/ (git-ignored) gets FER2013 as xz parts small enough to travel one per call
#                 beside the tree, CK+, their checksums and the one wheel the device image lacks; it prints
#                 the device calls to make
#   stash         there: copies the carried parts into $W (outside the repository copy, kept while the
#                 machine stays warm)
#   run SECONDS   there: unpacks the data once every part is stashed, starts the pipeline in its own process
#                 session (it goes on between calls while the machine is held), waits until it ends or
#                 SECONDS pass less GPU_SHIP_S (240: what aggregate + ship need), then aggregate + ship once
#                 it has ended (in the next call if too little time is left), and collect
#   collect       there: what comes back in $OUT: results.tar.gz (every small record of runs/: metrics,
#                 histories, calibration, alignment, gates, logs; no weights, logits or soft labels) and,
#                 after a ship, the chosen student's FP16 model folder in $OUT/model
#   wrapper       there: writes $W/bin/fer-train (this repository copy on the image's Python: nothing to install
#                 but the carried wheel) and prints its path; run uses it
#   status        either side: what is stashed, running and finished
# The same recipe as on the CPU (same teachers, students, seeds, epochs); only RECIPE_SLOTS (trainings at
# once: all four teachers, then the nine plain students beside the NL chain) and the data folders differ, and
# fer-train picks the GPU and its bf16 autocast by itself (--device / --amp auto). Limits that shaped this
# (device tool README): 64 MiB travel per call with the ~20 MB tree (FER2013 is 68 MB of JPEG, 52 MB as
# tar.xz; the index hashes the files' bytes, so the files themselves travel), 8 files of 16 MiB back, 10 min a
# call, 15 min of device time per task, 30 s warm between calls. docs/decisions.md has the plan.
set -euo pipefail
cd "$(dirname "$0")/../.."
G=.gpu
W=${GPU_WORK:-/tmp/fer-gpu}
PART_BYTES=${GPU_PART_BYTES:-30000000}
SLOTS=${GPU_SLOTS:-9}
OUTDIR=${OUT:-$W/out}
R=runs/sharp
pipeline_running() { [ -f $W/pipeline.pid ] && kill -0 "$(cat $W/pipeline.pid)" 2> /dev/null; }
fer_train() {  # $W/bin/fer-train: the repository copy on the device image's own packages (no install)
  mkdir -p $W/bin
  cat > $W/bin/fer-train << EOF
#!/usr/bin/env python3
import sys
sys.path[:0] = ["$PWD", "$W/site"]
from training.cli import main
sys.exit(main())
EOF
  chmod +x $W/bin/fer-train
}
unpack() {  # the data under $W/data once every part is stashed and matches its checksum; false until then
  [ -f $W/data/fer2013.done ] && return 0
  [ -f $W/stash/SHA256SUMS ] || return 1
  local f
  while read -r _ f; do [ -f "$W/stash/$f" ] || return 1; done < $W/stash/SHA256SUMS
  (cd $W/stash && sha256sum --quiet -c SHA256SUMS) || { echo "$0: a stashed part is corrupt" >&2; exit 1; }
  mkdir -p $W/data
  cat $W/stash/fer2013.tar.xz.part-* | xz -dc | tar -C $W/data -xf -
  xz -dc $W/stash/ckplus48.tar.xz | tar -C $W/data -xf -
  if compgen -G "$W/stash/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target $W/site $W/stash/*.whl
  fi
  touch $W/data/fer2013.done
}

case "${1:?stage}" in
pack)
  grep -qx '/.gpu/' .gitignore || { echo "$0: add /.gpu/ to .gitignore first" >&2; exit 2; }
  rm -rf $G && mkdir -p $G
  tar -C ../shared/data -cf - fer2013 | xz -9 -T2 | split -b "$PART_BYTES" - $G/fer2013.tar.xz.part-
  tar -C ../shared/data -cf - ckplus48 | xz -9 > $G/ckplus48.tar.xz
  # the only package fer-train needs that the device image lacks (KINDS.md's list), for its Python 3.12; or the
  # wheels of folder GPU_WHEELS (an offline pack)
  if [ -n "${GPU_WHEELS:-}" ]; then
    cp "$GPU_WHEELS"/*.whl $G/ 2> /dev/null || true
  else
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d $G "platformdirs>=3.0"
  fi
  (cd $G && sha256sum -- fer2013.tar.xz.part-* ckplus48.tar.xz $(ls ./*.whl 2> /dev/null) > SHA256SUMS.tmp \
      && mv SHA256SUMS.tmp SHA256SUMS)
  parts=($G/fer2013.tar.xz.part-*)
  echo "packed: $(du -sh $G | cut -f1) in $G; the device calls, one after another (30 s warm between them):"
  for i in "${!parts[@]}"; do
    carry="\"${parts[$i]}\", \"$G/SHA256SUMS\""
    if [ "$i" = 0 ]; then
      carry="$carry, \"$G/ckplus48.tar.xz\""
      for w in $G/*.whl; do [ -f "$w" ] && carry="$carry, \"$w\""; done
    fi
    if [ "$i" -lt $(( ${#parts[@]} - 1 )) ]; then
      echo "  run(command='training/recipes/sharp_gpu.sh stash', carry=[$carry])"
    else
      echo "  run(command='training/recipes/sharp_gpu.sh stash && training/recipes/sharp_gpu.sh run 560', carry=[$carry], timeout_s=590)"
    fi
  done
  echo "  then, while it has not ended: run(command='training/recipes/sharp_gpu.sh run 560', timeout_s=590)"
  ;;
stash)
  mkdir -p $W/stash
  for f in $G/*; do [ -f "$f" ] && cp "$f" $W/stash/; done
  echo "stashed: $(ls $W/stash | tr '\n' ' ')"
  ;;
run)
  secs=${2:?seconds this call may take}
  end=$(( $(date +%s) + secs - ${GPU_SHIP_S:-240} ))
  unpack || { echo "$0: not every part is stashed yet: $(ls $W/stash 2>/dev/null | tr '\n' ' ')" >&2; exit 1; }
  # fer-train: FER_TRAIN if set (the tests' stand-in), else the repository copy run by the image's Python
  [ -n "${FER_TRAIN:-}" ] || { fer_train; export FER_TRAIN=$W/bin/fer-train; }
  "$FER_TRAIN" --help > /dev/null || { echo "$0: $FER_TRAIN does not start" >&2; exit 1; }
  export FER2013_DIR=$W/data/fer2013 CKPLUS_DIR=$W/data/ckplus48 RECIPE_SLOTS=$SLOTS
  mkdir -p $R
  if [ ! -f $W/pipeline.rc ] && ! pipeline_running; then
    # its own process session: it and its trainings outlive this call while the machine is held
    setsid bash -c "echo \$\$ > $W/pipeline.pid; training/recipes/sharp_cpu.sh resume; echo \$? > $W/pipeline.rc" \
        >> $R/gpu_pipeline.log 2>&1 < /dev/null &
    sleep 2
  fi
  while pipeline_running && [ "$(date +%s)" -lt $end ]; do
    sleep "${GPU_POLL_S:-30}"; echo "$(date +%T): $(pgrep -fc 'fer-train (teacher|student) ' || true) trainings running"
  done
  [ -f $W/pipeline.rc ] && echo "pipeline ended with status $(cat $W/pipeline.rc): see $R/gpu_pipeline.log"
  if [ "$(cat $W/pipeline.rc 2> /dev/null)" = 0 ] && [ ! -f $W/ship.rc ] && [ "$(date +%s)" -le $end ]; then
    best=$("$FER_TRAIN" pick-ensemble $R/ens_sharp_*)
    training/recipes/sharp_cpu.sh aggregate "${best##*/ens_sharp_}" > $R/aggregate.log 2>&1 || true
    # ship-check exits 1 when the chosen student misses the issue's bar: recorded, and collected either way
    rc=0; training/recipes/sharp_cpu.sh ship > $R/ship.log 2>&1 || rc=$?
    echo $rc > $W/ship.rc
    tail -20 $R/ship.log
  fi
  "$0" collect
  ;;
collect)
  mkdir -p "$OUTDIR"
  find runs -type f \( -name '*.json' -o -name '*.csv' -o -name '*.txt' -o -name '*.log' \) -size -4M -print0 \
      | tar -czf "$OUTDIR/results.tar.gz" --null -T -
  if [ -f $R/ship.log ]; then
    d=$(sed -n 's/^chosen on val: .* -> //p' $R/ship.log | head -1)
    d=${d:+$R/interim/$d/export/fp16}
    if [ -n "$d" ] && [ -f "$d/model.onnx" ]; then
      mkdir -p "$OUTDIR/model"
      cp "$d"/model.onnx "$d"/model_card.json "$d"/calibration.json "$d"/classes.json "$OUTDIR/model/"
      cp "$d"/ship_check.txt "$OUTDIR/model/" 2>/dev/null || true
    fi
  fi
  ls -la "$OUTDIR" "$OUTDIR"/model 2>/dev/null || true
  ;;
wrapper)
  fer_train; echo $W/bin/fer-train
  ;;
status)
  echo "stashed: $(ls $W/stash 2>/dev/null | tr '\n' ' ')"
  echo "pipeline: $(pipeline_running && echo running || echo "not running (status $(cat $W/pipeline.rc 2>/dev/null || echo -))")"
  echo "ship: $(cat $W/ship.rc 2>/dev/null || echo -)"
  ;;
*) echo "unknown stage $1" >&2; exit 2 ;;
esac
