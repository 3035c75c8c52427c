// The C API of libgradc_runtime (runtime/gradc_runtime.h) with a hand-written kernel: the
// training loop calls a plain function pointer with the slots the description gives, the
// state buffer goes in and out at its offsets, checkpoints round-trip (float64 ones exactly, with
// F32 tensors under the names), errors become -1 /
// NULL and a message.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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
