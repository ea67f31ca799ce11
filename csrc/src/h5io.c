// h5io: the only code that talks to HDF5 (see h5io.h for the conventions).
#define _GNU_SOURCE
#include "h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

// Every call into HDF5 is checked; the library's own error stack printing is off, so a failure
// gives our one line instead of a page of stack.
#define h5Check(expr, ...) do { if ((expr) < 0) lab_die(__VA_ARGS__); } while (0)

static void h5_quiet(void) {
    static int done;
    if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = 1; }
}

size_t lab_type_size(LabType t) {
    switch (t) {
    case LAB_F32: case LAB_U32: case LAB_I32: return 4;
    case LAB_F64: case LAB_U64: case LAB_I64: return 8;
    case LAB_U8: return 1;
    case LAB_U16: return 2;
    case LAB_STR: return sizeof(char *);
    }
    return 0;
}

static hid_t native_type(LabType t) {
    switch (t) {
    case LAB_F32: return H5T_NATIVE_FLOAT;
    case LAB_F64: return H5T_NATIVE_DOUBLE;
    case LAB_U8: return H5T_NATIVE_UINT8;
    case LAB_U16: return H5T_NATIVE_UINT16;
    case LAB_U32: return H5T_NATIVE_UINT32;
    case LAB_U64: return H5T_NATIVE_UINT64;
    case LAB_I32: return H5T_NATIVE_INT32;
    case LAB_I64: return H5T_NATIVE_INT64;
    case LAB_STR: break;
    }
    lab_die("internal: no native HDF5 type for string columns");
}

// On disk: little-endian standard types, so files are the same bytes on every machine.
static hid_t file_type(LabType t) {
    switch (t) {
    case LAB_F32: return H5T_IEEE_F32LE;
    case LAB_F64: return H5T_IEEE_F64LE;
    case LAB_U8: return H5T_STD_U8LE;
    case LAB_U16: return H5T_STD_U16LE;
    case LAB_U32: return H5T_STD_U32LE;
    case LAB_U64: return H5T_STD_U64LE;
    case LAB_I32: return H5T_STD_I32LE;
    case LAB_I64: return H5T_STD_I64LE;
    case LAB_STR: break;
    }
    lab_die("internal: no file HDF5 type for string columns");
}

static const char *type_name(LabType t) {
    static const char *const names[] = {"float32", "float64", "uint8", "uint16", "uint32",
                                        "uint64", "int32", "int64", "string"};
    return names[t];
}

static hid_t utf8_string_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

const char *h5_path_of(hid_t loc) {
    static char name[4096];
    if (H5Fget_name(loc, name, sizeof name) < 0) snprintf(name, sizeof name, "(unknown file)");
    return name;
}

static const char *obj_name(hid_t obj) {
    static char name[1024];
    if (H5Iget_name(obj, name, sizeof name) <= 0) snprintf(name, sizeof name, "/");
    return name;
}

// ---------------------------------------------------------------------------------------------
// files

