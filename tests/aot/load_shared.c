/* Loads the digits model from a shared library (`gradc compile --emit shared`) with dlopen
 * and trains it by calling the step through the generated header's slot enums, one batch
 * at a time, with libgradc_runtime only for the data and the checkpoint. Saved, the result
 * must equal `gradc train --epochs EPOCHS --save` bit for bit.
 *
 * usage: load_shared MODEL.so TRAIN.csv SAVE.safetensors EPOCHS */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"
#include "gradc_runtime.h"

static void *sym(void *so, const char *name) {
  void *p = dlsym(so, name);
  if (!p) {
    fprintf(stderr, "load_shared: no symbol %s: %s\n", name, dlerror());
    exit(1);
  }
  return p;
}

int main(int argc, char **argv) {
  gradc_kernel_fn step, eval;
  gradc_work_size_fn step_ws, eval_ws;
  gradc_init_fn init;
  gradc_model m;
  gradc_dataset *data;
  gradc_batcher *batcher;
  gradc_counters c = {0, 0, 0, 0, 0};
  void *so, *state, *work, *args[GRADC_DIGITS_STEP_NUM_SLOTS];
  int64_t rows, batch, batches, n, dims[GRADC_DIGITS_NUM_DIMS], *order, work_bytes, epochs;
  float lr = (float)GRADC_DIGITS_LR, t, loss = 0, accuracy = 0;
  double eval_loss, eval_metrics[1];
  int i;

  if (argc != 5) return 2;
  epochs = atoi(argv[4]);
  so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    fprintf(stderr, "load_shared: %s\n", dlerror());
    return 1;
  }
  /* POSIX: a function pointer may be read from dlsym's result this way. */
  *(void **)&step = sym(so, "gradc_digits_step");
  *(void **)&step_ws = sym(so, "gradc_digits_step_work_size");
  *(void **)&eval = sym(so, "gradc_digits_eval");
  *(void **)&eval_ws = sym(so, "gradc_digits_eval_work_size");
  *(void **)&init = sym(so, "gradc_digits_init");
  m = gradc_digits_model_from(step, step_ws, eval, eval_ws, NULL, NULL, init);

  state = aligned_alloc(64, GRADC_DIGITS_STATE_BYTES);
  init(state, 0);
  data = gradc_dataset_read_csv(&m, argv[2]);
  if (!data) {
    fprintf(stderr, "load_shared: %s\n", gradc_last_error());
    return 1;
  }
  rows = gradc_dataset_rows(data);
  batch = 32;
  batcher = gradc_batcher_new(&m, data, batch);
  order = malloc((size_t)rows * sizeof *order);
  dims[GRADC_DIGITS_DIM_B] = batch;
  work_bytes = step_ws(dims);
  work = aligned_alloc(64, (size_t)(work_bytes + 63) / 64 * 64 + 64);

  args[GRADC_DIGITS_STEP_x] = gradc_batcher_buffer(batcher, "x");
  args[GRADC_DIGITS_STEP_y] = gradc_batcher_buffer(batcher, "y");
  for (i = 0; i < m.step.num_slots; ++i)
    if (m.step.slots[i].state_offset >= 0) args[i] = (char *)state + m.step.slots[i].state_offset;
  if (args[GRADC_DIGITS_STEP_W1] != (char *)state + GRADC_DIGITS_STATE_W1_OFFSET) return 1;
  args[GRADC_DIGITS_STEP_lr] = &lr;
  args[GRADC_DIGITS_STEP_t] = &t;
  args[GRADC_DIGITS_STEP_loss] = &loss;
  args[GRADC_DIGITS_STEP_accuracy] = &accuracy;

  batches = gradc_batch_count(rows, batch, 0);
  for (c.epoch = 0; c.epoch < epochs;) {
    gradc_epoch_order(rows, 0, c.epoch, 1, order);
    for (i = 0; i < batches; ++i) {
      n = gradc_batcher_gather(batcher, order, i);
      dims[GRADC_DIGITS_DIM_B] = n;
      if (step_ws(dims) > work_bytes) return 1;
      t = (float)(c.step + 1);
      step(args, dims, work);
      ++c.step;
    }
    ++c.epoch;
    printf("epoch %d loss %.4f accuracy %.4f\n", (int)c.epoch, loss, accuracy);
  }
  if (gradc_checkpoint_save(&m, state, &c, argv[3]) != 0 ||
      gradc_evaluate(&m, state, data, 1024, &eval_loss, eval_metrics) != 0) {
    fprintf(stderr, "load_shared: %s\n", gradc_last_error());
    return 1;
  }
  printf("train loss %.4f accuracy %.4f\n", eval_loss, eval_metrics[0]);
  gradc_batcher_free(batcher);
  gradc_dataset_free(data);
  free(order);
  free(work);
  free(state);
  dlclose(so);
  return 0;
}
