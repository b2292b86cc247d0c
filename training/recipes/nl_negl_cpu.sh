#!/usr/bin/env bash
# Issue 14 on the 2-core CPU: the phased NL / NegL evaluation (DESIGN.md §7 item 5), each phase gated.
# Usage: training/recipes/nl_negl_cpu.sh STAGE   (smoke | gate | phase2 ENS TAG | gate2 TAG)
# smoke: phase 1, `fer-train nl-testbed` on a stratified 2048 / 512 subset of FER2013, 3 epochs, KD from the
#        ResNet18 teacher (alpha ramp 0.3 -> 0.5), accumulation 4, one thread: AdamW (the reference), NL local,
#        NL meta (K 4), and NL local + NegL (training/configs/negl/default.json, confusion of the teacher's val).
#        Each writes testbed_log.csv / memory_trace.csv / nl_testbed.json in runs/nl/<name>; a finished
#        testbed is skipped when the stage is run again, an unfinished one is redone.
# gate:  fer-train gate nl-negl on each testbed folder.
# phase2: the NL full run (local mode, configuration s1-48-kd-TAG-nl): the KD student of `sharp_cpu.sh students ENS TAG` (KD alpha 0.5, T 2
#        from the chosen ensemble ENS, seed 1337) with --optimizer nl, everything else equal; resumable.
# gate2: fer-train gate nl-phase on it against that stage's plain KD seeds (s1-48-kd-TAG_s1337/2025/42, the
#        ones that exist; two or more are needed), written to its gate_nl_phase.json. Phase 3 (+ NegL) starts
#        only on GO.
set -euo pipefail
cd "$(dirname "$0")/../.."
FT=${FER_TRAIN:-fer-train}
command -v "$FT" > /dev/null || { echo "$0: $FT not found: activate the venv (. .venv/bin/activate) or set FER_TRAIN" >&2; exit 2; }
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
phase2)
  ens=${2:?ensemble folder (as for sharp_cpu.sh students)}; tag=${3:?its TAG}
  S=runs/sharp/students
  out=$S/s1-48-kd-$tag-nl_s1337
  pgrep -f -- "--out $out( |$)" > /dev/null && { echo "already running"; exit 0; }
  $FT student --distill kd --alpha 0.5 --temperature 2 --teacher $ens --config-name s1-48-kd-$tag-nl --optimizer nl \
      --epochs 20 --input-size 48 --stem-stride 1 --lr 2e-3 --seed 1337 --random-erasing 0.25 --warmup-epochs 1 \
      --index $IDX --batch-size 128 --weight-decay 0.05 --clip-grad 5 --threads 1 --no-progress --resume \
      --out $out >> $out.log 2>&1
  ;;
gate2)
  tag=${2:?TAG as for phase2}
  S=runs/sharp/students
  base=(); for s in 1337 2025 42; do [ -f $S/s1-48-kd-${tag}_s$s/history.csv ] && base+=(--baseline $S/s1-48-kd-${tag}_s$s); done
  $FT gate nl-phase $S/s1-48-kd-$tag-nl_s1337 "${base[@]}" || true
  ;;
*) echo "unknown stage $1" >&2; exit 2 ;;
esac
