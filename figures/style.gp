# Shared by every figure script: the colours, the fonts and sizes of the two outputs, the checks
# on the input tables, and the steps that make both files appear whole and byte-identical from run
# to run. A script finds this file next to itself, with a last_slash() it defines first (used here
# too), and draws its plot once per format:
#   (check the arguments); eval RERUN_IN_UTC
#   do for [fmt in "pdf png"] { eval terminal(fmt, WIDTH_IN, HEIGHT_IN); set output part(STEM, fmt); ...; unset output }
#   eval PUBLISH
# The plots go to STEM.pdf.tmp and STEM.png.tmp, renamed to STEM.pdf and STEM.png once both are
# complete, so a failed run never leaves a half-drawn figure under the real name.

# Paths go into shell commands in single quotes, so a quote in one is refused.
path_error(p) = strstrt(p, "'") ? sprintf("%s: expected a path without a single quote", p) : ""

# cairo writes the local time zone into the PDF's date ("Z" in UTC, "+05'30" in India), which
# changes the file's length and every offset after it. A script run outside UTC therefore runs
# itself again, with the same arguments, under TZ=UTC0, and exits with that run's status: it does
# "eval RERUN_IN_UTC" once its arguments are checked (a loaded file does not see the script's
# ARG0 and ARGV, so this is a command for the script to run, not run here).
rerun_args(i) = i > ARGC ? "" : " '" . ARGV[i] . "'" . rerun_args(i + 1)
RERUN_IN_UTC = 'if (system("printf %s \"$TZ\"") ne "UTC0") { ' . \
    'rerun_out = system("TZ=UTC0 gnuplot -c ''" . ARG0 . "''" . rerun_args(1)); exit status GPVAL_SYSTEM_ERRNO }'

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Each role keeps its colour in every figure (LoRA is always orange, and so on).
OI_BLUE = "#0072B2"
OI_ORANGE = "#E69F00"
OI_GREEN = "#009E73"
OI_VERMILLION = "#D55E00"
OI_PURPLE = "#CC79A7"
C_TRAIN = OI_BLUE
C_VAL = OI_VERMILLION
C_BASE = OI_BLUE
C_LORA = OI_ORANGE
C_FULL = OI_GREEN
C_REMOVED = OI_VERMILLION
# corpus splits in their codes' order (0 train, 1 val, 2 test, 3 heldout)
SPLIT_NAMES = "train val test heldout"
split_colour(s) = s == 0 ? OI_BLUE : s == 1 ? OI_ORANGE : s == 2 ? OI_GREEN : OI_PURPLE
# the same as numbers, for "lc rgb variable"
rgb(hex) = int("0x" . hex[2:])
split_rgb(s) = rgb(split_colour(s))

# The PDF is sized in inches with 9-point text and lines of 1.2 points at lw 1; the PNG is the
# same page at 150 pixels per inch. pdfcairo halves fonts (fontscale 0.5) and lines (lw 1 is half
# a point) unless told otherwise; pngcairo counts a point as a pixel, hence its scales. noenhanced:
# package and filter names hold underscores, which enhanced text would take for subscripts.
PNG_DPI = 150
FONT = "DejaVu Sans"
LINE_PT = 1.2
terminal(fmt, w, h) = fmt eq "pdf" \
    ? sprintf('set terminal pdfcairo size %gin,%gin font "%s,9" fontscale 1 linewidth %g rounded noenhanced', \
              w, h, FONT, 2 * LINE_PT) \
    : sprintf('set terminal pngcairo size %d,%d font "%s,9" fontscale %g linewidth %g rounded noenhanced', \
              int(w * PNG_DPI), int(h * PNG_DPI), FONT, PNG_DPI / 72.0, LINE_PT * PNG_DPI / 72.0)
part(stem, fmt) = stem . "." . fmt . ".tmp"

# About five round tick steps (1, 2 or 5 times a power of ten) over [0, top]: gnuplot's own choice
# can crowd the axis with long labels such as 0.0035.
nice_step(top) = (nice_raw = top > 0 ? top / 5.0 : 1, nice_p = 10 ** floor(log10(nice_raw)), \
    nice_raw / nice_p < 1.5 ? nice_p : nice_raw / nice_p < 3.5 ? 2 * nice_p : nice_raw / nice_p < 7.5 ? 5 * nice_p : 10 * nice_p)