static char *created_utc(void) {
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t;
    if (sde && *sde) t = (time_t)lab_parse_int("SOURCE_DATE_EPOCH", sde, 0, (long long)1 << 40);
    else t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char *buf = lab_malloc(32);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

H5Writer h5_create(const char *path, const char *schema) {
    h5_quiet();
    H5Writer w;
    w.path = lab_strdup(path);
    w.tmp = lab_malloc(strlen(path) + 5);
    sprintf(w.tmp, "%s.tmp", path);
    lab_cleanup_register(w.tmp);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    // No page buffering or metadata aggregation games: HDF5 then lays out a file the same way for
    // the same sequence of calls.
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    w.file = H5Fcreate(w.tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (w.file < 0) lab_die("cannot create %s: %s", w.tmp, strerror(errno));

    h5_attr_str(w.file, "schema", schema);
    h5_attr_str(w.file, "tool", lab_prog());
    h5_attr_str(w.file, "tool_version", LAB_VERSION);
    h5_attr_str(w.file, "git_commit", LAB_GIT_COMMIT);
    h5_attr_str(w.file, "command_line", lab_command_line());
    h5_attr_str(w.file, "config_sha256", lab_config_sha256());
    h5_attr_str(w.file, "inputs", lab_inputs());
    h5_attr_str(w.file, "host", lab_host_name());
    h5_attr_str(w.file, "cpu", lab_cpu_name());
    h5_attr_str(w.file, "blas_core", lab_blas_core());
    h5_attr_str(w.file, "gpu", "none");
    h5_attr_i64(w.file, "threads", lab_threads());
    uint64_t seed;
    if (lab_get_seed(&seed)) h5_attr_i64(w.file, "seed", (int64_t)seed);
    char *created = created_utc();
    h5_attr_str(w.file, "created_utc", created);
    free(created);
    return w;
}

void h5_finish(H5Writer *w) {
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0 || H5Fclose(w->file) < 0)
        lab_die("%s: could not flush the file (disk full?)", w->tmp);
    int fd = open(w->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) lab_die("%s: fsync failed: %s", w->tmp, strerror(errno));
    close(fd);
    if (rename(w->tmp, w->path) != 0)
        lab_die("cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    lab_cleanup_unregister(w->tmp);
    free(w->path);
    free(w->tmp);
    w->file = -1;
}

hid_t h5_open(const char *path, const char *schema) {
    h5_quiet();
    if (access(path, R_OK) != 0) lab_die("%s: cannot open: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        lab_die("%s: expected an HDF5 file, found something else (not HDF5, truncated or corrupt)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) lab_die("%s: expected a readable HDF5 file, found a truncated or corrupt one", path);
    if (H5Aexists(f, "schema") <= 0)
        lab_die("%s: expected a codelm-lab file (root attribute 'schema'), found none", path);
    char *found = h5_get_attr_str(f, "schema");
    if (schema ? strcmp(found, schema) != 0 : strncmp(found, "codelm-lab/", 11) != 0)
        lab_die("%s: expected schema '%s', found '%s'", path, schema ? schema : "codelm-lab/...", found);
    free(found);
    return f;
}

void h5_close(hid_t file) { H5Fclose(file); }

// ---------------------------------------------------------------------------------------------
// groups

hid_t h5_group_create(hid_t loc, const char *name) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) lab_die("%s: cannot create group '%s'", h5_path_of(loc), name);
    return g;
}

int h5_exists(hid_t loc, const char *path) {
    // H5Lexists needs every intermediate group to exist: walk the path.
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + (buf[0] == '/'); ; p++) {
        char c = *p;
        if (c == '/' || c == '\0') {
            *p = '\0';
            if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
            if (c == '\0') return 1;
            *p = c;
        }
    }
}

hid_t h5_group_open(hid_t loc, const char *name) {
    if (!h5_exists(loc, name))
        lab_die("%s: expected group '%s' under '%s', found none", h5_path_of(loc), name, obj_name(loc));
    hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
    if (g < 0) lab_die("%s: cannot open group '%s' (corrupt file?)", h5_path_of(loc), name);
    return g;
}

// ---------------------------------------------------------------------------------------------
// datasets

static hid_t dataset_create_plist(LabType t, int rank, const uint64_t *dims) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    size_t esize = lab_type_size(t);
    // Chunk + shuffle + deflate from 64 KiB up; chunks of about 1 MiB along the first axis.
    if (rank > 0 && n * esize >= (1u << 16)) {
        hsize_t chunk[8];
        uint64_t row = esize;
        for (int i = 1; i < rank; i++) { chunk[i] = dims[i]; row *= dims[i]; }
        uint64_t rows = (1u << 20) / (row ? row : 1);
        if (rows < 1) rows = 1;
        if (rows > dims[0]) rows = dims[0];
        chunk[0] = rows;
        H5Pset_chunk(dcpl, rank, chunk);
        if (t != LAB_STR) H5Pset_shuffle(dcpl);
        // Weights compress little: the fastest level for floats, a middle one for ids and bytes.
        H5Pset_deflate(dcpl, (t == LAB_F32 || t == LAB_F64) ? 1 : 4);
    }
    return dcpl;
}

