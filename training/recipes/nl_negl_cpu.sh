#!/usr/bin/env bash
# Issue 14 on the 2-core CPU: the phased NL / NegL evaluation (DESIGN.md §7 item 5), each phase gated.
# Usage: training/recipes/nl_negl_cpu.sh STAGE   (smoke | gate | phase P ENS TAG [SEED] | gate-phase P TAG | chain ENS TAG | compare TAG)
# smoke: phase 1, `fer-train nl-testbed` on a stratified 2048 / 512 subset of FER2013, 3 epochs, KD from the
#        ResNet18 teacher (alpha ramp 0.3 -> 0.5), accumulation 4, one thread: AdamW (the reference), NL local,
#        NL meta (K 4), and NL local + NegL (training/configs/negl/default.json, confusion of the teacher's val).
#        Each writes testbed_log.csv / memory_trace.csv / nl_testbed.json in runs/nl/<name>; a finished
#        testbed is skipped when the stage is run again, an unfinished one is redone.
# gate:  fer-train gate nl-negl on each testbed folder (exit 1 unless all four are GO).
# Phases 2-4 are full student runs, the recipe of `sharp_cpu.sh students ENS TAG` (48 px, T 2 from the chosen
# ensemble ENS; the stride layout and length that grid.sh decided, named like the plain students, e.g.
# l1-48-kd-TAG-e40-nl; s1-48-... below stands for that prefix) with --optimizer nl (local mode), everything else
# equal, so that each is paired with the plain students of the same seeds:
#   2  NL + KD (alpha 0.5)                      s1-48-kd-TAG-nl        against s1-48-kd-TAG
#   3  NL + KD + NegL (negl/default.json)       s1-48-kd-TAG-nl-negl   against s1-48-kd-TAG
#   4  NL + DKD (alpha 0.5, beta 4) + NegL      s1-48-dkd-TAG-nl-negl  against s1-48-dkd-TAG
#   NegL draws its complementary classes from the ensemble's own val confusion matrix (ENS/confusion_val.json)
#   and never pushes a class the ensemble gives >= 0.25 for the sample (its soft labels).
# phase P ENS TAG [SEED]: one run of phase P in the foreground (seed 1337 by default); resumable.
# gate-phase P TAG: fer-train gate nl-phase on phase P's seed-1337 run against its plain seeds (those that
#        finished; two or more are needed), written to that run's gate_nl_phase.json.
# chain ENS TAG: hands-free, two trainings at a time (counting every fer-train teacher / student on the machine):
#        waits until every plain student of `sharp_cpu.sh students ENS TAG` has started (they come first), runs
#        phase 1 (smoke, unless done) in a free core and stops on its gate's NO-GO, then phase 2's three seeds;
#        judges a phase once its seed-1337 run and two plain seeds have finished; starts the next phase only on
#        GO (a NO-GO stops the chain there, recorded in the run); ends with `compare`.
# compare TAG: fer-train aggregate of the plain and NL students (mean, std, bootstrap CIs), paired: NL+KD vs KD,
#        NL+KD+NegL vs KD and vs NL+KD (what NegL adds), NL+DKD+NegL vs DKD -> runs/nl/results_summary_nl_TAG.csv
set -euo pipefail
cd "$(dirname "$0")/../.."
FT=${FER_TRAIN:-fer-train}
command -v "$FT" > /dev/null || { echo "$0: $FT not found: activate the venv (. .venv/bin/activate) or set FER_TRAIN" >&2; exit 2; }
IDX=runs/index
T=runs/sharp/teacher_resnet18_48
N=runs/nl
S=runs/sharp/students
NEGL=training/configs/negl/default.json
SEEDS=(1337 2025 42)
SLOTS=${RECIPE_SLOTS:-2}  # trainings at a time, as in sharp_cpu.sh
POLL=${RECIPE_POLL_S:-120}  # seconds between the chain's looks (tests use less)
SETTLE=${RECIPE_SETTLE_S:-5}  # seconds for a started training to show in the count of running ones
export OMP_NUM_THREADS=1
BASE=(--index $IDX --teacher $T --epochs 3 --max-train-samples 2048 --max-eval-samples 512 --accum 4
      --input-size 48 --stem-stride 1 --seed 1337)
# the students' recipe (sharp_cpu.sh S1, KD_AUG and COMMON; --epochs and the stride layout from grid.sh, as there)
FULL=(--input-size 48 --lr 2e-3 --random-erasing 0.25 --warmup-epochs 1
      --index $IDX --batch-size 128 --weight-decay 0.05 --clip-grad 5 --threads 1 --no-progress --resume)
