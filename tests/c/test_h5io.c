// h5io: round trip of every type, tables and attributes; byte-identical files from identical
// writes; atomic writes; one clear error line for missing, truncated, corrupt, wrong-schema and
// wrong-shape files (each checked in a child process, since errors exit).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "h5io.h"
#include "test_util.h"

static void write_sample(const char *path) {
    H5Writer w = h5_create(path, "codelm-lab/test/1");
    float f[6] = {1.5f, -2.25f, 3, 4, 5, 6};
    uint64_t dims2[2] = {2, 3};
    h5_write(w.file, "f32", LAB_F32, f, 2, dims2, "nats");
    // big enough to be chunked and compressed
    uint64_t n = 100000;
    uint16_t *ids = lab_malloc(n * sizeof *ids);
    for (uint64_t i = 0; i < n; i++) ids[i] = (uint16_t)(i * 7919 % 4096);
    h5_write(w.file, "ids", LAB_U16, ids, 1, &n, NULL);
    free(ids);
    hid_t g = h5_group_create(w.file, "group");
    const char *strs[3] = {"alpha", "βeta", ""};
    h5_write_strings(g, "names", strs, 3);
    h5_attr_f64(g, "lr", 3e-4);
    H5Gclose(g);
    uint64_t steps[3] = {1, 2, 3};
    double loss[3] = {4.0, 3.5, 3.25};
    H5Column cols[3] = {{"step", LAB_U64, steps, NULL}, {"loss", LAB_F64, loss, "nats"},
                        {"name", LAB_STR, strs, NULL}};
    h5_table_write(w.file, "log", 3, 3, cols);
    h5_attr_i64(w.file, "answer", 42);
    h5_finish(&w);
}

static void open_test_schema(const char *path) { h5_close(h5_open(path, "codelm-lab/test/1")); }
static void open_other_schema(const char *path) { h5_close(h5_open(path, "codelm-lab/checkpoint/1")); }

static void read_wrong_shape(const char *path) {
    hid_t f = h5_open(path, "codelm-lab/test/1");
    uint64_t dims[2] = {3, 2};
    free(h5_read(f, "f32", LAB_F32, 2, dims));
}

static void read_all(const char *path) {
    hid_t f = h5_open(path, "codelm-lab/test/1");
    uint64_t d[1] = {0};
    free(h5_read(f, "ids", LAB_U16, 1, d));
    uint64_t d2[2] = {0, 0};
    free(h5_read(f, "f32", LAB_F32, 2, d2));
    h5_close(f);
}

static void read_missing_dataset(const char *path) {
    hid_t f = h5_open(path, "codelm-lab/test/1");
    uint64_t d[1] = {0};
    free(h5_read(f, "no_such", LAB_F32, 1, d));
}

static void create_then_die(const char *path) {
    H5Writer w = h5_create(path, "codelm-lab/test/1");
    float x = 1;
    uint64_t one = 1;
    h5_write(w.file, "x", LAB_F32, &x, 1, &one, NULL);
    lab_die("simulated failure while writing %s", path);
}

