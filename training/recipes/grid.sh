# Sourced by sharp_cpu.sh and nl_negl_cpu.sh (from the repository root): the students of the grid (issue 10)
# and of the NL / NegL phases (issue 14), their stride layout and length, decided once by two rules written
# down in docs/decisions.md before the probes' results were known:
#   stride ("The student's stride, chosen per CPU-hour"): the no-distillation student with the last stage's
#     stride taken out (l1-48-none_s1337: native stem, --last-stride 1) against the one with stem stride 1
#     (s1-48-none_s1337), same recipe, seed and 20 epochs, best val accuracy of each: l1 (half the cost per
#     step, 0.7 ms less per face in the app) unless it is more than GRID_ARCH_MAX_DROP below s1;
#   length ("Are 20 student epochs enough?"): the 40-epoch probe (s1-48-kd-rn18-e40_s1337) against the
#     20-epoch run it repeats (s1-48-kd-rn18_s1337), best val accuracy of each; a gain of at least GRID_MIN_GAIN
#     -> 40 epochs, else 20.
# Both go to runs/sharp/grid.txt with their figures once both probes have finished, and are read from there from
# then on, so they never change under runs already started. Configuration names carry both: the layout as their
# prefix (s1-48-..., l1-48-...), the length when it is not the design's 20 (l1-48-kd-val4-e40), so that runs of
# different layouts or lengths never share a name in an aggregate.
GRID_RECORD=runs/sharp/grid.txt
GRID_PROBE=runs/sharp/students/s1-48-kd-rn18-e40_s1337
GRID_BASE=runs/sharp/students/s1-48-kd-rn18_s1337
GRID_MIN_GAIN=0.01
GRID_ARCH_PROBE=runs/sharp/students/l1-48-none_s1337
GRID_ARCH_BASE=runs/sharp/students/s1-48-none_s1337
GRID_ARCH_MAX_DROP=0.005
best_val() {  # best_val RUN: the highest val_acc of RUN/history.csv (4 decimals); fails without one
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "val_acc") c = i; next }
           c && $c != "" && (n++ == 0 || $c + 0 > b) { b = $c + 0 }
           END { if (!c || !n) exit 1; printf "%.4f\n", b }' "$1/history.csv" 2> /dev/null
}
grid_decide() {  # write the record once both probes have finished; false (nothing written) while one has not
  [ -f $GRID_RECORD ] && return 0
  [ -f $GRID_PROBE/summary.json ] && [ -f $GRID_ARCH_PROBE/summary.json ] || return 1
  local probe base aprobe abase epochs arch run
  for run in $GRID_PROBE $GRID_BASE $GRID_ARCH_PROBE $GRID_ARCH_BASE; do
    best_val $run > /dev/null || { echo "grid: no val_acc in $run/history.csv" >&2; exit 1; }
  done
  probe=$(best_val $GRID_PROBE); base=$(best_val $GRID_BASE)
  aprobe=$(best_val $GRID_ARCH_PROBE); abase=$(best_val $GRID_ARCH_BASE)
  epochs=$(awk -v p="$probe" -v b="$base" -v g=$GRID_MIN_GAIN 'BEGIN { print (p - b >= g - 1e-9) ? 40 : 20 }')
  arch=$(awk -v p="$aprobe" -v b="$abase" -v d=$GRID_ARCH_MAX_DROP 'BEGIN { print (p >= b - d - 1e-9) ? "l1" : "s1" }')
  mkdir -p "${GRID_RECORD%/*}"
  printf '%s\n' "arch=$arch" "epochs=$epochs" \
      "arch_probe=$GRID_ARCH_PROBE" "arch_probe_best_val=$aprobe" "arch_base=$GRID_ARCH_BASE" \
      "arch_base_best_val=$abase" "arch_max_drop=$GRID_ARCH_MAX_DROP" \
      "probe=$GRID_PROBE" "probe_best_val=$probe" "base=$GRID_BASE" "base_best_val=$base" \
      "min_gain=$GRID_MIN_GAIN" "decided=$(date -u +%FT%TZ)" > $GRID_RECORD.tmp
  mv $GRID_RECORD.tmp $GRID_RECORD
  echo "grid: $arch layout (best val $aprobe with the last stride out vs $abase with stem 1; rule: l1 unless" \
       "more than $GRID_ARCH_MAX_DROP lower), $epochs student epochs (best val $probe at 40 vs $base at 20;" \
       "rule: +$GRID_MIN_GAIN -> 40)"
}
grid_require() {  # grid_decide, or stop with a message: nothing may start before the grid is known
  grid_decide || { echo "grid: the students' layout and epoch count are not decided yet: waiting for" \
                        "$GRID_ARCH_PROBE and $GRID_PROBE to finish" >&2; exit 1; }
}
grid_get() { grid_require > /dev/null; sed -n "s/^$1=//p" $GRID_RECORD; }
grid_epochs() { grid_get epochs; }
grid_suffix() {  # "" for the design's 20 epochs, "-eN" otherwise
  local e; e=$(grid_epochs); [ "$e" = 20 ] || echo "-e$e"
}
grid_prefix() { echo "$(grid_get arch)-48"; }  # the configuration names' prefix: layout and input size
grid_arch_args() {  # the fer-train options of the layout
  case $(grid_get arch) in s1) echo --stem-stride 1 ;; l1) echo --last-stride 1 ;; esac
}
