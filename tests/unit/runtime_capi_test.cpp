// The C API of libgradc_runtime (runtime/gradc_runtime.h) with a hand-written kernel: the
// training loop calls a plain function pointer with the slots the description gives, the
// state buffer goes in and out at its offsets, checkpoints round-trip (float64 ones exactly, with
// F32 tensors under the names), errors become -1 /
// NULL and a message.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/Init.h"
#include "runtime/Safetensors.h"
#include "runtime/gradc_runtime.h"

namespace {

std::string writeTemp(const std::string &name, const std::string &content) {
  auto dir = std::filesystem::temp_directory_path() / "gradc_runtime_capi_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

float lastT = 0;  // the optimiser count t of the last toyStep call

// step: loss = mean((x - w)^2) over the batch; w -= lr * d loss / d w; m counts the calls
// (an optimiser state).
extern "C" void toyStep(void *const *args, const int64_t *dims, void *) {
  const float *x = static_cast<const float *>(args[0]);
  float *w = static_cast<float *>(args[1]);
  float *m = static_cast<float *>(args[2]);
  float lr = *static_cast<const float *>(args[3]);
  lastT = *static_cast<const float *>(args[4]);
  float *loss = static_cast<float *>(args[5]);
  float l = 0, g = 0;
  for (int64_t i = 0; i < dims[0]; ++i) {
    l += (x[i] - w[0]) * (x[i] - w[0]);
    g += 2 * (w[0] - x[i]);
  }
  *loss = l / static_cast<float>(dims[0]);
  w[0] -= lr * g / static_cast<float>(dims[0]);
  m[0] += 1;
}

extern "C" int64_t toyWork(const int64_t *) { return 0; }

const char *const kDims[] = {"B"};
// x: input [B]; w: param [1] at offset 0; w.m: state [1] at offset 64; lr, t; loss.
const gradc_slot kSlots[] = {
    {"x", GRADC_SLOT_INPUT, 0, 1, {-1}, 0, -1},   {"w", GRADC_SLOT_PARAM, 0, 1, {1}, 0, 0},
    {"w.m", GRADC_SLOT_STATE, 0, 1, {1}, 0, 64},  {"lr", GRADC_SLOT_HYPER, 0, 0, {0}, 0, -1},
    {"t", GRADC_SLOT_HYPER, 0, 0, {0}, 0, -1},    {"loss", GRADC_SLOT_LOSS, 0, 0, {0}, 0, -1},
};
const gradc_slot kState[] = {kSlots[1], kSlots[2]};

gradc_model toyModel() {
  gradc_model m{};
  m.name = "toy";
  m.hash = "0123456789abcdef";
  m.num_dims = 1;
  m.dim_names = kDims;
  m.lr = 0.25;
  m.state_bytes = 128;
  m.num_state = 2;
  m.state = kState;
  m.step = {"step", toyStep, toyWork, 6, kSlots};
  m.eval = {"eval", nullptr, nullptr, 0, nullptr};
  m.predict = {"predict", nullptr, nullptr, 0, nullptr};
  return m;
}

}  // namespace

TEST_CASE("C API: gradc_train runs the step's function pointer over the batches in order") {
  gradc_model m = toyModel();
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("x.csv", "x\n1\n2\n3\n4\n5\n").c_str());
  REQUIRE(d != nullptr);
  CHECK(gradc_dataset_rows(d) == 5);
  CHECK(gradc_dataset_rows(nullptr) == -1);
  CHECK(std::string(gradc_last_error()).find("error: no data set: `d` is NULL") != std::string::npos);
  {
    // A validation set needs the eval function, which this model lacks: an error, not skipped.
    alignas(64) float s[32] = {};
    gradc_train_options v = gradc_train_defaults(&m);
    v.verbose = 0;
    CHECK(gradc_train(&m, s, nullptr, d, d, &v) == -1);
    CHECK(std::string(gradc_last_error()) == "toy: error: the model has no eval function");
  }
  alignas(64) float state[32] = {};
  state[0] = 10;
  gradc_train_options o = gradc_train_defaults(&m);
  CHECK(o.lr == 0.25);
  CHECK(o.batch_size == 32);
  o.batch_size = 2;
  o.shuffle = 0;
  o.epochs = 2;
  o.verbose = 0;
  gradc_counters c = {0, 0, 0, 0, 0};
  REQUIRE(gradc_train(&m, state, &c, d, nullptr, &o) == 0);
  // The same loop by hand: batches {1,2} {3,4} {5} twice.
  float w = 10;
  for (int e = 0; e < 2; ++e)
    for (std::vector<float> b : {std::vector<float>{1, 2}, {3, 4}, {5}}) {
      float g = 0;
      for (float x : b) g += 2 * (w - x);
      w -= 0.25f * g / static_cast<float>(b.size());
    }
  CHECK(state[0] == w);
  CHECK(state[16] == 6);  // w.m at byte offset 64: six calls
  CHECK(c.step == 6);
  CHECK(c.epoch == 2);

