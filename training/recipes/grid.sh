# Sourced by sharp_cpu.sh and nl_negl_cpu.sh (from the repository root): how many epochs the students of the
# grid (issue 10) and of the NL / NegL phases (issue 14) train, decided once, by a rule written down in
# docs/decisions.md ("Are 20 student epochs enough?") before the probe's result was known:
#   the 40-epoch probe (s1-48-kd-rn18-e40_s1337) against the 20-epoch run it repeats (s1-48-kd-rn18_s1337,
#   same teacher, seed and recipe), best val accuracy of each (history.csv); a gain of at least GRID_MIN_GAIN
#   -> 40 epochs, else 20.
# The decision is written to runs/sharp/grid_epochs.txt with both figures, and read from there from then on,
# so it never changes under runs already started. Configuration names carry the length when it is not the
# design's 20 (s1-48-kd-val4-e40), so that runs of different lengths never share a name in an aggregate.
GRID_RECORD=runs/sharp/grid_epochs.txt
GRID_PROBE=runs/sharp/students/s1-48-kd-rn18-e40_s1337
GRID_BASE=runs/sharp/students/s1-48-kd-rn18_s1337
GRID_MIN_GAIN=0.01
best_val() {  # best_val RUN: the highest val_acc of RUN/history.csv (4 decimals); fails without one
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "val_acc") c = i; next }
           c && $c != "" && (n++ == 0 || $c + 0 > b) { b = $c + 0 }
           END { if (!c || !n) exit 1; printf "%.4f\n", b }' "$1/history.csv" 2> /dev/null
}
grid_decide() {  # write the record once the probe has finished; false (nothing written) while it has not
  [ -f $GRID_RECORD ] && return 0
  [ -f $GRID_PROBE/summary.json ] || return 1
  local probe base epochs
  probe=$(best_val $GRID_PROBE) || { echo "grid: no val_acc in $GRID_PROBE/history.csv" >&2; exit 1; }
  base=$(best_val $GRID_BASE) || { echo "grid: no val_acc in $GRID_BASE/history.csv" >&2; exit 1; }
  epochs=$(awk -v p="$probe" -v b="$base" -v g=$GRID_MIN_GAIN 'BEGIN { print (p - b >= g - 1e-9) ? 40 : 20 }')
  mkdir -p "${GRID_RECORD%/*}"
  printf 'epochs=%s\nprobe=%s\nprobe_best_val=%s\nbase=%s\nbase_best_val=%s\nmin_gain=%s\ndecided=%s\n' \
      "$epochs" $GRID_PROBE "$probe" $GRID_BASE "$base" $GRID_MIN_GAIN "$(date -u +%FT%TZ)" > $GRID_RECORD.tmp
  mv $GRID_RECORD.tmp $GRID_RECORD
  echo "grid: $epochs student epochs (best val $probe at 40 epochs vs $base at 20; rule: +$GRID_MIN_GAIN -> 40)"
}
grid_require() {  # grid_decide, or stop with a message: nothing may start before the length is known
  grid_decide || { echo "grid: the students' epoch count is not decided yet: $GRID_PROBE has not finished" >&2; exit 1; }
}
grid_epochs() { grid_require > /dev/null; sed -n 's/^epochs=//p' $GRID_RECORD; }
grid_suffix() {  # "" for the design's 20 epochs, "-eN" otherwise
  local e; e=$(grid_epochs); [ "$e" = 20 ] || echo "-e$e"
}
