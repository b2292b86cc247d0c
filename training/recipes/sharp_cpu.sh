#!/usr/bin/env bash
# The runs behind docs/results.md on the sharp FER2013 copy (2026-12), on a 2-core CPU without a GPU.
# Usage: training/recipes/sharp_cpu.sh STAGE  (resume | index | pipeline | round1 | finish-teacher RUN | round2 | round3 | round4 | probe-arch | ensembles | students ENS TAG | preview | aggregate TAG | status | interim RUN NAME | ship-check FOLDER | ship | install FOLDER)
# Every stage is resumable: each run checkpoints every epoch (and every 10 minutes inside one) and is started
# with --resume, so re-running a stage continues where the last working period stopped, and starts a missing
# run from scratch. `resume` rebuilds everything from an empty runs/ as well (it had to, 2026-12-02).
# Two processes with one thread each: 113 vs 85 img/s for one process with two threads
# (benchmarks/train_step_cost.py --two-procs, docs/benchmarks.md).
# Numeric settings per backbone come from fer-train's defaults: channels-last for conv nets, bf16 autocast
# for ResNet/ConvNeXt on a CPU with bf16 kernels (AVX512-BF16/AMX), fp32 for MobileNetV3/EfficientNet.
set -euo pipefail
cd "$(dirname "$0")/../.."
FT=${FER_TRAIN:-fer-train}
command -v "$FT" > /dev/null || { echo "$0: $FT not found: activate the venv (. .venv/bin/activate) or set FER_TRAIN" >&2; exit 2; }
IDX=runs/index
R=runs/sharp
# trainings at a time (every fer-train teacher / student on the machine counts): one per core here; a lent GPU
# runs more at once (training/recipes/sharp_gpu.sh sets it)
SLOTS=${RECIPE_SLOTS:-2}
# the data sets (read-only); the GPU lease unpacks its carried copy elsewhere
FER2013=${FER2013_DIR:-../shared/data/fer2013}
CKPLUS=${CKPLUS_DIR:-../shared/data/ckplus48}
COMMON=(--index $IDX --batch-size 128 --weight-decay 0.05 --clip-grad 5 --threads 1 --no-progress --resume)
# a rehearsal of the whole chain at toy size (e.g. RECIPE_TRAIN_EXTRA="--epochs 1 --max-steps-per-epoch 2
# --max-eval-samples 256", in a separate checkout): appended to every teacher and student, so it overrides
# the recipe's --epochs; never set for the runs behind the figures
read -ra EXTRA <<< "${RECIPE_TRAIN_EXTRA:-}"
COMMON+=("${EXTRA[@]}")
# FER2013 recipe: flips, +-10 deg rotation, 0.9-1.1 zoom, 8% shifts, brightness/contrast (training.data.AugmentConfig),
# random erasing 0.25, label smoothing 0.1, AdamW with a 1-epoch warm-up and cosine decay.
AUG=(--random-erasing 0.25 --label-smoothing 0.1 --warmup-epochs 1)
# KD / DKD students: the same without label smoothing (their losses use plain CE: the teacher's soft targets
# already take its place, and fer-train student refuses --label-smoothing with distillation)
KD_AUG=(--random-erasing 0.25 --warmup-epochs 1)
# start a run unless it finished (summary.json, written after its final evaluation) or one is already
# training into the same folder (a stage can be re-run safely)
# the pids of the $FT training (teacher or student) that writes into folder $1, if one runs (or is stopped); the
# name of $FT is part of the pattern, so that tests with a stand-in never see, pause or continue real trainings
training_of() { pgrep -f -- "${FT##*/} (teacher|student) .*--out $1( |$)"; }
start() {  # start OUT LOG fer-train-args...
  local out=$1 log=$2; shift 2
  if [ -f "$out/summary.json" ]; then echo "finished: $out"; return; fi
  if training_of "$out" > /dev/null; then echo "already running: $out"; return; fi
  "$FT" "$@" --out "$out" >> "$log" 2>&1 &
}
# the four teachers: folder and fer-train options (the recipe and seed are shared: AUG, COMMON, lr 2e-3, 1337)
teacher_dir() {
  case $1 in rn18) echo $R/teacher_resnet18_48 ;; rn50) echo $R/teacher_resnet50_48 ;;
    b3) echo $R/teacher_effb3_48 ;; vgg) echo $R/teacher_fervgg_s_48 ;; *) echo "no teacher $1" >&2; exit 2 ;; esac
}
teacher_args() {
  case $1 in
    # ResNet18 with stem stride 2 (conv1 stride 2, no max-pool): 3x3 maps at the last stage for 48 px faces (the
    # native stem leaves 2x2)
    rn18) echo --backbone resnet18 --epochs 24 --input-size 48 --stem-stride 2 ;;
    # ResNet50 with its native stem (2x2 maps at the last stage) since the rebuild of 2026-12-02: stem 2, as the
    # lost run had it, costs 20.0 s a step here against 8.8 (fp32; about 23 core-hours for 20 epochs against 9),
    # docs/decisions.md
    rn50) echo --backbone resnet50 --epochs 20 --input-size 48 ;;
    # EfficientNet-B3 with its native stem (stride 2; 2x2 maps at the last stage for 48 px): stem 1 would give
    # 3x3 maps at about 4x the cost (70 min an epoch on one core of the Xeon, docs/benchmarks.md), past what 2
    # cores allow. fp32 + channels-last (fer-train's default for EfficientNet: bf16 was slower there, 6.8 vs 4.7 s)
    b3) echo --backbone efficientnet_b3 --epochs 20 --input-size 48 ;;
    # fervgg_s (training/fer_vgg.py): the VGG-style net of the issue's probe (66.5% val in 12 epochs, 35 min),
    # 1.2M parameters, 3x3 maps at the last stage for 48 px; channels-last, bf16 autocast where the CPU has bf16
    # kernels (fer-train's default for the vgg family: 4.2 min an epoch on one core of the Xeon, 9.4 in fp32 on
    # the AMD machine since 2026-12-02); 30 epochs
    vgg) echo --backbone fervgg_s --epochs 30 --input-size 48 ;;
  esac
}
teacher() {  # teacher NAME: start teacher NAME's training in the background (unless finished or running)
  local t args; t=$(teacher_dir "$1"); read -ra args <<< "$(teacher_args "$1")"
  mkdir -p $R
  start "$t" "$t.log" teacher "${args[@]}" --lr 2e-3 --seed 1337 "${AUG[@]}" "${COMMON[@]}"
}
# the order in which `pipeline` starts them, on this machine since 2026-12-02 (AMD EPYC, AVX2, no bf16 kernels:
# every net trains in fp32; core-hours from the runs and benchmarks/train_step_cost.py, docs/results.md):
# fervgg_s about 5, the ResNet18 about 10, then the longer of the two heavy ones first (ResNet50 native about 11,
# EfficientNet-B3 about 8) in the core the fervgg_s frees, so that the four end as early as they can (about
# 16 and 18 hours in, against 13 and 21 the other way round)
T_ORDER=(vgg rn18 rn50 b3)
# every teacher's folder (the ensembles use all four)
T4=(); for n in rn18 rn50 b3 vgg; do T4+=("$(teacher_dir $n)"); done
# a teacher finished by finish-teacher as it is now (BN recalibration chosen on val, flip TTA soft labels)
teacher_current() { [ -f "$1/bn_recalibration.json" ] && grep -qs '"tta": "flip"' "$1"/softlabels/*/alignment.json; }
# the checkpoint fer-train recalibrate-bn chose on val for run folder $1 (best.pt or best_bn.pt)
chosen_checkpoint() { sed -n 's/.*"chosen": *"\([^"]*\)".*/\1/p' "$1/bn_recalibration.json"; }
# an unfinished student (running or to be resumed) that distils from teacher run $1
teacher_in_use() {
  local a
  for a in $R/students/*/args.json; do
    [ -f "$a" ] && [ ! -f "${a%/args.json}/summary.json" ] && grep -q "\"$1\"" "$a" && return 0
  done
  return 1
}
# trainings of any stage now running (a stopped one counts: it holds its slot), by the name of $FT
running() { pgrep -fc "${FT##*/} (teacher|student) " || true; }
# the students of the issue's grid share round 1's recipe (48 px) and differ in the objective; their stride layout
# (stem 1 or the last stage's stride out) and epoch count come from the committed record training/recipes/grid.txt
S1=(--input-size 48 --lr 2e-3)
# shellcheck source=grid.sh
. training/recipes/grid.sh
student_name() {  # student_name MODE TAG: the configuration name aggregate groups seeds by (needs the grid record)
  local pre sfx; pre=$(grid_prefix); sfx=$(grid_suffix)
  case $1 in none) echo $pre-none$sfx ;; kd) echo $pre-kd-$2$sfx ;; dkd) echo $pre-dkd-$2$sfx ;; esac
}
student() {  # student MODE SEED [ENS TAG]: start one run (MODE none | kd | dkd; ENS and TAG for kd / dkd)
  local m=$1 seed=$2 ens=${3:-} tag=${4:-} name extra epochs arch
  grid_require
  name=$(student_name "$m" "$tag"); epochs=$(grid_epochs); read -ra arch <<< "$(grid_arch_args)"
  case $m in
    none) extra=(--distill none "${AUG[@]}") ;;
    kd)   extra=(--distill kd --alpha 0.5 --temperature 2 --teacher "$ens" "${KD_AUG[@]}") ;;
    dkd)  extra=(--distill dkd --alpha 0.5 --beta 4 --temperature 2 --teacher "$ens" "${KD_AUG[@]}") ;;
  esac
  mkdir -p $R/students
  start $R/students/${name}_s$seed $R/students/${name}_s$seed.log student --config-name $name --seed $seed \
      --epochs "$epochs" "${arch[@]}" "${S1[@]}" "${extra[@]}" "${COMMON[@]}"
}