  std::string ckpt = writeTemp("toy.safetensors", "");
  c.seed = 9;
  REQUIRE(gradc_checkpoint_save(&m, state, &c, ckpt.c_str()) == 0);
  alignas(64) float back[32] = {};
  gradc_counters c2 = {0, 0, 0, 0, 0};
  REQUIRE(gradc_checkpoint_load(&m, back, &c2, ckpt.c_str()) == 0);
  CHECK(back[0] == w);
  CHECK(back[16] == 6);
  CHECK(c2.step == 6);
  CHECK(c2.epoch == 2);
  CHECK(c2.seed == 9);
  // Another version of the model (another hash): resumed (with counters) as `gradc train --init`
  // resumes it, its params and counters taken; the optimiser's state starts afresh from this step,
  // since neither this description nor its checkpoint names the optimiser (the edited model may
  // have another one). Without counters everything loads, as for `gradc eval`.
  gradc_model edited = m;
  edited.hash = "fedcba9876543210";
  gradc_counters c3 = {0, 0, 0, 0, 0};
  back[0] = back[16] = 0;
  CHECK(gradc_checkpoint_load(&edited, back, &c3, ckpt.c_str()) == 0);
  CHECK(back[0] == w);
  CHECK(back[16] == 0);
  CHECK(c3.step == 6);
  CHECK(c3.optimizer_start == 6);
  back[0] = back[16] = 0;
  CHECK(gradc_checkpoint_load(&edited, back, nullptr, ckpt.c_str()) == 0);
  CHECK(back[0] == w);
  CHECK(back[16] == 6);
  // A model that names its optimiser writes it into its checkpoints (gradc.optimizer_kind, as
  // gradc train does), and an edited version with the same optimiser resumes its state too.
  gradc_model named = m, namedEdited = edited;
  named.optimizer = namedEdited.optimizer = "adam";
  REQUIRE(gradc_checkpoint_save(&named, state, &c, ckpt.c_str()) == 0);
  gradc_counters c4 = {0, 0, 0, 0, 0};
  back[0] = back[16] = 0;
  CHECK(gradc_checkpoint_load(&namedEdited, back, &c4, ckpt.c_str()) == 0);
  CHECK(back[16] == 6);
  CHECK(c4.optimizer_start == 0);
  namedEdited.optimizer = "adamw";  // another optimiser: its state starts afresh
  back[16] = 0;
  CHECK(gradc_checkpoint_load(&namedEdited, back, &c4, ckpt.c_str()) == 0);
  CHECK(back[16] == 0);
  CHECK(c4.optimizer_start == 6);
  gradc_dataset_free(d);
}

TEST_CASE("C API: batches and the epoch order") {
  gradc_model m = toyModel();
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("y.csv", "1\n2\n3\n4\n5\n").c_str());
  REQUIRE(d != nullptr);
  std::vector<int64_t> order(5);
  gradc_epoch_order(5, 0, 0, 0, order.data());
  CHECK(order == std::vector<int64_t>{0, 1, 2, 3, 4});
  gradc_epoch_order(5, 3, 1, 1, order.data());
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(gradc_batch_count(5, 2, 0) == 3);
  CHECK(gradc_batch_count(5, 2, 1) == 2);
  gradc_batcher *b = gradc_batcher_new(&m, d, 2);
  REQUIRE(b != nullptr);
  CHECK(gradc_batcher_gather(b, order.data(), 2) == 1);
  const float *x = static_cast<const float *>(gradc_batcher_buffer(b, "x"));
  CHECK(x[0] == static_cast<float>(order[4] + 1));
  CHECK(gradc_batcher_buffer(b, "nope") == nullptr);
  CHECK(std::string(gradc_last_error()) == "gradc: error: the batcher has no input 'nope'");
  CHECK(gradc_batcher_gather(b, order.data(), 0) == 2);
  CHECK(x[0] == static_cast<float>(order[0] + 1));
  CHECK(x[1] == static_cast<float>(order[1] + 1));
  CHECK(gradc_batcher_gather(b, order.data(), 3) == 0);
  gradc_batcher_free(b);
  gradc_dataset_free(d);
}

