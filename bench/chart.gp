# Requests per second per scenario and balancer, as clustered bars: the small-response
# scenarios on the left, the bulk one (1 MiB responses: far fewer requests) on the right, each
# on its own scale. bench/report.py runs it:
# gnuplot -e "data='chart.dat'; bulk='chart-bulk.dat'; out='results.png'; clusters=8;
#   bulkclusters=2; colors='#9e9e9e ...'; bulkcolors='...'; subtitle='...'" bench/chart.gp
# Each data file: a header line of bar titles ("" keeps a bar out of the key), then one line
# per cluster: "label" and a req/s per bar. colors/bulkcolors: one colour per bar, in order.
# bulk='' draws the left part alone.
set terminal pngcairo size 1400,600 font "sans,10"
set output out
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set format y "%.0s%c"
set grid ytics
set xtics nomirror
set bmargin 4
set tmargin 3  # room for the key, above the bars
set key outside top center horizontal

split = (bulk eq '') ? 1.0 : 0.78
set multiplot title "sluice vs HAProxy vs nginx stream: requests/s (median), higher is better\n" \
                    . "{/*0.8 " . subtitle . "}"
set origin 0, 0
set size split, 0.9
set ylabel "requests/s"
set xrange [-0.6:clusters - 0.4]
plot for [i=2:words(colors) + 1] data using i:xtic(1) title columnheader(i) \
     linecolor rgb word(colors, i - 1)

if (bulk ne '') {
  set origin split, 0
  set size 1 - split, 0.9
  set ylabel "requests/s (= MiB/s)"
  set format y "%.0f"
  set xrange [-0.6:bulkclusters - 0.4]
  plot for [i=2:words(bulkcolors) + 1] bulk using i:xtic(1) title columnheader(i) \
       linecolor rgb word(bulkcolors, i - 1)
}
unset multiplot