case "${1:?stage}" in
resume)  # the start of every working period, one command, from one session (CPU share is per session:
  # docs/decisions.md): the index if missing, then the pipeline, which starts or resumes every run in order
  "$0" index
  exec "$0" pipeline
  ;;
index)
  [ -f $IDX/index.csv ] || $FT index --data "$FER2013" --out $IDX
  ;;
round1)  # started 2026-12-01: the required ResNet18 teacher and the first no-distillation student seed
  [ -f $IDX/index.csv ] || $FT index --data "$FER2013" --out $IDX
  teacher rn18
  # the locked student with stem stride 1: the stride-32 trunk leaves 3x3 maps at 48 px instead of 2x2 (the
  # grid's no-distillation seed 1337, s1-48-none_s1337)
  student none 1337
  wait
  ;;
finish-teacher)  # a finished teacher: test metrics, calibration, soft labels at T=2 and their alignment check, all
  # with flip test-time augmentation (mean logits of face and mirror; chosen on val, docs/decisions.md), from
  # best.pt or its copy with BN statistics re-estimated on clean train faces, whichever is better on val
  run=${2:?teacher run folder}
  $FT recalibrate-bn "$run" --index $IDX --tta flip    # best_bn.pt + bn_recalibration.json (val before / after)
  ck=$(chosen_checkpoint "$run")
  $FT evaluate "$run" --index $IDX --tta flip --checkpoint "$ck"  # metrics, logits, confusion matrices
  $FT calibrate "$run"                                 # T fitted on val only, reliability_metrics.json
  $FT softlabels "$run" --index $IDX --temperature 2 --tta flip --checkpoint "$ck"  # every split, index order,
  #                                                      alignment.json + diagnostic
  $FT check-alignment "$run" --index $IDX              # recompute random rows from the checkpoint; abort on mismatch
  ;;