TEST_CASE("C API: errors are -1 or NULL with a one-line message") {
  gradc_model m = toyModel();
  std::string bad = writeTemp("bad.csv", "1\n2\nabc\n");
  CHECK(gradc_dataset_read_csv(&m, bad.c_str()) == nullptr);
  CHECK(std::string(gradc_last_error()).rfind(bad + ":3:1: error: ", 0) == 0);
  alignas(64) float state[32] = {};
  CHECK(gradc_checkpoint_load(&m, state, nullptr, "/nonexistent/w.safetensors") == -1);
  CHECK(std::string(gradc_last_error()).rfind("/nonexistent/w.safetensors: error: ", 0) == 0);
  gradc_model noEval = toyModel();
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("z.csv", "1\n").c_str());
  REQUIRE(d != nullptr);
  CHECK(std::string(gradc_last_error()).empty());
  double loss = 0;
  CHECK(gradc_evaluate(&noEval, state, d, 8, &loss, nullptr) == -1);
  CHECK(std::string(gradc_last_error()) == "toy: error: the model has no eval function");
  gradc_train_options o = gradc_train_defaults(&m);
  o.verbose = 0;
  o.save_path = "/nonexistent/dir/w.safetensors";
  CHECK(gradc_train(&m, state, nullptr, d, nullptr, &o) == -1);
  CHECK(std::string(gradc_last_error()).rfind("/nonexistent/dir/w.safetensors: error: ", 0) == 0);
  gradc_dataset_free(d);
}

TEST_CASE("C API: a batch size below 1, no limit, a NULL data set or path are errors, not crashes") {
  gradc_model m = toyModel();
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("w.csv", "1\n2\n3\n").c_str());
  REQUIRE(d != nullptr);
  const std::string batch = "gradc: error: the batch size must be at least 1";
  // (it divided by zero: SIGFPE)
  CHECK(gradc_batch_count(5, 0, 0) == -1);
  CHECK(std::string(gradc_last_error()) == batch);
  CHECK(gradc_batch_count(5, 2, 0) == 3);
  CHECK(std::string(gradc_last_error()).empty());
  CHECK(gradc_batcher_new(&m, d, 0) == nullptr);
  CHECK(std::string(gradc_last_error()) == batch);
  alignas(64) float state[32] = {};
  gradc_train_options o = gradc_train_defaults(&m);
  o.verbose = 0;
  // (trained in batches of 1 row)
  for (int64_t size : {0, -3}) {
    o.batch_size = size;
    CHECK(gradc_train(&m, state, nullptr, d, nullptr, &o) == -1);
    CHECK(std::string(gradc_last_error()) == batch);
  }
  // (an internal assertion's text)
  o = gradc_train_defaults(&m);
  o.verbose = 0;
  o.epochs = -1;
  CHECK(gradc_train(&m, state, nullptr, d, nullptr, &o) == -1);
  CHECK(std::string(gradc_last_error()) == "gradc: error: training needs a limit: epochs or max_steps must be at least 0");
  o.max_steps = 2;
  CHECK(gradc_train(&m, state, nullptr, d, nullptr, &o) == 0);
  gradc_model withEval = toyModel();
  withEval.eval = withEval.step;
  withEval.eval.name = "eval";
  double loss = 0;
  CHECK(gradc_evaluate(&withEval, state, d, 0, &loss, nullptr) == -1);
  CHECK(std::string(gradc_last_error()) == batch);
  // (a NULL dereference: SIGSEGV)
  CHECK(gradc_evaluate(&withEval, state, nullptr, 8, &loss, nullptr) == -1);
  CHECK(std::string(gradc_last_error()) == "toy: error: no data to evaluate (the data set is NULL)");
  // (the text of std::logic_error: "basic_string: construction from null is not valid")
  const std::string noPath = "gradc: error: no file name: the path is NULL";
  CHECK(gradc_dataset_read_csv(&m, nullptr) == nullptr);
  CHECK(std::string(gradc_last_error()) == noPath);
  CHECK(gradc_checkpoint_save(&m, state, nullptr, nullptr) == -1);
  CHECK(std::string(gradc_last_error()) == noPath);
  CHECK(gradc_checkpoint_load(&m, state, nullptr, nullptr) == -1);
  CHECK(std::string(gradc_last_error()) == noPath);
  gradc_dataset_free(d);
}

