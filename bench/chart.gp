# Requests per second per scenario and balancer, as clustered bars.
# gnuplot -e "data='chart.dat'; out='results.png'; clusters=6; subtitle='...'" bench/chart.gp
# chart.dat: a header line, then one line per scenario: "label" direct sluice haproxy nginx
set terminal pngcairo size 1200,560 font "sans,10"
set output out
set title "sluice vs HAProxy vs nginx stream: requests/s (median), higher is better\n" \
          . "{/*0.8 " . subtitle . "}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "requests/s"
set yrange [0:*]
set format y "%.0s%c"
set grid ytics
set key top right
set xtics nomirror
set bmargin 4
set xrange [-0.6:clusters - 0.4]
plot data using 2:xtic(1) title columnheader(2) linecolor rgb "#9e9e9e", \
     ''   using 3 title columnheader(3) linecolor rgb "#1f77b4", \
     ''   using 4 title columnheader(4) linecolor rgb "#ff7f0e", \
     ''   using 5 title columnheader(5) linecolor rgb "#2ca02c"
