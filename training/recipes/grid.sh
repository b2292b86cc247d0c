# Sourced by sharp_cpu.sh and nl_negl_cpu.sh (from the repository root): the students of the grid (issue 10)
# and of the NL / NegL phases (issue 14) share one stride layout and one length, read from the committed record
# training/recipes/grid.txt (docs/decisions.md says how each was decided and from which figures):
#   arch    s1 (stem stride 1, --stem-stride 1) or l1 (the last strided stage's stride out, --last-stride 1)
#   epochs  the students' epoch count (the design's 20 unless the record says otherwise)
# The record is part of the repository, not of runs/, so that runs rebuilt from scratch get the same names and
# settings as the ones they replace. Configuration names carry both: the layout as their prefix (s1-48-...,
# l1-48-...), the length when it is not the design's 20 (s1-48-kd-val4-e40), so that runs of different
# layouts or lengths never share a name in an aggregate.
GRID_RECORD=${GRID_RECORD:-training/recipes/grid.txt}
grid_require() {  # stop with a message when the record is missing or incomplete: nothing may start without it
  [ -f "$GRID_RECORD" ] || { echo "grid: no record $GRID_RECORD: the students' layout and epoch count are unknown" >&2; exit 1; }
  case $(sed -n 's/^arch=//p' "$GRID_RECORD") in s1|l1) ;; *)
    echo "grid: $GRID_RECORD: arch must be s1 or l1" >&2; exit 1 ;; esac
  grep -qE '^epochs=[1-9][0-9]*$' "$GRID_RECORD" || { echo "grid: $GRID_RECORD: no epochs=N line" >&2; exit 1; }
}
grid_get() { grid_require; sed -n "s/^$1=//p" "$GRID_RECORD"; }
grid_epochs() { grid_get epochs; }
grid_suffix() {  # "" for the design's 20 epochs, "-eN" otherwise
  local e; e=$(grid_epochs); [ "$e" = 20 ] || echo "-e$e"
}
grid_prefix() { echo "$(grid_get arch)-48"; }  # the configuration names' prefix: layout and input size
grid_arch_args() {  # the fer-train options of the layout
  case $(grid_get arch) in s1) echo --stem-stride 1 ;; l1) echo --last-stride 1 ;; esac
}
