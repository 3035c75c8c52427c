/* Trains the digits model that `gradc compile` put in digits.o / digits.h, from C, with
 * libgradc_runtime: the same loop, data order and initial weights as
 *   gradc train examples/digits.grad --data TRAIN --epochs EPOCHS --seed 0
 * so the weights it saves equal those of `gradc train --save`, bit for bit.
 *
 * usage: embed_digits TRAIN.csv TEST.csv [SAVE.safetensors] [EPOCHS (default 10)] */
#include <stdio.h>
#include <stdlib.h>

#include "digits.h"
#include "gradc_runtime.h"

static int fail(const char *what) {
  fprintf(stderr, "embed_digits: %s: %s\n", what, gradc_last_error());
  return 1;
}

int main(int argc, char **argv) {
  gradc_model m = gradc_digits_model();
  gradc_dataset *train, *test;
  gradc_train_options o = gradc_train_defaults(&m);
  gradc_counters counters = {0, 0, 0, 0, 0};
  double loss, metrics[8];
  void *state;
  int i, j = 0;

  if (argc < 3) {
    fprintf(stderr, "usage: %s TRAIN.csv TEST.csv [SAVE.safetensors] [EPOCHS]\n", argv[0]);
    return 2;
  }
  o.epochs = argc > 4 ? atoi(argv[4]) : 10;
  o.save_path = argc > 3 && argv[3][0] ? argv[3] : NULL;

  train = gradc_dataset_read_csv(&m, argv[1]);
  if (!train) return fail("reading the training data");
  test = gradc_dataset_read_csv(&m, argv[2]);
  if (!test) return fail("reading the test data");

  state = aligned_alloc(64, GRADC_DIGITS_STATE_BYTES);
  if (!state) return 1;
  gradc_digits_init(state, o.seed);
  if (gradc_train(&m, state, &counters, train, NULL, &o) != 0) return fail("training");
  if (gradc_evaluate(&m, state, test, 1024, &loss, metrics) != 0) return fail("evaluating");

  printf("test loss %.4f", loss);
  for (i = 0; i < m.eval.num_slots; ++i)
    if (m.eval.slots[i].kind == GRADC_SLOT_METRIC)
      printf("  %s %.4f", m.eval.slots[i].name, metrics[j++]);
  printf("\n");

  free(state);
  gradc_dataset_free(train);
  gradc_dataset_free(test);
  return 0;
}