TEST_CASE("C API: a float64 checkpoint holds F32 tensors and exact F64 copies, and loads exactly") {
  gradc_model m = toyModel();
  m.f64 = 1;
  alignas(64) double state[16] = {};
  state[0] = 0.1;
  state[8] = 1.0 / 3;  // w.m at byte offset 64
  gradc_counters c = {5, 1, 0, 2, 0};
  std::string ckpt = writeTemp("toy64.safetensors", "");
  REQUIRE(gradc_checkpoint_save(&m, state, &c, ckpt.c_str()) == 0);

  gradc::rt::TensorFile f = gradc::rt::readSafetensors(ckpt);
  for (const char *name : {"w", "w.m"}) {
    const gradc::rt::NamedTensor *t = f.find(name);
    REQUIRE(t != nullptr);
    CHECK_FALSE(t->f64);
  }
  CHECK(f.find("w")->data == std::vector<float>{0.1f});
  CHECK(f.find("w.m")->data == std::vector<float>{1.0f / 3});
  CHECK(f.find("w.f64")->f64);
  CHECK(f.find("w.f64")->data64 == std::vector<double>{0.1});
  CHECK(f.find("w.m.f64")->data64 == std::vector<double>{1.0 / 3});

  alignas(64) double back[16] = {};
  gradc_counters c2 = {0, 0, 0, 0, 0};
  REQUIRE(gradc_checkpoint_load(&m, back, &c2, ckpt.c_str()) == 0);
  CHECK(back[0] == 0.1);
  CHECK(back[8] == 1.0 / 3);
  CHECK(c2.step == 5);

  gradc_model m32 = toyModel();
  alignas(64) float narrow[32] = {};
  REQUIRE(gradc_checkpoint_load(&m32, narrow, &c2, ckpt.c_str()) == 0);
  CHECK(narrow[0] == 0.1f);
  CHECK(narrow[16] == 1.0f / 3);
}

TEST_CASE("C API: the counters carry the step at which the optimiser's state began") {
  gradc_model m = toyModel();
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("one.csv", "x\n1\n").c_str());
  REQUIRE(d != nullptr);
  alignas(64) float state[32] = {};
  gradc_train_options o = gradc_train_defaults(&m);
  o.verbose = 0;
  // Step 6 of the run, the 3rd of its optimiser (resumed at step 4 with another one).
  gradc_counters c = {6, 2, 0, 0, 4};
  REQUIRE(gradc_train(&m, state, &c, d, nullptr, &o) == 0);
  CHECK(lastT == 3);
  CHECK(c.step == 7);
  CHECK(c.optimizer_start == 4);

  std::string ckpt = writeTemp("since.safetensors", "");
  REQUIRE(gradc_checkpoint_save(&m, state, &c, ckpt.c_str()) == 0);
  CHECK(gradc::rt::readSafetensors(ckpt).metadata.at("gradc.optimizer_step") == "3");
  gradc_counters c2 = {0, 0, 0, 0, 0};
  REQUIRE(gradc_checkpoint_load(&m, state, &c2, ckpt.c_str()) == 0);
  CHECK(c2.step == 7);
  CHECK(c2.optimizer_start == 4);

  // A checkpoint without this optimiser's state (another optimiser's): it starts afresh.
  gradc::rt::TensorFile f = gradc::rt::readSafetensors(ckpt);
  std::erase_if(f.tensors, [](const gradc::rt::NamedTensor &t) { return t.name == "w.m"; });
  f.metadata.erase("gradc.optimizer_step");
  std::string other = writeTemp("other.safetensors", "");
  gradc::rt::writeSafetensors(other, f);
  gradc_counters c3 = {0, 0, 0, 0, 0};
  REQUIRE(gradc_checkpoint_load(&m, state, &c3, other.c_str()) == 0);
  CHECK(c3.step == 7);
  CHECK(c3.optimizer_start == 7);
  REQUIRE(gradc_train(&m, state, &c3, d, nullptr, &o) == 0);
  CHECK(lastT == 1);

  // A checkpoint of `gradc train --optimizer X` naming another optimiser than the model's
  // holds no state of the compiled model's, even under its names (Adam's w.m is no AdamW's).
  gradc::rt::TensorFile named = gradc::rt::readSafetensors(ckpt);
  named.metadata["gradc.optimizer"] = "adamw";
  std::string switched = writeTemp("switched.safetensors", "");
  gradc::rt::writeSafetensors(switched, named);
  state[16] = 5;
  gradc_counters c4 = {0, 0, 0, 0, 0};
  REQUIRE(gradc_checkpoint_load(&m, state, &c4, switched.c_str()) == 0);
  CHECK(state[16] == 0);  // w.m
  CHECK(c4.step == 7);
  CHECK(c4.optimizer_start == 7);
  // The model's own optimiser's checkpoint names none: its state is loaded.
  gradc_counters c5 = {0, 0, 0, 0, 0};
  REQUIRE(gradc_checkpoint_load(&m, state, &c5, ckpt.c_str()) == 0);
  CHECK(state[16] != 0);
  CHECK(c5.optimizer_start == 4);
  REQUIRE(gradc_checkpoint_save(&m, state, &c5, switched.c_str()) == 0);
  CHECK(gradc::rt::readSafetensors(switched).metadata.count("gradc.optimizer") == 0);

  gradc_counters bad = {2, 0, 0, 0, 3};
  CHECK(gradc_train(&m, state, &bad, d, nullptr, &o) == -1);
  CHECK(std::string(gradc_last_error()) == "gradc: error: counters: optimizer_start 3 is not between 0 and step 2");
  gradc_dataset_free(d);
}

