# Sourced by tests/cli/corpus_*.sh: read HDF5 values back with h5dump, independently of the C code.
# (In lib/ so that ctest, which runs tests/cli/*.sh, does not take it for a test.)

# h5vals FILE PATH -d|-a: the values of a dataset (-d) or attribute (-a), one per line (strings unquoted)
h5vals() {
    h5dump -y -w 0 "$3" "$2" "$1" | awk '/^ *DATA \{/ { f = 1; next } f && /^ *\}/ { exit } f' |
        tr ',' '\n' | sed 's/^ *//; s/ *$//; s/^"//; s/"$//' | grep -v '^$'
}
ds() { h5vals "$1" "$2" -d; }
attr() { h5vals "$1" "$2" -a; }