round2)  # started 2026-12-01 (second working period): teacher 2 and the first distilled student
  mkdir -p $R/students
  teacher rn50
  # KD (alpha 0.5, T 2) from the ResNet18 teacher's soft labels, the recipe and seed of s1-48-none_s1337
  # (without label smoothing, see KD_AUG): an early, paired read of what distillation adds before the ensemble
  # (its run, lost with runs/ on 2026-12-02, gave the interim default; `pipeline` does not re-run it)
  start $R/students/s1-48-kd-rn18_s1337 $R/students/s1-48-kd-rn18_s1337.log student --distill kd --alpha 0.5 \
      --temperature 2 --teacher $R/teacher_resnet18_48 --config-name s1-48-kd-rn18 --epochs 20 \
      --input-size 48 --stem-stride 1 --lr 2e-3 --seed 1337 "${KD_AUG[@]}" "${COMMON[@]}"
  wait
  ;;
round3)  # teacher 3 (another family)
  teacher b3
  wait
  ;;
round4)  # started 2026-12-01 (fifth working period): a fourth teacher of another family, cheap per CPU-hour
  teacher vgg
  wait
  ;;
probe-arch)  # started 2026-12-02 (seventh working period): the student's stride layout, per CPU-hour (issue 10 §4).
  # Stem stride 1 (round 1's s1-48-none_s1337) keeps 3x3 maps at the last stage but runs every early layer at 4x the
  # native cost; taking the stride out of the last strided stage instead (--last-stride 1, native stem) gives the
  # same 3x3 maps for 0.90 s a training step against 1.98 s (and 3.09 against 4.19 ms a face in onnxruntime), both
  # measured beside two trainings (docs/decisions.md). The same run with that layout (same recipe, seed, 20 epochs,
  # no distillation) decided the grid's layout by the rule of docs/decisions.md: best val 0.5174 against 0.5754,
  # so stem 1 stays (training/recipes/grid.txt). `pipeline` does not re-run it.
  mkdir -p $R/students
  start $R/students/l1-48-none_s1337 $R/students/l1-48-none_s1337.log student --distill none \
      --config-name l1-48-none --epochs 20 --input-size 48 --last-stride 1 --lr 2e-3 --seed 1337 "${AUG[@]}" \
      "${COMMON[@]}"
  wait
  ;;