namespace {

std::string lastError() { return gradc_last_error(); }

// x: input [B, 2] (two values per row) and y: labels int[B] in [0, 3): the toy's slots with
// other inputs, for data sets read for another model.
const gradc_slot kWideSlots[] = {
    {"x", GRADC_SLOT_INPUT, 0, 2, {-1, 2}, 0, -1}, {"y", GRADC_SLOT_INPUT, 1, 1, {-1}, 3, -1},
    {"w", GRADC_SLOT_PARAM, 0, 1, {1}, 0, 0},      {"w.m", GRADC_SLOT_STATE, 0, 1, {1}, 0, 64},
    {"lr", GRADC_SLOT_HYPER, 0, 0, {0}, 0, -1},    {"t", GRADC_SLOT_HYPER, 0, 0, {0}, 0, -1},
    {"loss", GRADC_SLOT_LOSS, 0, 0, {0}, 0, -1},
};

gradc_model wideModel() {
  gradc_model m = toyModel();
  m.name = "wide";
  m.step = {"step", toyStep, toyWork, 7, kWideSlots};
  m.eval = {"eval", toyStep, toyWork, 7, kWideSlots};
  return m;
}

}  // namespace

TEST_CASE("C API: NULL arguments are errors with a message, not crashes; freeing NULL does nothing") {
  gradc_model m = toyModel();
  gradc_model withEval = toyModel();
  withEval.eval = withEval.step;
  withEval.eval.name = "eval";
  std::string ckpt = writeTemp("null.safetensors", "");
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("n.csv", "1\n2\n3\n").c_str());
  REQUIRE(d != nullptr);
  alignas(64) float state[32] = {};
  gradc_counters c = {0, 0, 0, 0, 0};
  gradc_train_options o = gradc_train_defaults(&m);
  o.verbose = 0;
  double loss = 0;
  // (each of these dereferenced NULL: SIGSEGV)
  const std::string noModel = "gradc: error: no model: the model is NULL";
  CHECK(gradc_dataset_read_csv(nullptr, "n.csv") == nullptr);
  CHECK(lastError() == noModel);
  CHECK(gradc_batcher_new(nullptr, d, 2) == nullptr);
  CHECK(lastError() == noModel);
  CHECK(gradc_checkpoint_save(nullptr, state, &c, ckpt.c_str()) == -1);
  CHECK(lastError() == noModel);
  CHECK(gradc_checkpoint_load(nullptr, state, &c, ckpt.c_str()) == -1);
  CHECK(lastError() == noModel);
  CHECK(gradc_train(nullptr, state, &c, d, nullptr, &o) == -1);
  CHECK(lastError() == noModel);
  CHECK(gradc_evaluate(nullptr, state, d, 2, &loss, nullptr) == -1);
  CHECK(lastError() == noModel);
  gradc_train_options none = gradc_train_defaults(nullptr);
  CHECK(lastError() == noModel);
  CHECK(none.lr != none.lr);  // NaN: gradc_train refuses it
  const std::string noState = "toy: error: no state buffer: the state is NULL";
  CHECK(gradc_checkpoint_save(&m, nullptr, &c, ckpt.c_str()) == -1);
  CHECK(lastError() == noState);
  CHECK(gradc_checkpoint_load(&m, nullptr, &c, ckpt.c_str()) == -1);
  CHECK(lastError() == noState);
  CHECK(gradc_train(&m, nullptr, &c, d, nullptr, &o) == -1);
  CHECK(lastError() == noState);
  CHECK(gradc_evaluate(&withEval, nullptr, d, 2, &loss, nullptr) == -1);
  CHECK(lastError() == noState);
  CHECK(gradc_train(&m, state, &c, d, nullptr, nullptr) == -1);
  CHECK(lastError() == "toy: error: no training options: the options are NULL");
  CHECK(gradc_train(&m, state, &c, nullptr, nullptr, &o) == -1);
  CHECK(lastError() == "toy: error: no data to train on (the data set is NULL)");
  CHECK(gradc_batcher_new(&m, nullptr, 2) == nullptr);
  CHECK(lastError() == "toy: error: no data to gather (the data set is NULL)");
  gradc_batcher *b = gradc_batcher_new(&m, d, 2);
  REQUIRE(b != nullptr);
  int64_t order[3] = {0, 1, 2};
  CHECK(gradc_batcher_gather(nullptr, order, 0) == -1);
  CHECK(lastError() == "gradc: error: no batcher: the batcher is NULL");
  CHECK(gradc_batcher_gather(b, nullptr, 0) == -1);
  CHECK(lastError() == "gradc: error: no order: `order` is NULL");
  CHECK(gradc_batcher_buffer(nullptr, "x") == nullptr);
  CHECK(lastError() == "gradc: error: no batcher: the batcher is NULL");
  // (std::string of NULL: an uncaught exception, abort)
  CHECK(gradc_batcher_buffer(b, nullptr) == nullptr);
  CHECK(lastError() == "gradc: error: no input name: the name is NULL");
  CHECK(gradc_batcher_buffer(b, "x") != nullptr);
  CHECK(lastError().empty());
  CHECK(gradc_epoch_order(3, 0, 0, 1, nullptr) == -1);
  CHECK(lastError() == "gradc: error: no room for the order: `order` is NULL");
  CHECK(gradc_epoch_order(0, 0, 0, 1, nullptr) == 0);
  // An empty path is no file name, as `gradc train --save ''` is refused (a run saved nothing).
  const std::string empty = "gradc: error: no file name: the path is empty";
  CHECK(gradc_checkpoint_save(&m, state, &c, "") == -1);
  CHECK(lastError() == empty);
  o.save_path = "";
  CHECK(gradc_train(&m, state, &c, d, nullptr, &o) == -1);
  CHECK(lastError() == empty);
  gradc_batcher_free(b);
  gradc_batcher_free(nullptr);
  gradc_dataset_free(d);
  gradc_dataset_free(nullptr);
}