void h5_write(hid_t loc, const char *name, LabType t, const void *data, int rank,
              const uint64_t *dims, const char *units) {
    hsize_t hd[8] = {0};
    for (int i = 0; i < rank; i++) hd[i] = dims[i];
    hid_t space = H5Screate_simple(rank, hd, NULL);
    hid_t dcpl = dataset_create_plist(t, rank, dims);
    hid_t ds = H5Dcreate2(loc, name, file_type(t), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) lab_die("%s: cannot create dataset '%s'", h5_path_of(loc), name);
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (n) h5Check(H5Dwrite(ds, native_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                   "%s: cannot write dataset '%s'", h5_path_of(loc), name);
    if (units) h5_attr_str(ds, "units", units);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
}

static hid_t open_dataset(hid_t loc, const char *name) {
    if (!h5_exists(loc, name))
        lab_die("%s: expected dataset '%s' under '%s', found none", h5_path_of(loc), name, obj_name(loc));
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) lab_die("%s: cannot open dataset '%s' (corrupt file?)", h5_path_of(loc), name);
    return ds;
}

static void check_class(hid_t loc, const char *name, hid_t ds, LabType t) {
    hid_t ft = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ft);
    H5Tclose(ft);
    int want_float = t == LAB_F32 || t == LAB_F64;
    if (t == LAB_STR ? cls != H5T_STRING : cls != (want_float ? H5T_FLOAT : H5T_INTEGER))
        lab_die("%s: dataset '%s': expected %s data, found %s", h5_path_of(loc), name, type_name(t),
                cls == H5T_FLOAT ? "floating-point" : cls == H5T_INTEGER ? "integer"
                : cls == H5T_STRING ? "string" : "another type");
}

static void format_shape(char *buf, size_t cap, int rank, const uint64_t *dims, int any_zero) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < rank && k < cap; i++) {
        if (any_zero && dims[i] == 0) k += (size_t)snprintf(buf + k, cap - k, "%s*", i ? ", " : "");
        else k += (size_t)snprintf(buf + k, cap - k, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    }
    if (k < cap) snprintf(buf + k, cap - k, ")");
}

void *h5_read(hid_t loc, const char *name, LabType t, int rank, uint64_t *dims) {
    hid_t ds = open_dataset(loc, name);
    check_class(loc, name, ds, t);
    hid_t space = H5Dget_space(ds);
    int frank = H5Sget_simple_extent_ndims(space);
    hsize_t fd[8] = {0};
    if (frank < 0 || frank > 8) lab_die("%s: dataset '%s' is corrupt (bad dataspace)", h5_path_of(loc), name);
    H5Sget_simple_extent_dims(space, fd, NULL);
    uint64_t found[8];
    for (int i = 0; i < frank; i++) found[i] = fd[i];
    int ok = frank == rank;
    for (int i = 0; ok && i < rank; i++) ok = dims[i] == 0 || dims[i] == found[i];
    if (!ok) {
        char want[128], got[128];
        format_shape(want, sizeof want, rank, dims, 1);
        format_shape(got, sizeof got, frank, found, 0);
        lab_die("%s: dataset '%s': expected shape %s, found %s", h5_path_of(loc), name, want, got);
    }
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) { dims[i] = found[i]; n *= found[i]; }
    void *buf = lab_malloc(n * lab_type_size(t));
    if (n) {
        if (t == LAB_STR) {
            hid_t st = utf8_string_type();
            h5Check(H5Dread(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf),
                    "%s: cannot read dataset '%s' (truncated or corrupt file)", h5_path_of(loc), name);
            H5Tclose(st);
        } else {
            h5Check(H5Dread(ds, native_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf),
                    "%s: cannot read dataset '%s' (truncated or corrupt file)", h5_path_of(loc), name);
        }
    }
    H5Sclose(space);
    H5Dclose(ds);
    return buf;
}

