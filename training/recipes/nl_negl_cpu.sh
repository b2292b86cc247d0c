#!/usr/bin/env bash
# Issue 14 on the 2-core CPU: the phased NL / NegL evaluation (DESIGN.md §7 item 5), each phase gated.
# Usage: training/recipes/nl_negl_cpu.sh STAGE   (smoke | gate)
# smoke: phase 1, `fer-train nl-testbed` on a stratified 2048 / 512 subset of FER2013, 3 epochs, KD from the
#        ResNet18 teacher (alpha ramp 0.3 -> 0.5), accumulation 4, one thread: AdamW (the reference), NL local,
#        NL meta (K 4), and NL local + NegL (training/configs/negl/default.json, confusion of the teacher's val).
#        Each writes testbed_log.csv / memory_trace.csv / nl_testbed.json in runs/nl/<name>; a finished
#        testbed is skipped when the stage is run again, an unfinished one is redone.
# gate:  fer-train gate nl-negl on each testbed folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
FT=${FER_TRAIN:-fer-train}
IDX=runs/index
T=runs/sharp/teacher_resnet18_48
N=runs/nl
export OMP_NUM_THREADS=1
BASE=(--index $IDX --teacher $T --epochs 3 --max-train-samples 2048 --max-eval-samples 512 --accum 4
      --input-size 48 --stem-stride 1 --seed 1337)
tb() {  # tb NAME nl-testbed-args...: run one testbed unless it already finished (nl_testbed.json)
  local name=$1; shift
  if [ -f $N/$name/nl_testbed.json ]; then echo "done: $N/$name"; return 0; fi
  $FT nl-testbed "${BASE[@]}" --force --out $N/$name "$@" > $N/$name.log 2>&1 || true
}
case "${1:?stage}" in
smoke)
  mkdir -p $N
  tb smoke_adamw_kd --optimizer adamw
  tb smoke_nl_local_kd --optimizer nl --inner local
  tb smoke_nl_meta_kd --optimizer nl --inner meta --meta-every 4
  tb smoke_nl_local_kd_negl --optimizer nl --inner local \
      --negl-config training/configs/negl/default.json --negl-confusion $T
  ;;
gate)
  for d in $N/smoke_*/; do echo "== $d"; $FT gate nl-negl "$d" || true; done
  ;;
*) echo "unknown stage $1" >&2; exit 2 ;;
esac
