// checkpoint: models, adapters, training state and train logs in HDF5, through h5io
// (schemas codelm-lab/checkpoint/1, codelm-lab/adapter/1 and codelm-lab/trainlog/1 in FORMATS.md).
//
// A file is written with h5_create (PATH.tmp, renamed on h5_finish), so a run killed while saving
// leaves the previous checkpoint whole. Readers check the schema, every shape against the model
// config, and for an adapter the base it was trained on, and die with one line naming the file.
#pragma once
#include <hdf5.h>
#include <stdint.h>

#include "lora.h"
#include "model.h"
#include "optim.h"

#define SCHEMA_CHECKPOINT "codelm-lab/checkpoint/1"
#define SCHEMA_ADAPTER "codelm-lab/adapter/1"
#define SCHEMA_TRAINLOG "codelm-lab/trainlog/1"

// ---------------------------------------------------------------------------------------------
// the train log: one row per logged step

typedef struct {
    int64_t rows, cap;
    int64_t *step, *tokens_seen;
    double *train_loss, *val_loss, *lr, *grad_norm;  // val_loss NaN where not evaluated
    double *tokens_per_s;                            // wall-clock: log.h5 only, never a checkpoint
} TrainLog;

void trainlog_append(TrainLog *log, int64_t step, int64_t tokens_seen, double train_loss,
                     double val_loss, double lr, double grad_norm, double tokens_per_s);
void trainlog_free(TrainLog *log);
// Writes log.h5 (codelm-lab/trainlog/1): the /train_log/ table with all seven columns.
void trainlog_save(const char *path, const TrainLog *log);
// Reads back the tokens_per_s column of an earlier log.h5 into the rows of `log` with the same
// step, so a resumed run keeps the speeds measured before it was stopped. A missing or unreadable
// file leaves NaN.
void trainlog_merge_speeds(TrainLog *log, const char *path);

// ---------------------------------------------------------------------------------------------
// what a checkpoint or adapter carries for --resume

typedef struct {
    const char *mode;        // "pretrain" or "lora"
    uint64_t seed;
    int batch, seq_len, accum;
    const char *train_split;
    OptimConfig optim;       // total_steps may change on resume; the rest must match
} TrainSettings;

typedef struct {
    TrainSettings settings;
    int64_t tokens_seen;
    AdamW *opt;              // moments and step
    TrainLog *log;
} TrainState;

// ---------------------------------------------------------------------------------------------
// models

void model_config_write(hid_t obj, const ModelConfig *c);  // as attributes of obj
ModelConfig model_config_read(hid_t obj);                  // dies naming the file on a missing one
// The first field in which two configs differ (its name; its values in *x and *y), or NULL.
const char *model_config_diff(const ModelConfig *a, const ModelConfig *b, double *x, double *y);
// sha256 of the parameters, tensor by tensor in param_tensor_names order, as little-endian f32
// bytes: the identity of a base model that an adapter records.
void model_params_sha256(const Model *m, char hex[65]);

// A full checkpoint; st NULL writes the weights alone (lab-merge).
void checkpoint_save(const char *path, const Model *m, const TrainState *st);
// Opens PATH (codelm-lab/checkpoint/1) and loads its config and weights into a new model.
void checkpoint_load(const char *path, Model *m, const Backend *be);

// ---------------------------------------------------------------------------------------------
// adapters: m must have its adapter attached (m->lora)

void adapter_save(const char *path, const Model *m, const char *base_sha256, const TrainState *st);
// Reads the adapter's config (rank, alpha, dropout, targets) without loading it.
LoraConfig adapter_read_config(const char *path);
// Checks that PATH was trained on this base (config and parameter sha256; base_path names it in
// the message), attaches an adapter of its config to m and loads its A and B.
void adapter_load(const char *path, Model *m, const char *base_path);
// The model to evaluate or sample from: the checkpoint, with the adapter (when not NULL) merged
// into it, in eval mode; both files recorded as inputs.
void model_load_for_inference(Model *m, const char *model_path, const char *adapter_path);

// ---------------------------------------------------------------------------------------------
// resuming: reads the training state saved in a checkpoint or adapter PATH into st (whose opt
// must be initialised for the same number of trainable parameters, and whose settings hold this
// run's). Dies naming the file and the setting when a setting differs.
void train_state_load(const char *path, const char *schema, TrainState *st);