uint64_t h5_length(hid_t loc, const char *name) {
    hid_t ds = open_dataset(loc, name);
    hid_t space = H5Dget_space(ds);
    hsize_t d[8] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank != 1) lab_die("%s: dataset '%s': expected rank 1, found rank %d", h5_path_of(loc), name, rank);
    H5Sget_simple_extent_dims(space, d, NULL);
    H5Sclose(space);
    H5Dclose(ds);
    return d[0];
}

void h5_read_slice(hid_t loc, const char *name, LabType t, uint64_t start, uint64_t count, void *buf) {
    hid_t ds = open_dataset(loc, name);
    check_class(loc, name, ds, t);
    hid_t space = H5Dget_space(ds);
    hsize_t len = 0;
    if (H5Sget_simple_extent_ndims(space) != 1) lab_die("%s: dataset '%s': expected rank 1", h5_path_of(loc), name);
    H5Sget_simple_extent_dims(space, &len, NULL);
    if (start + count > len)
        lab_die("%s: dataset '%s': expected at least %llu elements, found %llu", h5_path_of(loc), name,
                (unsigned long long)(start + count), (unsigned long long)len);
    hsize_t s = start, c = count;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &s, NULL, &c, NULL);
    hid_t mem = H5Screate_simple(1, &c, NULL);
    h5Check(H5Dread(ds, native_type(t), mem, space, H5P_DEFAULT, buf),
            "%s: cannot read dataset '%s' (truncated or corrupt file)", h5_path_of(loc), name);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(ds);
}

void h5_write_strings(hid_t loc, const char *name, const char *const *strs, uint64_t n) {
    hsize_t d = n;
    hid_t space = H5Screate_simple(1, &d, NULL);
    hid_t st = utf8_string_type();
    hid_t dcpl = dataset_create_plist(LAB_STR, 1, &n);
    hid_t ds = H5Dcreate2(loc, name, st, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) lab_die("%s: cannot create dataset '%s'", h5_path_of(loc), name);
    if (n) h5Check(H5Dwrite(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, strs),
                   "%s: cannot write dataset '%s'", h5_path_of(loc), name);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Tclose(st);
    H5Sclose(space);
}

char **h5_read_strings(hid_t loc, const char *name, uint64_t *n) {
    uint64_t dims[1] = {0};
    char **raw = h5_read(loc, name, LAB_STR, 1, dims);
    *n = dims[0];
    // Copy out of HDF5's allocations so callers free with plain free().
    char **out = lab_malloc((dims[0] ? dims[0] : 1) * sizeof(char *));
    for (uint64_t i = 0; i < dims[0]; i++) {
        out[i] = lab_strdup(raw[i] ? raw[i] : "");
        H5free_memory(raw[i]);
    }
    free(raw);
    return out;
}

void h5_free_strings(char **strs, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) free(strs[i]);
    free(strs);
}

// ---------------------------------------------------------------------------------------------
// attributes

static void attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) lab_die("%s: cannot create attribute '%s'", h5_path_of(obj), name);
    h5Check(H5Awrite(a, mtype, value), "%s: cannot write attribute '%s'", h5_path_of(obj), name);
    H5Aclose(a);
    H5Sclose(space);
}

void h5_attr_str(hid_t obj, const char *name, const char *value) {
    hid_t st = utf8_string_type();
    attr_write(obj, name, st, st, &value);
    H5Tclose(st);
}