# on a log axis, a tick every decade, or every other one on a wide axis, so labels do not collide
tick_factor(lo, hi) = log10(hi / lo) > 5 ? 100 : 10
# Debian's Python packages are almost all python3-NAME: the figures label them NAME (and say so)
short_name(s) = s[1:8] eq "python3-" ? s[9:] : s

set datafile separator "\t"
# every input starts with a header line (also when a column is named only inside a function)
set datafile columnheaders
# lab-export prints NaN as "nan" (val_loss on steps without validation): such rows are skipped,
# and lines join the rows around them.
set datafile missing "nan"
set grid lc rgb "#d9d9d9" lw 0.6
set border lw 0.8
set tics nomirror out
set key noautotitle

# ---------------------------------------------------------------------------------------------
# input checks: one line on stderr naming the file, the thing expected and the thing found

# OUT_STEM's directory must exist (the pipeline makes it): gnuplot's own message is two lines
out_error(stem) = path_error(stem) ne "" ? path_error(stem) : \
    (out_dir = stem[1:last_slash(stem, strlen(stem))], out_dir eq "" || system("test -d '" . out_dir . "' && echo y") eq "y") ? "" : \
    sprintf("%s: expected an existing directory for OUT_STEM %s, found none", out_dir, stem)
# the column names, space-separated (names hold no spaces)
tsv_header(f) = system("head -n 1 -- '" . f . "' 2>/dev/null | tr '\\t' ' '")
tsv_rows(f) = int(system("tail -n +2 -- '" . f . "' 2>/dev/null | wc -l"))
missing_column(header, cols, i) = i > words(cols) ? "" : \
    strstrt(" " . header . " ", " " . word(cols, i) . " ") ? missing_column(header, cols, i + 1) : word(cols, i)
# "" when f is a table (lab-export TSV) with the columns cols (space-separated) and one row or more
tsv_error(f, cols) = path_error(f) ne "" ? path_error(f) : \
    (tsv_h = tsv_header(f), tsv_h eq "" ? sprintf("%s: expected a TSV table with columns %s, found no such file or an empty one", f, cols) : \
    (tsv_m = missing_column(tsv_h, cols, 1), tsv_m ne "" ? sprintf("%s: expected a column '%s', found columns %s", f, tsv_m, tsv_h) : \
    tsv_rows(f) < 1 ? sprintf("%s: expected one row or more under the header, found none", f) : ""))
# the first column of a table, for checking that files of one split list the same packages in order
first_column(f) = system("cut -f 1 -- '" . f . "'")

# ---------------------------------------------------------------------------------------------
# publishing both files

# cairo 1.16 (Debian 12) writes the wall-clock time into the PDF's /CreationDate and ignores
# SOURCE_DATE_EPOCH, so two runs a second apart differ there and only there. The 14 digits are
# rewritten in place to the time of SOURCE_DATE_EPOCH (0 when unset): the zone is UTC (see the
# re-run above), so the entry keeps its length and the cross-reference offsets stay right.
PIN_PDF_DATE = 'python3 -c ''import os, re, sys, time; p = sys.argv[1]; ' . \
    'd = time.strftime("%Y%m%d%H%M%S", time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH") or 0))).encode(); ' . \
    'pdf, n = re.subn(rb"(/CreationDate \(D:)\d{14}Z\)", lambda m: m[1] + d + b"Z)", open(p, "rb").read()); ' . \
    'n == 1 or sys.exit(f"{p}: expected one /CreationDate entry in UTC written by cairo, found {n}"); ' . \
    'open(p, "wb").write(pdf)'''

# pins the PDF's date, then renames both parts; a failure (its message already on stderr) ends
# the script with status 1
publish_command(stem) = PIN_PDF_DATE . " '" . part(stem, "pdf") . "'" . \
    " && mv -f -- '" . part(stem, "pdf") . "' '" . stem . ".pdf'" . \
    " && mv -f -- '" . part(stem, "png") . "' '" . stem . ".png'"
PUBLISH = 'publish_out = system(publish_command(STEM)); if (GPVAL_SYSTEM_ERRNO != 0) { exit status 1 }'
