#!/usr/bin/env bash
# The exact runs behind docs/results.md, on a 2-core CPU without a GPU (2026-11-27).
# Usage: training/recipes/cpu_2cores.sh STAGE   (teachers | targets | students | students-kd | students-ft6 |
#                                                students-ft12 |
#                                                report | final | install RUN)
# Each stage is resumable: training runs checkpoint every epoch (re-run with --resume).
# Two processes with one thread each use the two cores better than one with two.
set -euo pipefail
cd "$(dirname "$0")/../.."
FT=${FER_TRAIN:-fer-train}
IDX=runs/index
COMMON=(--batch-size 128 --weight-decay 0.05 --clip-grad 5 --input-blur 0.06 --threads 1 --no-progress)

# every student starts from the same 16-epoch CE MobileNetV3 checkpoint and trains 2 more epochs;
# only the objective and the seed differ (a from-scratch 20-epoch student is ~1 h per run here).
student() {  # method seed [epochs lr warmup]
  local extra=() ep=${3:-2} lr=${4:-5e-4} wu=${5:-0.1}
  [ "$1" = none ] || extra=(--teacher runs/ensemble_cpu3)
  [ "$1" = dkd ] && extra+=(--dkd-warmup-epochs 1)
  $FT student --distill "$1" "${extra[@]}" --config-name "ft$ep-$1-ens3" --index $IDX \
      --out "runs/students/ft$ep-$1-ens3_s$2" --epochs "$ep" --input-size 48 --lr "$lr" --warmup-epochs "$wu" \
      --init-checkpoint runs/mnv3_ce_48_s1337/best.pt --seed "$2" "${COMMON[@]}" \
      > "runs/students/ft$ep-$1-ens3_s$2.log" 2>&1
}

case "${1:?stage}" in
teachers)
  [ -f $IDX/index.csv ] || $FT index --data ../shared/data/fer2013 --out $IDX
  # 32 px: the Training split is blurred (sigma ~3.2 px at 48 px), so 32 px keeps what it holds;
  # on this CPU small maps cost per-op overhead, not FLOPs (benchmarks/train_step_cost.py: ResNet18 0.63 s per step at 32 px, 1.27 s at 48).
  $FT teacher --index $IDX --backbone resnet18 --out runs/teacher_resnet18_32 --epochs 12 --input-size 32 \
      --lr 2e-3 --warmup-epochs 1 --label-smoothing 0.1 --seed 1337 "${COMMON[@]}" > runs/teacher_resnet18_32.log 2>&1 &
  $FT teacher --index $IDX --backbone resnet50 --out runs/teacher_resnet50_32 --epochs 6 --input-size 32 \
      --lr 2e-3 --warmup-epochs 1 --label-smoothing 0.1 --seed 1337 "${COMMON[@]}" > runs/teacher_resnet50_32.log 2>&1 &
  wait
  # the third teacher is the 16-epoch MobileNetV3-Large 48 px run of the bundled interim model
  # (docs/results.md); it predates --input-blur, so `targets` passes the low-pass to softlabels.
  [ -f runs/mnv3_ce_48_s1337/best.pt ] || { echo "runs/mnv3_ce_48_s1337/best.pt missing: train it with the" \
      "'Bundled default model' commands of docs/results.md first" >&2; exit 2; }
  ;;
targets)
  $FT softlabels runs/teacher_resnet18_32 --index $IDX
  $FT softlabels runs/teacher_resnet50_32 --index $IDX
  $FT softlabels runs/mnv3_ce_48_s1337 --index $IDX --input-blur 0.06
  for d in runs/teacher_resnet18_32 runs/teacher_resnet50_32 runs/mnv3_ce_48_s1337; do
    $FT check-alignment $d/softlabels/fer2013-* --index $IDX
  done
  $FT ensemble training/configs/cpu_three_way.json --index $IDX --out runs/ensemble_cpu3
  ;;
students)
  mkdir -p runs/students
  ( student dkd 1337; student dkd 2025; student dkd 42 ) &
  ( student none 1337; student none 2025; student none 42 ) &
  wait
  ;;
students-kd)  # KD seeds, run after the DKD and baseline seeds
  mkdir -p runs/students
  ( student kd 1337; student kd 42 ) &
  ( student kd 2025 ) &
  wait
  ;;
students-ft6)  # the longer fine-tune: 6 epochs, warm restart at lr 1e-3 (session 3)
  mkdir -p runs/students
  ( student dkd 1337 6 1e-3 0.3; student dkd 2025 6 1e-3 0.3; student dkd 42 6 1e-3 0.3 ) &
  ( student none 1337 6 1e-3 0.3; student none 2025 6 1e-3 0.3; student none 42 6 1e-3 0.3 ) &
  wait
  ;;
students-ft12)  # one seed each of a 12-epoch fine-tune: does the warm restart keep paying? (session 3)
  mkdir -p runs/students
  student dkd 1337 12 1e-3 0.3 &
  student none 1337 12 1e-3 0.3 &
  wait
  ;;
report)
  $FT aggregate runs/students/*_s*[0-9] --out runs/results_summary_students.csv --compare ft2-dkd-ens3 ft2-none-ens3 \
      --compare ft6-dkd-ens3 ft6-none-ens3 --compare ft6-dkd-ens3 ft2-dkd-ens3
  $FT report runs/teacher_resnet18_32 runs/teacher_resnet50_32 runs/mnv3_ce_48_s1337 runs/ensemble_cpu3
  $FT report runs/students/*_s*[0-9]
  ;;
final)
  # the distilled (KD/DKD) configuration with three seeds and the best mean VAL accuracy, and its best-val seed, is exported
  # (never chosen on test); the no-distillation baseline is reported beside it, not shipped
  best=$(python - <<'PY'
import collections, glob, json, statistics
by = collections.defaultdict(list)
for r in sorted(glob.glob("runs/students/*_s*[0-9]")):
    args = json.load(open(f"{r}/args.json"))
    if args["distill"] in ("kd", "dkd"):
        by[args["config"]].append((json.load(open(f"{r}/metrics_val.json"))["accuracy"], r))
by = {c: runs for c, runs in by.items() if len(runs) >= 3}  # the issue reports three seeds of the chosen config
cfg = max(by, key=lambda c: statistics.mean(v for v, _ in by[c]))
print(max(by[cfg])[1])
PY
)
  echo "chosen on val: $best"
  $FT export "$best" --fp16 --input-blur 0.06 --model-id "mnv3-48-$(basename "$best")"
  $FT bench "$best/export/fp32" "$best/export/fp16" --batch 1 32 --csv runs/latency.csv
  ;;
install)  # the app's default model: the FP16 folder of the run `final` chose
  src=${2:?run folder chosen by final}/export/fp16
  rm -rf resources/models/default && mkdir -p resources/models/default
  cp "$src"/model.onnx "$src"/model_card.json "$src"/calibration.json "$src"/classes.json resources/models/default/
  ;;
*) echo "unknown stage $1" >&2; exit 2 ;;
esac