void h5_attr_i64(hid_t obj, const char *name, int64_t value) {
    attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void h5_attr_f64(hid_t obj, const char *name, double value) {
    attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int h5_has_attr(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

static hid_t attr_open(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0)
        lab_die("%s: expected attribute '%s' on '%s', found none", h5_path_of(obj), name, obj_name(obj));
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) lab_die("%s: cannot open attribute '%s' (corrupt file?)", h5_path_of(obj), name);
    return a;
}

char *h5_get_attr_str(hid_t obj, const char *name) {
    hid_t a = attr_open(obj, name);
    hid_t ft = H5Aget_type(a);
    int is_str = H5Tget_class(ft) == H5T_STRING, is_var = H5Tis_variable_str(ft) > 0;
    if (!is_str) lab_die("%s: attribute '%s': expected a string, found another type", h5_path_of(obj), name);
    char *out;
    if (is_var) {
        hid_t st = utf8_string_type();
        char *value = NULL;
        h5Check(H5Aread(a, st, &value), "%s: cannot read attribute '%s'", h5_path_of(obj), name);
        out = lab_strdup(value ? value : "");
        H5free_memory(value);
        H5Tclose(st);
    } else {  // fixed-length strings, as other writers (h5py with numpy bytes) make them
        size_t n = H5Tget_size(ft);
        out = lab_calloc(n + 1, 1);
        h5Check(H5Aread(a, ft, out), "%s: cannot read attribute '%s'", h5_path_of(obj), name);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return out;
}

// Reads a scalar numeric attribute converted to mtype. An integer attribute is always taken; a
// floating-point one only when float_ok, so that h5_get_attr_i64 refuses a float instead of rounding it.
static void attr_read_number(hid_t obj, const char *name, hid_t mtype, int float_ok, void *value) {
    hid_t a = attr_open(obj, name);
    hid_t ft = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(ft);
    if (cls != H5T_INTEGER && !(float_ok && cls == H5T_FLOAT))
        lab_die("%s: attribute '%s': expected %s, found another type", h5_path_of(obj), name,
                float_ok ? "a number" : "an integer");
    h5Check(H5Aread(a, mtype, value), "%s: cannot read attribute '%s'", h5_path_of(obj), name);
    H5Tclose(ft);
    H5Aclose(a);
}

int64_t h5_get_attr_i64(hid_t obj, const char *name) {
    int64_t v;
    attr_read_number(obj, name, H5T_NATIVE_INT64, 0, &v);
    return v;
}

double h5_get_attr_f64(hid_t obj, const char *name) {
    double v;
    attr_read_number(obj, name, H5T_NATIVE_DOUBLE, 1, &v);
    return v;
}

// ---------------------------------------------------------------------------------------------
// tables

void h5_table_write(hid_t loc, const char *name, uint64_t rows, int ncols, const H5Column *cols) {
    hid_t g = h5_group_create(loc, name);
    size_t cap = 16;
    for (int i = 0; i < ncols; i++) cap += strlen(cols[i].name) + 1;
    char *list = lab_malloc(cap);
    list[0] = '\0';
    for (int i = 0; i < ncols; i++) {
        if (i) strcat(list, ",");
        strcat(list, cols[i].name);
        if (cols[i].type == LAB_STR) h5_write_strings(g, cols[i].name, cols[i].data, rows);
        else h5_write(g, cols[i].name, cols[i].type, cols[i].data, 1, &rows, cols[i].units);
    }
    h5_attr_str(g, "columns", list);
    h5_attr_i64(g, "rows", (int64_t)rows);
    free(list);
    H5Gclose(g);
}

static LabType stored_type(hid_t loc, const char *name, hid_t ds) {
    hid_t ft = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ft);
    size_t size = H5Tget_size(ft);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(ft) : H5T_SGN_NONE;
    H5Tclose(ft);
    if (cls == H5T_STRING) return LAB_STR;
    if (cls == H5T_FLOAT) return size <= 4 ? LAB_F32 : LAB_F64;
    if (cls == H5T_INTEGER) {
        if (sign == H5T_SGN_NONE) return size == 1 ? LAB_U8 : size == 2 ? LAB_U16 : size == 4 ? LAB_U32 : LAB_U64;
        return size <= 4 ? LAB_I32 : LAB_I64;
    }
    lab_die("%s: dataset '%s': expected numbers or strings, found another type", h5_path_of(loc), name);
}

H5TableColumn *h5_table_read(hid_t loc, const char *name, uint64_t *rows, int *ncols) {
    hid_t g = h5_group_open(loc, name);
    if (!h5_has_attr(g, "columns"))
        lab_die("%s: expected '%s' to be a table (attribute 'columns'), found a plain group", h5_path_of(loc), name);
    char *list = h5_get_attr_str(g, "columns");
    int n = 1;
    for (char *c = list; *c; c++) n += *c == ',';
    H5TableColumn *cols = lab_calloc((size_t)n, sizeof *cols);
    char *save = NULL;
    int k = 0;
    *rows = 0;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save), k++) {
        hid_t ds = open_dataset(g, tok);
        cols[k].name = lab_strdup(tok);
        cols[k].type = stored_type(g, tok, ds);
        cols[k].units = h5_has_attr(ds, "units") ? h5_get_attr_str(ds, "units") : NULL;
        H5Dclose(ds);
        uint64_t len;
        if (cols[k].type == LAB_STR) cols[k].data = h5_read_strings(g, tok, &len);
        else { len = 0; cols[k].data = h5_read(g, tok, cols[k].type, 1, &len); }
        if (k == 0) *rows = len;
        else if (len != *rows)
            lab_die("%s: table '%s': expected every column to have %llu rows, found %llu in '%s'",
                    h5_path_of(loc), name, (unsigned long long)*rows, (unsigned long long)len, tok);
    }
    *ncols = k;
    free(list);
    H5Gclose(g);
    return cols;
}

