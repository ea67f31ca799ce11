// lab-inspect: what a codelm-lab HDF5 file holds: provenance, groups, datasets, shapes, units.
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "h5io.h"

int main(int argc, char **argv) {
    lab_init("lab-inspect", argc, argv);
    const char *file = NULL, *schema = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: lab-inspect FILE.h5 [--schema SCHEMA]\n"
                   "\n"
                   "Prints the root attributes (schema and provenance: tool, git commit, command line,\n"
                   "inputs with their sha256, host, cpu, BLAS core, threads, seed, creation time), then\n"
                   "every group and dataset with its type, shape and attributes.\n"
                   "\n"
                   "  --schema SCHEMA  fail unless the file's schema is exactly SCHEMA\n"
                   "                   (e.g. codelm-lab/checkpoint/1); default: any codelm-lab file\n");
            return 0;
        } else if (!strcmp(argv[i], "--schema")) {
            if (++i >= argc) lab_die("--schema: expected a schema name");
            schema = argv[i];
        } else if (argv[i][0] == '-') lab_die("unknown flag '%s' (see --help)", argv[i]);
        else if (!file) file = argv[i];
        else lab_die("unexpected argument '%s' (see --help)", argv[i]);
    }
    if (!file) lab_die("expected FILE.h5 (see --help)");
    hid_t f = h5_open(file, schema);
    printf("%s\n", file);
    h5_describe(f, stdout);
    h5_close(f);
    return 0;
}
