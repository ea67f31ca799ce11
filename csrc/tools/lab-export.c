// lab-export: a metrics table of any codelm-lab HDF5 file -> TSV (for gnuplot, spreadsheets, diff).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5io.h"

static void usage(void) {
    printf("usage: lab-export FILE.h5 TABLE [--out OUT.tsv]\n"
           "       lab-export FILE.h5 --list\n"
           "\n"
           "Writes the table TABLE (a group of equal-length columns, e.g. train_log, by_package,\n"
           "filters) of FILE.h5 as tab-separated values with a header line of column names.\n"
           "Floats are printed with enough digits to round-trip (float32: 9, float64: 17).\n"
           "\n"
           "  --out OUT.tsv   write here (atomically: OUT.tsv.tmp, then rename); default stdout\n"
           "  --list          list the tables in FILE.h5, one path a line\n"
           "  --help          this text\n");
}

static herr_t list_visit(hid_t root, const char *name, const H5O_info_t *info, void *data) {
    if (info->type != H5O_TYPE_GROUP || strcmp(name, ".") == 0) return 0;
    hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
    if (h5_has_attr(g, "columns")) printf("%s\n", name);
    H5Gclose(g);
    return 0;
}

static void print_cell(FILE *out, const H5TableColumn *c, uint64_t i) {
    switch (c->type) {
    case LAB_F32: fprintf(out, "%.9g", (double)((float *)c->data)[i]); break;
    case LAB_F64: fprintf(out, "%.17g", ((double *)c->data)[i]); break;
    case LAB_U8: fprintf(out, "%u", ((uint8_t *)c->data)[i]); break;
    case LAB_U16: fprintf(out, "%u", ((uint16_t *)c->data)[i]); break;
    case LAB_U32: fprintf(out, "%u", ((uint32_t *)c->data)[i]); break;
    case LAB_U64: fprintf(out, "%llu", (unsigned long long)((uint64_t *)c->data)[i]); break;
    case LAB_I32: fprintf(out, "%d", ((int32_t *)c->data)[i]); break;
    case LAB_I64: fprintf(out, "%lld", (long long)((int64_t *)c->data)[i]); break;
    case LAB_STR:
        // TSV has no quoting: tabs and newlines inside a string become spaces.
        for (const char *s = ((char **)c->data)[i]; *s; s++) fputc(*s == '\t' || *s == '\n' ? ' ' : *s, out);
        break;
    }
}

int main(int argc, char **argv) {
    lab_init("lab-export", argc, argv);
    const char *file = NULL, *table = NULL, *out_path = NULL;
    int list = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(); return 0; }
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if (!strcmp(argv[i], "--out")) { if (++i >= argc) lab_die("--out: expected a path"); out_path = argv[i]; }
        else if (argv[i][0] == '-' && argv[i][1] == '-') lab_die("unknown flag '%s' (see --help)", argv[i]);
        else if (!file) file = argv[i];
        else if (!table) table = argv[i];
        else lab_die("unexpected argument '%s' (see --help)", argv[i]);
    }
    if (!file || (!table && !list)) lab_die("expected FILE.h5 and TABLE, or FILE.h5 --list (see --help)");
    hid_t f = h5_open(file, NULL);
    if (list) {
        H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, list_visit, NULL, H5O_INFO_BASIC);
        h5_close(f);
        return 0;
    }
    uint64_t rows;
    int ncols;
    H5TableColumn *cols = h5_table_read(f, table, &rows, &ncols);
    h5_close(f);

    char *tmp = NULL;
    FILE *out = stdout;
    if (out_path) out = lab_atomic_open(out_path, &tmp);
    for (int c = 0; c < ncols; c++) fprintf(out, "%s%s", c ? "\t" : "", cols[c].name);
    fputc('\n', out);
    for (uint64_t r = 0; r < rows; r++) {
        for (int c = 0; c < ncols; c++) {
            if (c) fputc('\t', out);
            print_cell(out, &cols[c], r);
        }
        fputc('\n', out);
    }
    if (out_path) lab_atomic_close(out, tmp, out_path);
    h5_table_free(cols, ncols, rows);
    return 0;
}