read -ra EXTRA <<< "${RECIPE_TRAIN_EXTRA:-}"  # a toy-size rehearsal only, as in sharp_cpu.sh
FULL+=("${EXTRA[@]}")
# shellcheck source=grid.sh
. training/recipes/grid.sh
tb() {  # tb NAME nl-testbed-args...: run one testbed unless it already finished (nl_testbed.json)
  local name=$1; shift
  if [ -f $N/$name/nl_testbed.json ]; then echo "done: $N/$name"; return 0; fi
  $FT nl-testbed "${BASE[@]}" --force --out $N/$name "$@" > $N/$name.log 2>&1 || true
}
phase_name() {  # phase_name P TAG: the configuration name of phase P's runs
  local pre sfx; pre=$(grid_prefix); sfx=$(grid_suffix)
  case $1 in 2) echo $pre-kd-$2$sfx-nl ;; 3) echo $pre-kd-$2$sfx-nl-negl ;; 4) echo $pre-dkd-$2$sfx-nl-negl ;;
    *) echo "phase must be 2, 3 or 4, got $1" >&2; exit 2 ;; esac
}
plain_name() {  # plain_name P TAG: the plain students phase P is judged and paired against
  local pre sfx; pre=$(grid_prefix); sfx=$(grid_suffix)
  case $1 in 2|3) echo $pre-kd-$2$sfx ;; 4) echo $pre-dkd-$2$sfx ;; esac
}
phase_args() {  # phase_args P ENS: the objective of phase P
  case $1 in
    2) echo --distill kd --alpha 0.5 ;;
    3) echo --distill kd --alpha 0.5 --negl-config $NEGL --negl-confusion $2 ;;
    4) echo --distill dkd --alpha 0.5 --beta 4 --negl-config $NEGL --negl-confusion $2 ;;
  esac
}
running() { pgrep -fc "${FT##*/} (teacher|student) " || true; }
# (the name of $FT is part of the pattern: tests with a stand-in never see real trainings)
is_running() { pgrep -f -- "${FT##*/} (teacher|student) .*--out $1( |$)" > /dev/null; }
nlrun() {  # nlrun P SEED ENS TAG: run one student of phase P (in the foreground)
  local name out epochs arch
  grid_require
  name=$(phase_name "$1" "$4"); out=$S/${name}_s$2; epochs=$(grid_epochs); read -ra arch <<< "$(grid_arch_args)"
  if [ -f $out/summary.json ]; then echo "finished: $out"; return 0; fi
  if is_running $out; then echo "already running: $out"; return 0; fi
  mkdir -p $S
  # shellcheck disable=SC2046  # phase_args is a list of words without spaces
  "$FT" student $(phase_args "$1" "$3") --temperature 2 --teacher "$3" --config-name $name --optimizer nl \
      --seed "$2" --epochs "$epochs" "${arch[@]}" "${FULL[@]}" --out $out >> $out.log 2>&1
}
finished_plain() {  # finished_plain P TAG: --baseline arguments for the plain seeds that finished
  local s; for s in "${SEEDS[@]}"; do
    [ -f $S/$(plain_name "$1" "$2")_s$s/summary.json ] && echo --baseline $S/$(plain_name "$1" "$2")_s$s
  done; return 0
}
gate_status() {  # gate_status P TAG: GO, NO-GO, or nothing while phase P is not judged yet
  local f=$S/$(phase_name "$1" "$2")_s1337/gate_nl_phase.json
  # the record's first "status" is the decision (the items come after it)
  [ -f $f ] && sed -n 's/.*"status": *"\([A-Z-]*\)".*/\1/p' $f | head -n 1; return 0
}
gate_phase() {  # gate_phase P TAG
  local run base
  run=$S/$(phase_name "$1" "$2")_s1337
  read -ra base <<< "$(finished_plain "$1" "$2" | tr '\n' ' ')"
  $FT gate nl-phase $run "${base[@]}" || true
}
TESTBEDS=(smoke_adamw_kd smoke_nl_local_kd smoke_nl_meta_kd smoke_nl_local_kd_negl)  # phase 1, as smoke makes them
case "${1:?stage}" in
smoke)
  mkdir -p $N
  tb smoke_adamw_kd --optimizer adamw
  tb smoke_nl_local_kd --optimizer nl --inner local
  tb smoke_nl_meta_kd --optimizer nl --inner meta --meta-every 4
  tb smoke_nl_local_kd_negl --optimizer nl --inner local \
      --negl-config $NEGL --negl-confusion $T
  ;;