TEST_CASE("C API: negative and huge sizes, and orders that are not rows, are errors") {
  gradc_model m = toyModel();
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("h.csv", "1\n2\n3\n4\n").c_str());
  REQUIRE(d != nullptr);
  std::vector<int64_t> order(4);
  // (std::vector's length_error escaped through C: abort)
  CHECK(gradc_epoch_order(-1, 0, 0, 1, order.data()) == -1);
  CHECK(lastError() == "gradc: error: a row count cannot be negative (-1)");
  CHECK(gradc_epoch_order(INT64_MAX, 0, 0, 1, order.data()) == -1);
  CHECK(lastError() == "gradc: error: out of memory for the order of 9223372036854775807 rows");
  CHECK(gradc_epoch_order(4, 0, 0, 0, order.data()) == 0);
  CHECK(lastError().empty());
  // (-2, and a negative count for INT64_MAX rows: rows + batch_size - 1 overflowed)
  CHECK(gradc_batch_count(-5, 2, 0) == -1);
  CHECK(lastError() == "gradc: error: a row count cannot be negative (-5)");
  CHECK(gradc_batch_count(INT64_MAX, 2, 0) == INT64_MAX / 2 + 1);
  CHECK(gradc_batch_count(INT64_MAX, 2, 1) == INT64_MAX / 2);
  CHECK(gradc_batch_count(5, INT64_MAX, 0) == 1);
  CHECK(gradc_batch_count(5, INT64_MAX, 1) == 0);
  // (buffers of batch_size * width * 4 bytes: the product overflowed to a small buffer)
  CHECK(gradc_batcher_new(&m, d, INT64_MAX) == nullptr);
  CHECK(lastError().rfind("toy: error: the batch size 9223372036854775807 is too large", 0) == 0);
  CHECK(gradc_batcher_new(&m, d, int64_t(1) << 62) == nullptr);
  gradc_batcher *b = gradc_batcher_new(&m, d, 2);
  REQUIRE(b != nullptr);
  // (order entries were read as row numbers: SIGSEGV; batch * batch_size overflowed)
  std::vector<int64_t> bad = {0, 1, 2, 400000000};
  CHECK(gradc_batcher_gather(b, bad.data(), 0) == 2);
  CHECK(gradc_batcher_gather(b, bad.data(), 1) == -1);
  CHECK(lastError().find("error: order[3] = 400000000 is not a row of the data set (0..3)") != std::string::npos);
  bad[3] = -1;
  CHECK(gradc_batcher_gather(b, bad.data(), 1) == -1);
  CHECK(gradc_batcher_gather(b, order.data(), INT64_MAX) == 0);
  CHECK(gradc_batcher_gather(b, order.data(), -1) == 0);
  gradc_batcher_free(b);
  gradc_dataset_free(d);
}