ensembles)  # after finish-teacher of every teacher: the design's ensembles (pairwise 0.7/0.3, equal split, val-weighted;
  # the last two over three and over all four teachers), every member gated for alignment
  # first (fer-train ensemble refuses a member whose soft labels fail the check), weights on val only
  for t in "${T4[@]}"; do
    teacher_current "$t" || { echo "finish-teacher $t first (BN recalibration, soft labels with flip TTA)" >&2; exit 1; }
    $FT check-alignment $t --index $IDX
  done
  $FT gate teachers "${T4[@]}" --index $IDX || true
  # the three-teacher ensembles stay beside the four-teacher ones: they show what the fourth teacher adds
  for cfg in sharp_rn18_rn50 sharp_equal3 sharp_val3 sharp_equal4 sharp_val4; do
    [ -f $R/ens_$cfg/ensemble.json ] || $FT ensemble training/configs/$cfg.json --index $IDX --out $R/ens_$cfg
  done
  $FT gate ensembles $R/ens_sharp_rn18_rn50 $R/ens_sharp_equal3 $R/ens_sharp_val3 $R/ens_sharp_equal4 \
      $R/ens_sharp_val4 --index $IDX || true
  ;;
students)  # the issue's students: none / KD (alpha 0.5, T 2) / DKD (alpha 0.5, beta 4, T 2) from ENS (the ensemble
  # chosen on val, e.g. runs/sharp/ens_sharp_val3; TAG names it in the config, e.g. val3), seeds 1337 2025 42, the
  # recipe of round 1 (48 px, stem 1; 20 epochs, or 40 by grid.sh's rule). A finished run (metrics_test.json) is
  # skipped, an unfinished one resumed; a job waits while SLOTS trainings (of any stage; two here) are running,
  # so the CPU stays at two.
  ens=${2:?ensemble folder}; tag=${3:?short teacher name}
  grid_require
  for seed in 1337 2025 42; do
    for m in none kd dkd; do
      out=$R/students/$(student_name $m $tag)_s$seed
      [ -f $out/metrics_test.json ] && continue
      while [ "$(running)" -ge "$SLOTS" ]; do sleep ${RECIPE_POLL_S:-60}; done
      student $m $seed $ens $tag
      sleep ${RECIPE_SETTLE_S:-2}  # let the new process show in the next count (tests: 0)
    done
  done
  wait
  ;;