gate)  # exit 1 when a testbed is missing or any is NO-GO
  rc=0
  for name in "${TESTBEDS[@]}"; do echo "== $N/$name"; $FT gate nl-negl "$N/$name" || rc=1; done
  exit $rc
  ;;
phase)
  p=${2:?phase 2, 3 or 4}; ens=${3:?ensemble folder (as for sharp_cpu.sh students)}; tag=${4:?its TAG}
  nlrun "$p" "${5:-1337}" "$ens" "$tag"
  ;;
gate-phase)
  gate_phase "${2:?phase 2, 3 or 4}" "${3:?TAG as for phase}"
  ;;
chain)
  ens=${2:?ensemble folder}; tag=${3:?its TAG}
  grid_require
  # the plain students first: each has its log once sharp_cpu.sh students has started it
  for s in "${SEEDS[@]}"; do for p in 2 4; do
    until [ -f $S/$(plain_name $p "$tag")_s$s.log ]; do sleep $POLL; done
  done; done
  # phase 1, the testbeds (redone where runs/ lost them), in a core the plain students leave free, then their
  # gate: a NO-GO stops the chain before any full NL run
  until [ "$(running)" -lt "$SLOTS" ]; do sleep $POLL; done
  "$0" smoke
  if ! "$0" gate; then echo "phase 1 NO-GO (nl_negl_cpu.sh gate): phase 2 and later not started"; exit 0; fi
  declare -A starts=()
  while :; do
    pending=0
    for p in 2 3 4; do
      if [ $p -gt 2 ]; then
        st=$(gate_status $((p - 1)) "$tag")
        if [ "$st" = NO-GO ]; then echo "phase $((p - 1)) NO-GO: phase $p and later not started"; break; fi
        if [ "$st" != GO ]; then pending=1; break; fi
      fi
      first=$S/$(phase_name $p "$tag")_s1337
      if [ -f $first/summary.json ] && [ -z "$(gate_status $p "$tag")" ]; then
        if [ "$(finished_plain $p "$tag" | wc -l)" -ge 2 ]; then gate_phase $p "$tag"; else pending=1; fi
      fi
      for s in "${SEEDS[@]}"; do
        out=$S/$(phase_name $p "$tag")_s$s
        [ -f $out/summary.json ] && continue
        pending=1
        is_running $out && continue
        if [ "$(running)" -lt "$SLOTS" ]; then
          # a run that stopped unfinished three times is broken, not interrupted: stop and name its log
          if [ "${starts[$out]:-0}" -ge 3 ]; then echo "$out did not finish in 3 starts: see $out.log" >&2; exit 1; fi
          starts[$out]=$(( ${starts[$out]:-0} + 1 ))
          echo "$(date): phase $p seed $s"; nlrun $p $s "$ens" "$tag" & sleep $SETTLE
        fi
      done
    done
    [ $pending = 0 ] && [ -z "$(jobs -pr)" ] && break
    sleep $POLL
  done
  wait
  "$0" compare "$tag"
  ;;
compare)  # the pairs whose two configurations have finished runs (a phase stopped by its gate has none)
  tag=${2:?TAG}
  grid_require
  pre=$(grid_prefix); sfx=$(grid_suffix); t=$tag$sfx
  mkdir -p $N
  runs=(); have=" "
  for c in kd-$t dkd-$t kd-$t-nl kd-$t-nl-negl dkd-$t-nl-negl; do
    for s in "${SEEDS[@]}"; do
      [ -f $S/$pre-${c}_s$s/metrics_test.json ] && runs+=($S/$pre-${c}_s$s) && have+="$pre-$c "
    done
  done
  pairs=()
  for pair in "kd-$t-nl kd-$t" "kd-$t-nl-negl kd-$t" "kd-$t-nl-negl kd-$t-nl" "dkd-$t-nl-negl dkd-$t"; do
    read -r a b <<< "$pair"
    [[ $have == *" $pre-$a "* && $have == *" $pre-$b "* ]] && pairs+=(--compare $pre-$a $pre-$b)
  done
  [ ${#runs[@]} -gt 0 ] || { echo "no finished runs of TAG $tag" >&2; exit 1; }
  $FT aggregate "${runs[@]}" --out $N/results_summary_nl_$pre-$t.csv "${pairs[@]}"
  ;;
*) echo "unknown stage $1" >&2; exit 2 ;;
esac
