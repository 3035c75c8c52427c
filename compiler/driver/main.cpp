// gradc: the command line. Parses flags into Options and runs one command; turns a
// UserError into `FILE:LINE:COL: error: ...` and exit status 1, an InternalError into a
// bug report and exit status 70 (EX_SOFTWARE), and a bad flag into exit status 2.
#include <iostream>

#include <CLI/CLI.hpp>

#include "driver/Commands.h"
#include "ir/Model.h"

using namespace gradc;
using namespace gradc::driver;

namespace {

void addModel(CLI::App *c, Options &o) {
  c->add_option("MODEL", o.model, "The model file (.grad)")->required();
}
void addThreads(CLI::App *c, Options &o) {
  c->add_option("--threads", o.threads, "Threads for the step (default: all cores)")
      ->check(CLI::NonNegativeNumber);
}
void addMaxMemory(CLI::App *c, Options &o) {
  c->add_option("--max-memory", o.maxMemory,
                "Refuse a model whose buffers need more than BYTES (K, M, G suffixes; default: the machine's memory)");
}
void addDtype(CLI::App *c, Options &o) {
  c->add_option("--dtype", o.dtype, "Float type of the compiled code: f32 or f64")
      ->check(CLI::IsMember({"f32", "f64"}));
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  CLI::App app{"gradc: a compiler for training neural networks.\n"
               "A model file goes in; its gradient is derived at compile time and one fused\n"
               "forward+backward+update step is JIT-compiled with LLVM.",
               "gradc"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gradc 0.1.0");

  auto *check = app.add_subcommand("check", "Parse, resolve names and check shapes; exit 0 when the model is valid");
  addModel(check, o);

  auto *inspect = app.add_subcommand("inspect", "Print the program at one stage of the pipeline");
  addModel(inspect, o);
  inspect->add_option("--stage", o.stage,
                      "ast, ir (forward), grad (reverse mode), opt (simplified), step (fused step), "
                      "loops (the step's loop nests and buffers), llvm, asm")
      ->check(CLI::IsMember({"ast", "ir", "grad", "opt", "step", "loops", "llvm", "asm"}));
  inspect->add_option("--format", o.format, "text or dot (Graphviz)")
      ->check(CLI::IsMember({"text", "dot"}));
  addDtype(inspect, o);
  addThreads(inspect, o);

  auto *train = app.add_subcommand("train", "JIT-compile the step and train");
  addModel(train, o);
  train->add_option("--data", o.data, "Training data (CSV)");
  train->add_option("--val", o.val, "Validation data (CSV), evaluated after each epoch");
  train->add_option("--epochs", o.epochs, "Epochs (default 1 with data)")->check(CLI::NonNegativeNumber);
  train->add_option("--steps", o.steps, "Stop after N steps (default 1000 without data)")->check(CLI::NonNegativeNumber);
  train->add_option("--batch-size", o.batchSize, "Mini-batch size (default 32)")->check(CLI::PositiveNumber);
  train->add_option("--lr", o.lr, "Learning rate (replaces the model's)");
  train->add_option("--optimizer", o.optimizer, "sgd, adam, adamw, rmsprop or adagrad")
      ->check(CLI::IsMember(optimizerNames()));
  train->add_option("--seed", o.seed, "Seed for initialisers and shuffling (default 0)");
  train->add_flag("--no-shuffle", o.noShuffle, "Keep the data order");
  train->add_flag("--drop-last", o.dropLast, "Drop the last, smaller batch");
  train->add_option("--init", o.init, "Start from weights or a checkpoint (safetensors)");
  train->add_option("--save", o.save, "Write a checkpoint at each epoch and at the end");
  train->add_option("--metrics", o.metrics, "Write per-epoch loss and metrics as CSV");
  train->add_flag("--check-numerics", o.checkNumerics, "Check every value of the step for NaN and Inf");
  train->add_flag("--distributed", o.distributed, "Data-parallel training with MPI (on by itself under mpirun)");
  train->add_option("--mpi-timeout", o.mpiTimeout, "Seconds to wait for the other ranks before failing (default 30)")
      ->check(CLI::PositiveNumber);
  addThreads(train, o);
  addMaxMemory(train, o);
  addDtype(train, o);

  auto *eval = app.add_subcommand("eval", "Loss and every metric over a data file");
  addModel(eval, o);
  eval->add_option("--weights", o.weights, "Weights (safetensors)")->required();
  eval->add_option("--data", o.data, "Data (CSV)")->required();
  eval->add_flag("--json", o.json, "Print one JSON object");
  addThreads(eval, o);
  addMaxMemory(eval, o);

  auto *predict = app.add_subcommand("predict", "The model's outputs for each row, as CSV");
  addModel(predict, o);
  predict->add_option("--weights", o.weights, "Weights (safetensors)")->required();
  predict->add_option("--data", o.data, "Data (CSV)")->required();
  predict->add_option("--out", o.out, "Output file (default: standard output)");
  addThreads(predict, o);
  addMaxMemory(predict, o);

  auto *grad = app.add_subcommand("grad", "Loss and gradient of every param, as safetensors");
  addModel(grad, o);
  grad->add_option("--weights", o.weights, "Weights (safetensors)")->required();
  grad->add_option("--data", o.data, "Data (CSV), taken as one batch");
  grad->add_option("--out", o.out, "Output file (safetensors)")->required();
  addThreads(grad, o);
  addDtype(grad, o);

  auto *gradcheck = app.add_subcommand("gradcheck", "Compare gradients with central finite differences in float64");
  addModel(gradcheck, o);
  gradcheck->add_option("--weights", o.weights, "Weights (default: from the initialisers)");
  gradcheck->add_option("--data", o.data, "Data (default: a small random batch)");
  gradcheck->add_option("--seed", o.seed, "Seed for random weights and data (default 0)");

  auto *bench = app.add_subcommand("bench", "Time the compiled step on random data");
  addModel(bench, o);
  bench->add_option("--batch-size", o.batchSize, "Batch size (default 32)")->check(CLI::PositiveNumber);
  bench->add_flag("--json", o.json, "Print one JSON object");
  bench->add_flag("--check-numerics", o.checkNumerics, "Time the step compiled in check mode (train --check-numerics)");
  addThreads(bench, o);
  addMaxMemory(bench, o);
  addDtype(bench, o);

  auto *compile = app.add_subcommand("compile", "Compile the model ahead of time (object file and C header)");
  addModel(compile, o);
  compile->add_option("-o", o.out, "Output file")->required();
  compile->add_option("--header", o.header, "Write a C header");
  compile->add_option("--emit", o.emit, "obj, asm, llvm or shared")
      ->check(CLI::IsMember({"obj", "asm", "llvm", "shared"}));
  compile->add_option("--target", o.target, "Target triple (default: the host)");
  compile->add_option("--cpu", o.cpu, "Target CPU (default: the host's)");
  compile->add_option("--threads", o.threads,
                      "Threads the compiled step splits large matrix products over (default: 1)")
      ->check(CLI::NonNegativeNumber);
  addDtype(compile, o);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (inspect->parsed() && o.stage == "loops" && o.format == "dot") {
    std::cerr << "gradc: error: --format dot is not available for --stage loops\n";
    return 2;
  }
  SourceManager sm;
  try {
    if (check->parsed()) return runCheck(o, sm);
    if (inspect->parsed()) return runInspect(o, sm);
    if (train->parsed()) return runTrain(o, sm);
    if (eval->parsed()) return runEval(o, sm);
    if (predict->parsed()) return runPredict(o, sm);
    if (grad->parsed()) return runGrad(o, sm);
    if (gradcheck->parsed()) return runGradcheck(o, sm);
    if (bench->parsed()) return runBench(o, sm);
    if (compile->parsed()) return runCompile(o, sm);
  } catch (const UserError &e) {
    std::cerr << renderUserError(sm, e);
    return 1;
  } catch (const InternalError &e) {
    std::cerr << "gradc: internal error: " << e.what()
              << "\nThis is a bug in gradc, not in your model. Please report it with the model file.\n";
    return 70;
  } catch (const std::bad_alloc &) {
    std::cerr << "gradc: error: out of memory\n";
    return 1;
  }
  return 2;
}