pipeline)  # hands-free, from an empty runs/ or from wherever the runs stand, SLOTS (two) trainings at a time (counting
  # every fer-train teacher / student on the machine): the teachers in T_ORDER as cores free up; finish-teacher
  # for each as it finishes (once; again for one finished before BN recalibration / flip TTA, once no unfinished
  # student distils from it); once every teacher has started, the no-distillation seeds in a free core (they
  # need no teacher); when every teacher has finished, the ensembles and then the students from the ensemble
  # with the best val accuracy (fer-train pick-ensemble; ties: lower val NLL), TAG = its name without
  # "ens_sharp_" (e.g. val4), and beside them `nl_negl_cpu.sh chain ENS TAG` (issue 14's phases 1-4, each
  # gated on the last).
  grid_require
  mkdir -p $R/students
  declare -A starts=()
  while :; do
    waiting=0 unstarted=0
    for n in "${T_ORDER[@]}"; do
      t=$(teacher_dir $n)
      if [ ! -f "$t/summary.json" ]; then
        waiting=1
        training_of "$t" > /dev/null && continue
        if [ "$(running)" -lt "$SLOTS" ]; then
          # a teacher that stopped unfinished three times is broken, not interrupted: stop and name its log
          if [ "${starts[$n]:-0}" -ge 3 ]; then echo "$t did not finish in 3 starts: see $t.log" >&2; exit 1; fi
          starts[$n]=$(( ${starts[$n]:-0} + 1 ))
          echo "$(date): starting teacher $t"; teacher $n; sleep ${RECIPE_SETTLE_S:-2}
        else
          unstarted=1
        fi
        continue
      fi
      teacher_current "$t" && continue
      # a teacher finished before flip TTA / BN recalibration is redone, but not while an unfinished student
      # distils from its soft labels (the student's resume checks that its teacher's arrays did not change)
      if teacher_in_use "$t"; then waiting=1; continue; fi
      "$0" finish-teacher "$t"
    done
    [ $waiting = 0 ] && break
    sleep ${RECIPE_POLL_S:-120}
    # a core left free while a teacher trains (every teacher has started): a no-distillation seed
    if [ $unstarted = 0 ] && [ "$(running)" -lt "$SLOTS" ]; then
      for seed in 1337 2025 42; do
        out=$R/students/$(student_name none)_s$seed
        [ -f $out/metrics_test.json ] || training_of "$out" > /dev/null && continue
        echo "$(date): a core is free while a teacher trains: $out"; student none $seed; break
      done
    fi
  done
  "$0" ensembles
  best=$($FT pick-ensemble $R/ens_sharp_*)
  tag=${best##*/ens_sharp_}
  echo "students from $best (tag $tag), chosen on val accuracy"
  # then issue 14's gated NL / NegL phases on the same recipe and ensemble, in the slots the students free
  # (the chain starts nothing before every plain student has started)
  "$0" students "$best" "$tag" &
  training/recipes/nl_negl_cpu.sh chain "$best" "$tag"
  wait
  ;;
preview)  # an early ensemble read of the finished teachers (ResNet18 + fervgg_s), outside ens_sharp_* so that
  # pick-ensemble never hands it to the students
  [ -f $R/preview_rn18_vgg/ensemble.json ] || $FT ensemble training/configs/sharp_rn18_vgg.json --index $IDX \
      --out $R/preview_rn18_vgg
  ;;
