/* The C API of libgradc_runtime: what a C or C++ program needs around a model that
 * `gradc compile` turned into an object file and a header (docs/aot.md).
 *
 *   - reading a model's inputs from a CSV file (docs/language.md, "Data"), batching and
 *     shuffling them;
 *   - reading and writing safetensors checkpoints (the files `gradc train --save` writes);
 *   - the training loop of `gradc train`, calling a compiled step given as a plain function
 *     pointer with its work-size function and slot description;
 *   - evaluation (loss and metrics over a data set) and the initialisers.
 *
 * It is a thin layer over the C++ runtime that `gradc train` itself runs (Trainer.h, Csv.h,
 * Batches.h, Safetensors.h, Init.h), so a program that trains through it gets the very
 * weights `gradc train` gets with the same seed and settings. No LLVM is involved.
 *
 * Errors: a function that can fail returns 0 on success and -1 on failure (or NULL for a
 * constructor); gradc_last_error() then gives the message (per thread). A NULL model, state,
 * data set, batcher, options or path, an empty path, a negative size, and a data set read for another model
 * (other inputs or widths, labels outside the model's classes, or float64 data for a float32
 * model) are such failures, not crashes. Freeing NULL does nothing.
 *
 * The model description types (gradc_slot, gradc_kernel, gradc_model) are also written into
 * every generated header, under the same guard, so that a header works on its own. */
#ifndef GRADC_RUNTIME_H
#define GRADC_RUNTIME_H

/* --- begin model types (identical in every generated header) --- */
#ifndef GRADC_MODEL_TYPES
#define GRADC_MODEL_TYPES
#include <stddef.h>
#include <stdint.h>

/* A compiled function: args holds one pointer per slot, dims the symbolic dims (in the
 * header's DIM_ order; the batch size is one of them), work points to work_size(dims)
 * bytes of scratch, 64-byte aligned. */
typedef void (*gradc_kernel_fn)(void *const *args, const int64_t *dims, void *work);
typedef int64_t (*gradc_work_size_fn)(const int64_t *dims);
/* Fills every param of a state buffer from its initialiser and zeroes the optimiser states. */
typedef void (*gradc_init_fn)(void *state, uint64_t seed);

enum gradc_slot_kind {
  GRADC_SLOT_INPUT, GRADC_SLOT_PARAM, GRADC_SLOT_STATE, GRADC_SLOT_HYPER,
  GRADC_SLOT_LOSS, GRADC_SLOT_METRIC, GRADC_SLOT_OUTPUT, GRADC_SLOT_GRAD
};

#define GRADC_MAX_RANK 8

/* One slot of a function, or one tensor of the state buffer. */
typedef struct gradc_slot {
  const char *name;
  int kind;                      /* enum gradc_slot_kind */
  int is_int;                    /* int32 elements (labels) instead of float/double */
  int rank;
  int64_t shape[GRADC_MAX_RANK]; /* a dim d < 0 is symbolic dim -1 - d, dims[-1 - d] */
  int64_t classes;               /* int inputs: labels lie in [0, classes); 0 when unknown */
  int64_t state_offset;          /* params and optimiser states: byte offset in the state
                                    buffer; -1 for other slots */
} gradc_slot;

typedef struct gradc_kernel {
  const char *name;              /* "step", "eval", "predict" */
  gradc_kernel_fn fn;            /* NULL when the model has no such function */
  gradc_work_size_fn work_size;
  int num_slots;
  const gradc_slot *slots;       /* in args order */
} gradc_kernel;

typedef struct gradc_model {
  const char *name;
  const char *hash;              /* of the model file, as `gradc train` stores it */
  int f64;                       /* float buffers hold double */
  int num_dims;
  const char *const *dim_names;  /* the symbolic dims, in dims order */
  double lr;                     /* the model's learning rate */
  int64_t state_bytes;           /* one contiguous buffer, 64-byte aligned */
  int num_state;
  const gradc_slot *state;       /* params, then optimiser states, by offset */
  gradc_init_fn init;
  gradc_kernel step, eval, predict;
  const char *optimizer;         /* the optimiser it trains with ("adam"), as checkpoints record
                                    it (gradc.optimizer_kind); NULL when not known */
} gradc_model;
#endif
/* --- end model types --- */

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the last failure on this thread: "" before any, and "" again once a function
 * that can fail has succeeded (each such call clears it first). */
const char *gradc_last_error(void);

/* --- data ------------------------------------------------------------------------------ */

typedef struct gradc_dataset gradc_dataset;

/* Reads a CSV file holding the inputs of the model's step (docs/language.md: one row per
 * sample, the columns of each input in declaration order). A float64 model (m->f64) reads the
 * values as doubles, each to the nearest double, as `gradc train --dtype f64` does. NULL on
 * error. A data set is for the model it was read for: the functions below that take a model
 * and a data set refuse one read for a model of another float type or other inputs. */
gradc_dataset *gradc_dataset_read_csv(const gradc_model *m, const char *path);
/* The rows of the data set; -1 for a NULL one. */
int64_t gradc_dataset_rows(const gradc_dataset *d);
void gradc_dataset_free(gradc_dataset *d);

/* The order of the rows in epoch `epoch`: a shuffle drawn from (seed, epoch) only, or file
 * order when !shuffle. `order` has room for `rows` values (may be NULL when rows is 0).
 * Returns 0, -1 for rows below 0, a NULL order or no memory for the order. */
int gradc_epoch_order(int64_t rows, uint64_t seed, int64_t epoch, int shuffle, int64_t *order);
/* Batches per epoch (the last, smaller batch counts unless drop_last); -1 for rows below 0
 * or a batch_size below 1. */
