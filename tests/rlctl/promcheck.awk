# promcheck.awk - a strict checker of the Prometheus text exposition format (0.0.4), for
# rlctl's `metrics` output when promtool (Debian package prometheus, ~100 MB) is not there.
#
#   awk -f promcheck.awk FILE     exit 0 valid; 1 with "promcheck: LINE: reason" lines
#
# Checks the grammar (metric and label names, label value escapes \\ \" \n only, the
# value as a float, +Inf, -Inf or NaN, an optional integer timestamp), # HELP and # TYPE
# (one each per family, TYPE before the family's first sample, known types), every family's
# samples in one group, no duplicate series, no duplicate label in a sample, no reserved
# __ label names. Also promtool's lint rules that rlctl keeps: every family has HELP and
# TYPE, counters end in _total. POSIX awk (mawk): no regex intervals, no gensub.

function bad(msg) { printf "promcheck: %d: %s: %s\n", NR, msg, $0; errors++ }

# The family a sample name belongs to (histogram and summary series carry suffixes).
function family_of(name,    base, sfx, n) {
    n = split("_bucket _sum _count", sfx, " ")
    for (i = 1; i <= n; i++) {
        if (length(name) > length(sfx[i]) && substr(name, length(name) - length(sfx[i]) + 1) == sfx[i]) {
            base = substr(name, 1, length(name) - length(sfx[i]))
            if (type[base] == "histogram" || type[base] == "summary") return base
        }
    }
    return name
}

# A family starts its group, or continues the current one; reopening a closed one is bad.
function enter(fam) {
    if (fam == current) return
    if (fam in closed) bad("family " fam " appears in two groups")
    if (current != "") closed[current] = 1
    current = fam
}

function check_value(v) {
    return v ~ /^[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|Inf|NaN)$/
}

/^[ \t]*$/ { next }

/^#/ {
    if ($0 ~ /^# (HELP|TYPE) /) {
        kind = $2; name = $3
        if (name !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) { bad("bad metric name in # " kind); next }
        enter(name)
        if (kind == "HELP") {
            if (name in help) bad("second HELP for " name)
            help[name] = 1
            text = substr($0, length("# HELP " name) + 2)
            # docstring escapes: only \\ and \n
            t = text
            while ((p = index(t, "\\")) > 0) {
                c = substr(t, p + 1, 1)
                if (c != "\\" && c != "n") { bad("bad escape in HELP text"); break }
                t = substr(t, p + 2)
            }
        } else {
            if (NF != 4) { bad("TYPE needs a name and a type"); next }
            if ($4 !~ /^(counter|gauge|histogram|summary|untyped)$/) bad("unknown type " $4)
            if (name in type) bad("second TYPE for " name)
            if (name in seen) bad("TYPE after samples of " name)
            type[name] = $4
        }
    }
    next
}

{
    line = $0
    if (!match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) { bad("bad metric name"); next }
    name = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
    fam = family_of(name)
    enter(fam)
    seen[fam] = 1
    labels = ""; delete dup
    if (substr(rest, 1, 1) == "{") {
        rest = substr(rest, 2)
        ok = 1
        while (substr(rest, 1, 1) != "}") {
            if (!match(rest, /^[a-zA-Z_][a-zA-Z0-9_]*/)) { bad("bad label name"); ok = 0; break }
            lname = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
            if (substr(lname, 1, 2) == "__") bad("reserved label name " lname)
            if (lname in dup) bad("label " lname " twice")
            dup[lname] = 1
            if (substr(rest, 1, 2) != "=\"") { bad("label " lname " needs =\"value\""); ok = 0; break }
            rest = substr(rest, 3); val = ""; closed_q = 0
            while (length(rest) > 0) {
                c = substr(rest, 1, 1)
                if (c == "\\") {
                    e = substr(rest, 2, 1)
                    if (e != "\\" && e != "\"" && e != "n") { bad("bad escape \\" e " in label " lname); ok = 0 }
                    val = val c e; rest = substr(rest, 3); continue
                }
                rest = substr(rest, 2)
                if (c == "\"") { closed_q = 1; break }
                val = val c
            }
            if (!ok) break
            if (!closed_q) { bad("unterminated value of label " lname); ok = 0; break }
            labels = labels lname "=" val "\001"
            if (substr(rest, 1, 1) == ",") rest = substr(rest, 2)
            else if (substr(rest, 1, 1) != "}") { bad("expected , or } after label " lname); ok = 0; break }
        }
        if (!ok) next
        rest = substr(rest, 2)
    }
    if (rest !~ /^[ \t]+/) { bad("no blank before the value"); next }
    sub(/^[ \t]+/, "", rest); sub(/[ \t]+$/, "", rest)
    n = split(rest, f, /[ \t]+/)
    if (n < 1 || n > 2) { bad("expected a value and an optional timestamp"); next }
    if (!check_value(f[1])) bad("bad value " f[1])
    if (n == 2 && f[2] !~ /^-?[0-9]+$/) bad("bad timestamp " f[2])
    # sort-free duplicate key: labels in the order written (rlctl writes a fixed order)
    key = name "\002" labels
    if (key in series) bad("duplicate series")
    series[key] = 1
}

END {
    for (fam in seen) {
        if (!(fam in type)) { printf "promcheck: family %s has no # TYPE\n", fam; errors++ }
        if (!(fam in help)) { printf "promcheck: family %s has no # HELP\n", fam; errors++ }
        if (type[fam] == "counter" && fam !~ /_total$/) {
            printf "promcheck: counter %s should end in _total\n", fam; errors++
        }
    }
    if (NR == 0) { print "promcheck: empty input"; errors++ }
    exit errors > 0
}
