// h5io: the only code that talks to HDF5.
// - Every file has root attributes (variable-length UTF-8 strings): schema, tool, tool_version,
//   git_commit, command_line, config_sha256, inputs, host, cpu, blas_core, gpu, threads, seed,
//   created_utc (from SOURCE_DATE_EPOCH when set).
// - Object time tracking is off and writes are ordered, so the same content gives the same bytes.
// - Files are written as PATH.tmp, flushed, fsync'ed and renamed to PATH by h5_finish(); lab_die()
//   removes the .tmp, so an error never leaves a half-written PATH.
// - Readers name the schema they accept; a wrong or missing schema, a missing dataset or a shape
//   that disagrees gives one line naming the file, what was expected and what was found.
// - Large datasets are chunked with shuffle + deflate; `units` attributes where there are units.
// - Metric tables are groups of equal-length 1-D columns (h5py/pandas friendly), exported to TSV
//   by lab-export.
#pragma once
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { LAB_F32, LAB_F64, LAB_U8, LAB_U16, LAB_U32, LAB_U64, LAB_I32, LAB_I64, LAB_STR } LabType;
size_t lab_type_size(LabType t);   // bytes per element (LAB_STR: sizeof(char*))

// ---------------------------------------------------------------------------------------------
// files
typedef struct { hid_t file; char *path; char *tmp; } H5Writer;
// Creates PATH.tmp with all provenance attributes; schema like "codelm-lab/checkpoint/1".
H5Writer h5_create(const char *path, const char *schema);
void h5_finish(H5Writer *w);    // close, fsync, rename PATH.tmp -> PATH
// Opens for reading and checks the root `schema` attribute equals `schema` (NULL: accept any
// codelm-lab file). Dies on: missing file, not HDF5 / truncated / corrupt, wrong schema.
hid_t h5_open(const char *path, const char *schema);
void h5_close(hid_t file);
const char *h5_path_of(hid_t loc);  // file name, for error messages (static buffer)

// ---------------------------------------------------------------------------------------------
// groups
hid_t h5_group_create(hid_t loc, const char *name);  // caller H5Gclose()s
hid_t h5_group_open(hid_t loc, const char *name);    // dies naming file and group when absent
int h5_exists(hid_t loc, const char *path);          // 1 if a link of that path exists

// ---------------------------------------------------------------------------------------------
// datasets. dims has `rank` entries. units may be NULL.
void h5_write(hid_t loc, const char *name, LabType t, const void *data, int rank,
              const uint64_t *dims, const char *units);
// Reads a whole dataset, converting to type t. `dims` in: expected shape, 0 in an entry means any;
// out: the actual shape. Dies with "FILE: dataset NAME: expected shape (a, b), found (c, d)" or a
// rank/type message. The caller free()s the result.
void *h5_read(hid_t loc, const char *name, LabType t, int rank, uint64_t *dims);
// Reads elements [start, start+count) of a 1-D dataset into buf.
void h5_read_slice(hid_t loc, const char *name, LabType t, uint64_t start, uint64_t count, void *buf);
uint64_t h5_length(hid_t loc, const char *name);  // length of a 1-D dataset (dies if absent)

// variable-length UTF-8 string arrays (1-D)
void h5_write_strings(hid_t loc, const char *name, const char *const *strs, uint64_t n);
char **h5_read_strings(hid_t loc, const char *name, uint64_t *n);  // free with h5_free_strings
void h5_free_strings(char **strs, uint64_t n);

// ---------------------------------------------------------------------------------------------
// attributes on a file, group or dataset (obj may be the file id or any object id)
void h5_attr_str(hid_t obj, const char *name, const char *value);
void h5_attr_i64(hid_t obj, const char *name, int64_t value);
void h5_attr_f64(hid_t obj, const char *name, double value);
char *h5_get_attr_str(hid_t obj, const char *name);  // dies when absent; caller free()s
int64_t h5_get_attr_i64(hid_t obj, const char *name);
double h5_get_attr_f64(hid_t obj, const char *name);
int h5_has_attr(hid_t obj, const char *name);

// ---------------------------------------------------------------------------------------------
// tables: a group NAME holding equal-length 1-D column datasets, with attribute `columns` listing
// them in order (so export keeps the order) and `rows`.
typedef struct { const char *name; LabType type; const void *data; const char *units; } H5Column;
void h5_table_write(hid_t loc, const char *name, uint64_t rows, int ncols, const H5Column *cols);
// Reads a table back: columns in their stored order, each in its stored type (free with
// h5_table_free). Dies when the group is not a table or its columns differ in length.
typedef struct { char *name; LabType type; void *data; char *units; } H5TableColumn;
H5TableColumn *h5_table_read(hid_t loc, const char *name, uint64_t *rows, int *ncols);
void h5_table_free(H5TableColumn *cols, int ncols, uint64_t rows);
// Prints root attributes and every group/dataset with its type, shape and attributes.
void h5_describe(hid_t file, FILE *out);