int64_t gradc_batch_count(int64_t rows, int64_t batch_size, int drop_last);

/* Gathers batches of a data set into one buffer per input (batch_size rows each; float or
 * double as the model, int32 for labels), allocated once. NULL when the data set does not fit
 * the model's step or the buffers cannot be allocated. */
typedef struct gradc_batcher gradc_batcher;
gradc_batcher *gradc_batcher_new(const gradc_model *m, const gradc_dataset *d, int64_t batch_size);
/* Fills the buffers with the rows order[batch * batch_size ...]; returns the row count (0 for
 * a batch before the first or past the last), -1 when an entry of that window is not a row
 * (0..rows-1) or b or order is NULL. */
int64_t gradc_batcher_gather(gradc_batcher *b, const int64_t *order, int64_t batch);
/* The buffer of input `name`; NULL (gradc_last_error says why) when there is none, or b or
 * name is NULL. */
void *gradc_batcher_buffer(const gradc_batcher *b, const char *name);
void gradc_batcher_free(gradc_batcher *b);

/* --- state and checkpoints ------------------------------------------------------------ */

/* The counters a checkpoint holds beside the tensors. */
typedef struct gradc_counters {
  int64_t step;   /* optimiser steps taken */
  int64_t epoch;  /* epochs completed */
  int64_t batch;  /* batches done in the unfinished epoch */
  uint64_t seed;  /* of the data order (gradc_train keeps it when step, epoch or batch is not 0) */
  /* The step at which the optimiser's state began: 0, or the step of a checkpoint that was
   * resumed with another optimiser (its state starts at zero, and its count t, which Adam's
   * bias corrections use, at 1 again). The optimiser has taken step - optimizer_start steps. */
  int64_t optimizer_start;
} gradc_counters;

/* Fills one param (the initialiser of ir/Model.h's InitKind order, its arguments, its
 * random stream `index` = the param's declaration index). The generated init functions
 * call these. Returns 0, or -1 (and writes nothing) for an unknown kind, a count of
 * arguments the kind does not take, a rank outside 0..GRADC_MAX_RANK, a negative dim or
 * index, or a NULL pointer where something is to be read or written. */
int gradc_init_param_f32(float *out, int kind, const double *args, int num_args,
                         const int64_t *shape, int rank, uint64_t seed, int index);
int gradc_init_param_f64(double *out, int kind, const double *args, int num_args,
                         const int64_t *shape, int rank, uint64_t seed, int index);

/* Writes the state buffer as a checkpoint (atomically), as `gradc train --save` does. */
int gradc_checkpoint_save(const gradc_model *m, const void *state, const gradc_counters *c,
                          const char *path);
/* Loads params from a weights file or checkpoint into the state buffer; from a checkpoint
 * also the optimiser states and the counters (`c` may be NULL; it need not be initialised:
 * a weights file, which holds no counters, leaves it as it was). A checkpoint written for
 * another version of the model (another model hash) whose tensors fit is loaded with a warning
 * on stderr; with `c` its optimiser state is loaded only when the checkpoint records the
 * model's `optimizer` (the edited model may name another optimiser whose state has the same
 * names), else it starts afresh at the checkpoint's step (`optimizer_start`), as `gradc train
 * --init` resumes it. */
int gradc_checkpoint_load(const gradc_model *m, void *state, gradc_counters *c, const char *path);

/* --- training and evaluation ----------------------------------------------------------- */

typedef struct gradc_train_options {
  int64_t epochs;       /* epochs to run, counted from the counters' epoch */
  int64_t max_steps;    /* -1: no limit */
  int64_t batch_size;
  double lr;
  uint64_t seed;        /* of the data order (counters of a run under way keep theirs) */
  int shuffle;
  int drop_last;
  const char *save_path;     /* checkpoint after each epoch and at the end; NULL: none */
  const char *metrics_path;  /* per-epoch CSV; NULL: none */
  int verbose;               /* print one line per epoch on stdout, as `gradc train` */
} gradc_train_options;

/* The defaults of `gradc train`: 1 epoch, batch size 32, the model's lr, seed 0, shuffled.
 * For a NULL model the lr is NaN, which gradc_train refuses. */
gradc_train_options gradc_train_defaults(const gradc_model *m);

/* Trains the state buffer with the model's step: one step per batch of `train`, `val`
 * (may be NULL; else the model needs its eval function) evaluated after each epoch with the
 * eval function. `c` (may be NULL: start
 * from zero) is updated. Counters of a run under way (step, epoch or batch not 0, e.g. from
 * gradc_checkpoint_load) keep their seed, the data order of that run, whatever o->seed is:
 * as `gradc train --init` does. Returns 0, -1 on error (a non-finite loss, an unwritable file, a
 * batch_size below 1, epochs and max_steps both below 0, an lr that is not a finite number of
 * at least 0 (or beyond float32 for a float32 model), counters with a negative epoch or batch,
 * data sets that do not fit the step or eval function; `train` may be NULL only for a model
 * without inputs, and is NULL for one, as `val` is: such a model takes no data). */
int gradc_train(const gradc_model *m, void *state, gradc_counters *c, const gradc_dataset *train,
                const gradc_dataset *val, const gradc_train_options *o);

/* Loss and metrics over a data set with the eval function, in batches, as means weighted
 * by rows; for a model without inputs, `d` is NULL and the function is called once.
 * `metrics` has room for the eval function's metric slots, in slot order. A model's function
 * (step, eval) is refused without its work-size function. */
int gradc_evaluate(const gradc_model *m, void *state, const gradc_dataset *d, int64_t batch_size,
                   double *loss, double *metrics);

#ifdef __cplusplus
}
#endif

#endif