aggregate)  # mean, std, bootstrap CIs per configuration; paired DKD vs KD vs none (TAG as for students)
  tag=${2:?short teacher name}
  grid_require
  none=$(student_name none); kd=$(student_name kd "$tag"); dkd=$(student_name dkd "$tag")
  $FT aggregate $R/students/{${none},${kd},${dkd}}_s{1337,2025,42} --out $R/results_summary_students.csv \
      --compare $dkd $kd --compare $dkd $none --compare $kd $none
  ;;
interim)  # a model folder from a student run's best.pt (chosen on val; the run may still be training)
  src=${2:?run folder}; name=${3:?model name}
  d=$R/interim/$name
  mkdir -p "$d"
  cp "$src/args.json" "$src/classes.json" "$d/"
  cp "$src/best.pt" "$d/trained.pt"
  # BN statistics re-estimated on clean train faces, kept only if better on val (scored as the app runs it:
  # no TTA); the chosen file becomes the folder's best.pt, which evaluate and export read
  $FT recalibrate-bn "$d" --index $IDX --checkpoint trained.pt
  cp "$d/$(chosen_checkpoint "$d")" "$d/best.pt"
  $FT evaluate "$d" --index $IDX                       # metrics_val/test.json, logits, confusion matrices
  $FT calibrate "$d"                                   # T fitted on val only
  $FT export "$d" --fp16 --model-id "$name"            # fp32 + fp16 folders, parity checks, measured crop margin
  $FT check-model "$d/export/fp16" --index $IDX --split test --threads 1 | tee "$d/check_model_test.txt"
  $FT bench "$d/export/fp32" "$d/export/fp16" --batch 1 32 --providers cpu --csv "$d/latency.csv"
  ;;
ship-check)  # issue 10's bar for the default, on the model folder itself (the FP16 ONNX through the app's loader):
  # PrivateTest accuracy >= 0.66, macro-F1 >= 0.60, ECE <= 0.03 after calibration (exit 1 on a miss), and CK+
  src=${2:?model folder}
  $FT check-model "$src" --index $IDX --split test --threads 1 --min-accuracy 0.66 --min-macro-f1 0.60 --max-ece 0.03 \
      | tee "$src/ship_check.txt" && rc=0 || rc=$?
  $FT check-ckplus "$src" --data "$CKPLUS" --threads 1 | tee -a "$src/ship_check.txt"
  exit $rc
  ;;
ship)  # the default by the rule of docs/decisions.md (fer-train pick-student over every student run: the distilled
  # configuration with three finished seeds and the best mean val accuracy, its best-val seed; val only), made into
  # a model folder by interim and held to the issue's bar by ship-check. install stays a separate, deliberate step:
  # it changes committed files (and README, results, screenshot follow it).
  best=$($FT pick-student $R/students/*_s*/ --record $R/ship_choice.json)
  name=mnv3-$(basename "$best" | sed 's/_s\([0-9]*\)$/-s\1/')
  echo "chosen on val: $best -> $name"
  "$0" interim "$best" "$name"
  "$0" ship-check $R/interim/$name/export/fp16
  echo "ship-check GO: install with $0 install $R/interim/$name/export/fp16"
  ;;
install)  # the app's default model: a model folder (fp16) written by export
  src=${2:?model folder}
  rm -rf resources/models/default && mkdir -p resources/models/default
  cp "$src"/model.onnx "$src"/model_card.json "$src"/calibration.json "$src"/classes.json resources/models/default/
  ;;
status)  # epochs done, best val and hours left of every run (fer-train status, from their files), and the grid
  $FT status $R/teacher_*/ $R/students/*/
  echo
  grid_require; cat $GRID_RECORD
  ;;
*) echo "unknown stage $1" >&2; exit 2 ;;
esac
