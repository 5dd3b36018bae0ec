#!/bin/sh
# The README's feature-set comparisons ("Handcrafted features: families per data kind"): runs the seven suites of
# this folder (classical arm, strategy none, 5-fold CV) and prints the paired comparisons of their nested champions.
# Usage: sh docs/analysis/feature-sets/run.sh RESULTS_FOLDER [DATA_ROOT]   (DATA_ROOT defaults to ../shared/data)
set -eu
results=${1:?usage: run.sh RESULTS_FOLDER [DATA_ROOT]}
data=${2:-../shared/data}
here=$(dirname "$0")
for s in crop_all crop_nohed crop_nocell cell cellwhole idc_old idc_new; do
  python -m bench run --suite "$here/$s.toml" --data-root "$data" --results "$results" --jobs 1 --quiet
done
for pair in "crop_all crop_nohed" "crop_all crop_nocell" "cellwhole cell" "idc_new idc_old"; do
  set -- $pair
  python -m bench paired "$results/$1" "$results/$2"
done