void h5_table_free(H5TableColumn *cols, int ncols, uint64_t rows) {
    for (int i = 0; i < ncols; i++) {
        if (cols[i].type == LAB_STR) h5_free_strings(cols[i].data, rows);
        else free(cols[i].data);
        free(cols[i].name);
        free(cols[i].units);
    }
    free(cols);
}

static void describe_attrs(hid_t obj, FILE *out, const char *indent) {
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return;
    for (hsize_t i = 0; i < info.num_attrs; i++) {
        char name[256];
        if (H5Aget_name_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
            continue;
        hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
        hid_t t = H5Aget_type(a);
        H5T_class_t cls = H5Tget_class(t);
        H5Tclose(t);
        H5Aclose(a);
        if (cls == H5T_STRING) {
            char *v = h5_get_attr_str(obj, name);
            // multi-line values (inputs) keep their lines, indented
            fprintf(out, "%s@%s = ", indent, name);
            for (char *c = v; *c; c++) {
                fputc(*c, out);
                if (*c == '\n' && c[1]) fprintf(out, "%s    ", indent);
            }
            if (!*v || v[strlen(v) - 1] != '\n') fputc('\n', out);
            free(v);
        } else if (cls == H5T_INTEGER) {
            fprintf(out, "%s@%s = %lld\n", indent, name, (long long)h5_get_attr_i64(obj, name));
        } else if (cls == H5T_FLOAT) {
            fprintf(out, "%s@%s = %.17g\n", indent, name, h5_get_attr_f64(obj, name));
        }
    }
}

typedef struct { FILE *out; } DescribeCtx;

static herr_t describe_visit(hid_t root, const char *name, const H5O_info_t *info, void *data) {
    FILE *out = ((DescribeCtx *)data)->out;
    if (strcmp(name, ".") == 0) return 0;
    if (info->type == H5O_TYPE_GROUP) {
        fprintf(out, "/%s/\n", name);
        hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
        describe_attrs(g, out, "    ");
        H5Gclose(g);
    } else if (info->type == H5O_TYPE_DATASET) {
        hid_t ds = H5Dopen2(root, name, H5P_DEFAULT);
        LabType t = stored_type(root, name, ds);
        hid_t space = H5Dget_space(ds);
        hsize_t d[8] = {0};
        int rank = H5Sget_simple_extent_ndims(space);
        H5Sget_simple_extent_dims(space, d, NULL);
        uint64_t dims[8];
        for (int i = 0; i < rank; i++) dims[i] = d[i];
        char shape[128];
        format_shape(shape, sizeof shape, rank, dims, 0);
        fprintf(out, "/%s  %s %s\n", name, type_name(t), shape);
        describe_attrs(ds, out, "    ");
        H5Sclose(space);
        H5Dclose(ds);
    }
    return 0;
}

void h5_describe(hid_t file, FILE *out) {
    describe_attrs(file, out, "");
    DescribeCtx ctx = {out};
    if (H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, describe_visit, &ctx, H5O_INFO_BASIC) < 0)
        lab_die("%s: cannot walk the file (corrupt?)", h5_path_of(file));
}