int main(int argc, char **argv) {
    lab_init("test_h5io", argc, argv);
    setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    lab_set_seed(1234);

    // round trip
    const char *a = test_path("a.h5");
    write_sample(a);
    hid_t f = h5_open(a, "codelm-lab/test/1");
    uint64_t d2[2] = {2, 0};
    float *fx = h5_read(f, "f32", LAB_F32, 2, d2);
    CHECK(d2[1] == 3 && fx[0] == 1.5f && fx[1] == -2.25f && fx[5] == 6, "f32 round trip");
    free(fx);
    uint64_t n = 0;
    uint16_t *ids = h5_read(f, "ids", LAB_U16, 1, &n);
    int ok = n == 100000;
    for (uint64_t i = 0; ok && i < n; i++) ok = ids[i] == (uint16_t)(i * 7919 % 4096);
    CHECK(ok, "u16 chunked round trip");
    uint32_t slice[4];
    h5_read_slice(f, "ids", LAB_U32, 500, 4, slice);
    CHECK(slice[0] == 500u * 7919 % 4096 && slice[3] == 503u * 7919 % 4096, "slice read with conversion");
    free(ids);
    uint64_t ns;
    char **names = h5_read_strings(f, "group/names", &ns);
    CHECK(ns == 3 && strcmp(names[1], "βeta") == 0 && names[2][0] == '\0', "utf-8 strings");
    h5_free_strings(names, ns);
    hid_t g = h5_group_open(f, "group");
    CHECK(h5_get_attr_f64(g, "lr") == 3e-4, "f64 attribute");
    H5Gclose(g);
    CHECK(h5_get_attr_i64(f, "answer") == 42, "i64 attribute");
    CHECK(h5_get_attr_i64(f, "seed") == 1234, "seed provenance");
    char *created = h5_get_attr_str(f, "created_utc");
    CHECK(strcmp(created, "2023-11-14T22:13:20Z") == 0, "created_utc from SOURCE_DATE_EPOCH: %s", created);
    free(created);
    static const char *const prov[] = {"schema", "tool", "tool_version", "git_commit", "command_line",
                                       "config_sha256", "inputs", "host", "cpu", "blas_core", "gpu", "threads"};
    for (size_t i = 0; i < sizeof prov / sizeof *prov; i++)
        CHECK(h5_has_attr(f, prov[i]), "provenance attribute %s", prov[i]);
    hid_t t = h5_group_open(f, "log");
    char *cols = h5_get_attr_str(t, "columns");
    CHECK(strcmp(cols, "step,loss,name") == 0, "table column order: %s", cols);
    CHECK(h5_get_attr_i64(t, "rows") == 3, "table rows");
    free(cols);
    H5Gclose(t);
    CHECK(h5_exists(f, "log/loss") && !h5_exists(f, "log/nothing/deeper"), "h5_exists");
    h5_close(f);
    struct stat st;
    CHECK(stat(test_path("a.h5.tmp"), &st) != 0, "no temporary file left after finish");

    // identical writes, identical bytes
    const char *b = test_path("b.h5");
    write_sample(b);
    size_t na, nb;
    char *ba = test_read_file(a, &na), *bb = test_read_file(b, &nb);
    // The file name is not stored, only content: the two files must match byte for byte.
    CHECK(na == nb && memcmp(ba, bb, na) == 0, "byte-identical files from identical writes (%zu vs %zu bytes)", na, nb);

    // errors: one line, exit 1, naming the file
    test_expect_error(open_test_schema, test_path("missing.h5"), "cannot open", "missing file");
    const char *trunc = test_path("trunc.h5");
    FILE *tf = lab_fopen(trunc, "wb");
    fwrite(ba, 1, na / 2, tf);
    fclose(tf);
    test_expect_error(read_all, trunc, "truncated or corrupt", "truncated file");
    const char *noth5 = test_path("not.h5");
    tf = lab_fopen(noth5, "wb");
    fputs("this is not an HDF5 file\n", tf);
    fclose(tf);
    test_expect_error(open_test_schema, noth5, "expected an HDF5 file", "not HDF5");
    const char *corrupt = test_path("corrupt.h5");
    // Overwrite the chunked data of 'ids' (the bulk of the file) with garbage.
    char *bc = lab_malloc(na);
    memcpy(bc, ba, na);
    for (size_t i = na / 3; i < na / 3 + 4096 && i < na; i++) bc[i] = (char)(i * 31);
    tf = lab_fopen(corrupt, "wb");
    fwrite(bc, 1, na, tf);
    fclose(tf);
    test_expect_error(read_all, corrupt, "corrupt", "corrupt data");
    test_expect_error(open_other_schema, a, "expected schema 'codelm-lab/checkpoint/1', found 'codelm-lab/test/1'",
                      "wrong schema");
    test_expect_error(read_wrong_shape, a, "expected shape (3, 2), found (2, 3)", "wrong shape");
    test_expect_error(read_missing_dataset, a, "expected dataset 'no_such'", "missing dataset");
    const char *half = test_path("half.h5");
    test_expect_error(create_then_die, half, "simulated", "die while writing");
    CHECK(stat(half, &st) != 0 && stat(test_path("half.h5.tmp"), &st) != 0, "nothing half-written left behind");

    free(ba); free(bb); free(bc);
    return test_summary();
}