TEST_CASE("C API: a data set read for another model is refused, not read past its end") {
  gradc_model toy = toyModel(), wide = wideModel();
  gradc_dataset *narrow = gradc_dataset_read_csv(&toy, writeTemp("narrow.csv", "1\n2\n").c_str());
  gradc_dataset *two = gradc_dataset_read_csv(&wide, writeTemp("two.csv", "a,b,y\n1,2,0\n3,4,2\n").c_str());
  REQUIRE(narrow != nullptr);
  REQUIRE(two != nullptr);
  alignas(64) float state[32] = {};
  gradc_train_options o = gradc_train_defaults(&wide);
  o.verbose = 0;
  double loss = 0;
  // (the wide step read two values per row of a one-value column, and labels that were not there)
  CHECK(gradc_train(&wide, state, nullptr, narrow, nullptr, &o) == -1);
  CHECK(lastError().find("error: input 'x' of the data set is 1 value(s) per row, the model wide's is 2 value(s): "
                         "the data set was read for another model") != std::string::npos);
  CHECK(gradc_evaluate(&wide, state, narrow, 2, &loss, nullptr) == -1);
  CHECK(gradc_batcher_new(&wide, narrow, 2) == nullptr);
  CHECK(gradc_train(&toy, state, nullptr, two, nullptr, &o) == -1);
  CHECK(lastError().find("the model toy's is 1 value(s)") != std::string::npos);
  CHECK(gradc_train(&wide, state, nullptr, two, narrow, &o) == -1);  // the validation set too
  // Labels outside the model's classes (this data set was read with no class count).
  gradc_model fewer = wideModel();
  gradc_slot slots[7];
  std::copy(kWideSlots, kWideSlots + 7, slots);
  slots[1].classes = 2;
  fewer.step.slots = slots;
  CHECK(gradc_batcher_new(&fewer, two, 2) == nullptr);
  CHECK(lastError().find("error: label 2 of input 'y' (row 2) is not a class of the model wide (0..1)") !=
        std::string::npos);
  // A data set read for a float64 model holds doubles, which a float32 model cannot take
  // (its float columns are empty: the batcher read them).
  gradc_model toy64 = toyModel();
  toy64.f64 = 1;
  gradc_dataset *doubles = gradc_dataset_read_csv(&toy64, writeTemp("doubles.csv", "1\n2\n").c_str());
  REQUIRE(doubles != nullptr);
  CHECK(gradc_batcher_new(&toy, doubles, 2) == nullptr);
  CHECK(lastError().find("error: the data set was read for a float64 model; the model toy is float32") !=
        std::string::npos);
  CHECK(gradc_train(&toy, state, nullptr, doubles, nullptr, &o) == -1);
  // And one read for a float32 model holds its values rounded to float: not for a float64 one.
  CHECK(gradc_batcher_new(&toy64, narrow, 2) == nullptr);
  CHECK(lastError().find("error: the data set was read for a float32 model (its values rounded to float); the model "
                         "toy is float64: read the file for it") != std::string::npos);
  gradc_batcher *b = gradc_batcher_new(&wide, two, 2);
  CHECK(b != nullptr);
  gradc_batcher_free(b);
  gradc_dataset_free(doubles);
  gradc_dataset_free(two);
  gradc_dataset_free(narrow);
}

TEST_CASE("C API: gradc_train refuses a learning rate gradc train --lr refuses, and negative counters") {
  gradc_model m = toyModel();
  gradc_dataset *d = gradc_dataset_read_csv(&m, writeTemp("lr.csv", "1\n2\n3\n").c_str());
  REQUIRE(d != nullptr);
  alignas(64) float state[32] = {};
  gradc_train_options o = gradc_train_defaults(&m);
  o.verbose = 0;
  // (NaN and inf trained and failed with "a value of the step became non-finite"; -1 trained)
  for (double lr : {std::nan(""), HUGE_VAL, -HUGE_VAL, -1.0}) {
    o.lr = lr;
    CHECK(gradc_train(&m, state, nullptr, d, nullptr, &o) == -1);
    CHECK(lastError().rfind("toy: error: the learning rate must be a finite number of at least 0, not ", 0) == 0);
  }
  o.lr = 1e300;
  CHECK(gradc_train(&m, state, nullptr, d, nullptr, &o) == -1);
  CHECK(lastError().rfind("toy: error: the learning rate 1e+300 is too large for float32", 0) == 0);
  o.lr = 0;
  CHECK(gradc_train(&m, state, nullptr, d, nullptr, &o) == 0);
  CHECK(lastError().empty());
  // (a negative batch indexed before the epoch's order: SIGSEGV)
  gradc_counters c = {1, 0, -3, 0, 0};
  CHECK(gradc_train(&m, state, &c, d, nullptr, &o) == -1);
  CHECK(lastError() == "gradc: error: counters: epoch 0 and batch -3 cannot be negative");
  c = {1, -2, 0, 0, 0};
  CHECK(gradc_train(&m, state, &c, d, nullptr, &o) == -1);
  c = {1, INT64_MAX, 0, 0, 0};
  CHECK(gradc_train(&m, state, &c, d, nullptr, &o) == -1);
  CHECK(lastError().find("past the last epoch that can be counted") != std::string::npos);
  gradc_dataset_free(d);
}

