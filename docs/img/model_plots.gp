# Plots for docs/MODEL.md (gnuplot-nox): run from the repository root with
#   gnuplot docs/img/model_plots.gp
# Inputs: docs/img/train_curve_taobao.tsv (interestctl train --curve) and
#         docs/img/buckets_taobao.tsv (interestctl eval --buckets).
set terminal pngcairo size 900,520 font "sans,11" noenhanced
set datafile separator "\t"
set key outside right
set grid

set output "docs/img/train_curve_taobao.png"
set title "interestctl train on Taobao (H=64): loss and dev MRR@10 per epoch"
set xlabel "epoch"
set ylabel "NLL (nats)"
set y2label "dev MRR@10"
set ytics nomirror
set y2tics
plot "docs/img/train_curve_taobao.tsv" using 1:2 with linespoints title "train NLL", \
     "" using 1:4 with linespoints title "dev NLL", \
     "" using 1:3 axes x1y2 with linespoints title "dev MRR@10"

set output "docs/img/mrr_by_history_taobao.png"
set title "Test MRR@10 by the user's history length (events before the target)"
set xlabel "events of the user before the target (bucket lower bound)"
set ylabel "MRR@10"
unset y2label
unset y2tics
set ytics mirror
set yrange [0.3:0.6]
plot "docs/img/buckets_taobao.tsv" every ::2 using 0:3:xtic(1) with linespoints lw 2 title "lstm", \
     "" every ::2 using 0:9 with linespoints title "recency", \
     "" every ::2 using 0:15 with linespoints title "decay", \
     "" every ::2 using 0:21 with linespoints title "markov", \
     "" every ::2 using 0:24 with linespoints title "blend", \
     "" every ::2 using 0:6 with linespoints title "repeat"