TEST_CASE("C API: gradc_init_param_* fills a param as gradc train does, and refuses calls it cannot serve") {
  const int64_t shape[2] = {3, 4};
  const double normal[2] = {0.5, 2};
  std::vector<float> f(12, -7);
  std::vector<double> d(12, -7), want(12);
  gradc::rt::initParam(want.data(), static_cast<int>(gradc::rt::Init::Normal), {0.5, 2}, {3, 4}, 11, 2);
  REQUIRE(gradc_init_param_f64(d.data(), static_cast<int>(gradc::rt::Init::Normal), normal, 2, shape, 2, 11, 2) == 0);
  CHECK(d == want);
  REQUIRE(gradc_init_param_f32(f.data(), static_cast<int>(gradc::rt::Init::Normal), normal, 2, shape, 2, 11, 2) == 0);
  for (size_t i = 0; i < 12; ++i) CHECK(f[i] == static_cast<float>(want[i]));
  // A scalar (rank 0, no shape) is one value.
  const double three = 3;
  float one = 0;
  CHECK(gradc_init_param_f32(&one, static_cast<int>(gradc::rt::Init::Const), &three, 1, nullptr, 0, 0, 0) == 0);
  CHECK(one == 3);
  // Each refused call writes nothing and says why (it aborted the program before).
  struct Bad {
    int kind, numArgs, rank;
    const int64_t *shape;
    int index;
    const char *why;
  };
  const int64_t negative[2] = {3, -1};
  for (const Bad &b : std::vector<Bad>{
           {7, 0, 2, shape, 0, "unknown initialiser kind 7 (0..6)"},
           {-1, 0, 2, shape, 0, "unknown initialiser kind -1 (0..6)"},
           {static_cast<int>(gradc::rt::Init::Normal), 1, 2, shape, 0, "initialiser kind 3 takes 2 arguments, got 1"},
           {static_cast<int>(gradc::rt::Init::Zeros), 2, 2, shape, 0, "initialiser kind 0 takes 0 arguments, got 2"},
           {static_cast<int>(gradc::rt::Init::Zeros), 0, -1, shape, 0, "rank -1 is not 0..8"},
           {static_cast<int>(gradc::rt::Init::Zeros), 0, 9, shape, 0, "rank 9 is not 0..8"},
           {static_cast<int>(gradc::rt::Init::Zeros), 0, 2, nullptr, 0, "no shape: `shape` is NULL"},
           {static_cast<int>(gradc::rt::Init::Zeros), 0, 2, negative, 0, "dim 1 of the shape is -1"},
           {static_cast<int>(gradc::rt::Init::Zeros), 0, 2, shape, -1, "param index -1 is negative"},
       }) {
    CAPTURE(b.why);
    std::fill(f.begin(), f.end(), -7.0f);
    CHECK(gradc_init_param_f32(f.data(), b.kind, normal, b.numArgs, b.shape, b.rank, 0, b.index) == -1);
    CHECK(std::string(gradc_last_error()) == std::string("gradc: error: ") + b.why);
    CHECK(std::count(f.begin(), f.end(), -7.0f) == 12);
  }
  CHECK(gradc_init_param_f64(nullptr, static_cast<int>(gradc::rt::Init::Ones), nullptr, 0, shape, 2, 0, 0) == -1);
  CHECK(std::string(gradc_last_error()) == "gradc: error: nowhere to write: `out` is NULL");
  CHECK(gradc_init_param_f64(d.data(), static_cast<int>(gradc::rt::Init::Const), nullptr, 1, shape, 2, 0, 0) == -1);
  CHECK(std::string(gradc_last_error()) == "gradc: error: no initialiser arguments: `args` is NULL");
}
