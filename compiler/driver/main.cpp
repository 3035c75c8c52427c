// gradc: the command line. Parses flags into Options and runs one command; turns a
// UserError into `FILE:LINE:COL: error: ...` and exit status 1, an InternalError into a
// bug report and exit status 70 (EX_SOFTWARE), and a bad flag into one line
// `gradc: error: ...` and exit status 2.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include <CLI/CLI.hpp>

#include "driver/Commands.h"
#include "support/Suggest.h"
#include "driver/RunSupport.h"
#include "ir/Model.h"
#include "runtime/Files.h"

using namespace gradc;
using namespace gradc::driver;

namespace {

// Flag values checked with plain messages (CLI11's ranges print the largest double).
template <typename T> bool parsesWhole(const std::string &s, T &v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}
CLI::Validator wholeNumber(long long min, long long max = std::numeric_limits<long long>::max()) {
  bool bounded = max != std::numeric_limits<long long>::max();
  return CLI::Validator(
      [min, max, bounded](std::string &s) -> std::string {
        long long v = 0;
        if (!parsesWhole(s, v) || v < min || v > max)
          return bounded ? fmt::format("takes a whole number from {} to {}, not '{}'", min, max, s)
                         : fmt::format("takes a whole number {}, not '{}'", min == 0 ? "(0 or more)" : ">= 1", s);
        return "";
      },
      min == 0 ? "N >= 0" : "N >= 1");
}
// A finite number, >= 0 or (without `zero`) > 0; `what` names it in the message.
CLI::Validator finiteNumber(const char *what, bool zero, const char *desc) {
  return CLI::Validator(
      [what, zero](std::string &s) -> std::string {
        double v = 0;
        auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (r.ec == std::errc::result_out_of_range && r.ptr == s.data() + s.size()) {
          // Too small for a double (`1e-400`) is 0, as Python's float() reads it; too large
          // is not finite.
          v = std::strtod(s.c_str(), nullptr);
        } else if (r.ec != std::errc() || r.ptr != s.data() + s.size()) {
          v = std::nan("");
        }
        if (!std::isfinite(v) || v < 0 || (!zero && v == 0))
          return fmt::format("takes {} {}, not '{}'", what, zero ? ">= 0" : "> 0", s);
        if (r.ec != std::errc()) s = fmt::format("{}", v);  // the value CLI11 then reads
        return "";
      },
      desc);
}
const CLI::Validator kLearningRate = finiteNumber("a learning rate, a number", true, "X >= 0");
const CLI::Validator kSeconds = finiteNumber("a number of seconds", false, "SECONDS > 0");
const CLI::Validator kSeed(
    [](std::string &s) -> std::string {
      uint64_t v = 0;
      if (!parsesWhole(s, v)) return fmt::format("takes a whole number from 0 to 2^64-1, not '{}'", s);
      return "";
    },
    "N >= 0");

// A path flag given an empty value is an error (not the same as leaving the flag out).
const CLI::Validator kPath(
    [](std::string &s) -> std::string { return s.empty() ? "takes a file name, not ''" : ""; }, "");

void addModel(CLI::App *c, Options &o) {
  c->add_option("MODEL", o.model, "The model file (.grad)")->required()->check(kPath);
}
// More threads than any machine has cores only cost memory and time: each gets a slice of
// the work buffers (--threads 100000 took 20 s and 4 GB to train a small model).
constexpr int kMaxThreads = 1024;

void addThreads(CLI::App *c, Options &o) {
  c->add_option("--threads", o.threads, "Threads for the step (default: all cores)")->check(wholeNumber(0, kMaxThreads));
}
void addMaxMemory(CLI::App *c, Options &o) {
  c->add_option("--max-memory", o.maxMemory,
                "Refuse a model whose buffers need more than BYTES (K, M, G suffixes; default: the machine's memory)")
      ->check(CLI::Validator(
          [](std::string &s) -> std::string {
            try {
              gradc::driver::parseBytes(s);
            } catch (const gradc::UserError &) {
              return fmt::format("takes a number of bytes such as 512M or 2G, not '{}'", s);
            }
            return "";
          },
          "BYTES"));
}
void addDtype(CLI::App *c, Options &o) {
  c->add_option("--dtype", o.dtype, "Float type of the compiled code: f32 (default) or f64")
      ->check(CLI::IsMember({"f32", "f64"}));
}

// The path a file not written yet will have: links followed (a dangling one names the file
// it creates), made absolute (weakly_canonical leaves a relative path whose first part does
// not exist relative: `w.st` and `./w.st` differed).
std::filesystem::path wouldBe(const std::string &p, std::error_code &ec) {
  std::string target = p;
  try {
    target = rt::linkTarget(p);
  } catch (const UserError &) {  // links that loop: writing fails later, with the error
  }
  return std::filesystem::weakly_canonical(std::filesystem::absolute(target, ec), ec);
}

// Whether `a` and `b` name one regular file (or, not existing yet, one path). Two names of
// /dev/null are not one file: nothing written there is lost.
bool sameFile(const std::string &a, const std::string &b) {
  if (a.empty() || b.empty()) return false;
  struct stat sa {}, sb {};
  bool ea = ::stat(a.c_str(), &sa) == 0, eb = ::stat(b.c_str(), &sb) == 0;
  if (ea || eb)
    return ea && eb && S_ISREG(sa.st_mode) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  std::error_code e1, e2;
  std::filesystem::path pa = wouldBe(a, e1), pb = wouldBe(b, e2);
  return !e1 && !e2 && pa == pb;
}

// An output that is another output or an input would overwrite it (`compile m.grad -o
// m.grad` replaced the model by an object file); --init W --save W resumes in place.
std::string clashingFiles(const Options &o, const char *outFlag) {
  const std::pair<const char *, const std::string *> outputs[] = {
      {outFlag, &o.out}, {"--save", &o.save}, {"--metrics", &o.metrics}, {"--header", &o.header}};
  const std::pair<const char *, const std::string *> inputs[] = {
      {"MODEL", &o.model}, {"--data", &o.data}, {"--val", &o.val}, {"--weights", &o.weights}, {"--init", &o.init}};
  for (size_t i = 0; i < std::size(outputs); ++i) {
    const auto &[name, path] = outputs[i];
    for (size_t j = i + 1; j < std::size(outputs); ++j)
      if (sameFile(*path, *outputs[j].second))
        return fmt::format("{} and {} name the same file '{}'", name, outputs[j].first, *path);
    for (const auto &[inName, inPath] : inputs)
      if (!(path == &o.save && inPath == &o.init) && sameFile(*path, *inPath))
        return fmt::format("{} '{}' is also {}: writing it would overwrite the input", name, *path, inName);
  }
  return "";
}

// The command given (a known one), whose --help a bad flag's message points to. Under mpirun
// every rank parses the same flags: `train`'s bad flag is printed once for the job
// (reportDistributedBadFlag).
std::string gCommand;
double *gMpiTimeout = nullptr;

// A bad flag: one line (its value quoted with any control characters escaped) and exit
// status 2.
int badFlag(std::string_view msg) {
  // CLI11's own messages begin with a capital ("The following argument was not expected");
  // gradc's, like a compiler's, do not.
  std::string text(msg);
  if (text.size() > 1 && std::isupper(static_cast<unsigned char>(text[0])) &&
      std::islower(static_cast<unsigned char>(text[1])))
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  std::string line = oneLine(fmt::format("gradc: error: {} (see gradc {}--help)", text,
                                         gCommand.empty() ? "" : gCommand + " "));
  if (gCommand != "train" || !reportDistributedBadFlag(line, gMpiTimeout ? *gMpiTimeout : 30)) std::cerr << line;
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  CLI::App app{"gradc: a compiler for training neural networks.\n"
               "A model file goes in; its gradient is derived at compile time and one fused\n"
               "forward+backward+update step is JIT-compiled with LLVM.",
               "gradc"};
  app.require_subcommand(1);
  // A flag given twice takes its last value, as argparse does (a script appends an override:
  // `$FLAGS --lr 0.1`); every command inherits this.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", "gradc 0.1.0");

  auto *check = app.add_subcommand("check", "Parse, resolve names and check shapes; exit 0 when the model is valid");
  addModel(check, o);

  auto *inspect = app.add_subcommand("inspect", "Print the program at one stage of the pipeline");
  addModel(inspect, o);
  inspect->add_option("--stage", o.stage,
                      "ast, ir (forward), grad (reverse mode), opt (simplified), step (fused step), "
                      "loops (the step's loop nests and buffers), llvm, asm; default ir")
      ->check(CLI::IsMember({"ast", "ir", "grad", "opt", "step", "loops", "llvm", "asm"}));
  inspect->add_option("--format", o.format, "text (default) or dot (Graphviz; not for loops, llvm, asm)")
      ->check(CLI::IsMember({"text", "dot"}));
  addDtype(inspect, o);
  addThreads(inspect, o);

  auto *train = app.add_subcommand("train", "JIT-compile the step and train");
  addModel(train, o);
  train->add_option("--data", o.data, "Training data (CSV; required when the model has inputs)")->check(kPath);
  train->add_option("--val", o.val, "Validation data (CSV), evaluated after each epoch")->check(kPath);
  train->add_option("--epochs", o.epochs, "Epochs (default 1 with data)")->check(wholeNumber(0));
  train->add_option("--steps", o.steps, "Stop after N steps (default 1000 without data)")->check(wholeNumber(0));
  train->add_option("--batch-size", o.batchSize, "Mini-batch size (default 32)")->check(wholeNumber(1));
  train->add_option("--lr", o.lr, "Learning rate (replaces the model's)")->check(kLearningRate);
  train->add_option("--optimizer", o.optimizer, "sgd, adam, adamw, rmsprop or adagrad (default: the model's)")
      ->check(CLI::IsMember(optimizerNames()));
  train->add_option("--seed", o.seed, "Seed for initialisers and shuffling (default 0)")->check(kSeed);
  train->add_flag("--no-shuffle", o.noShuffle, "Keep the data order");
  train->add_flag("--drop-last", o.dropLast, "Drop the last, smaller batch");
  train->add_option("--init", o.init, "Start from weights or a checkpoint (safetensors)")->check(kPath);
  train->add_option("--save", o.save, "Write a checkpoint at each epoch and at the end")->check(kPath);
  train->add_option("--metrics", o.metrics, "Write per-epoch loss and metrics as CSV")->check(kPath);
  train->add_flag("--check-numerics", o.checkNumerics, "Check every value of the step for NaN and Inf");
  train->add_flag("--distributed", o.distributed, "Data-parallel training with MPI (on by itself under mpirun)");
  train->add_option("--mpi-timeout", o.mpiTimeout, "Seconds to wait for the other ranks before failing (default 30)")
      ->check(kSeconds);
  addThreads(train, o);
  addMaxMemory(train, o);
  addDtype(train, o);

  auto *eval = app.add_subcommand("eval", "Loss and every metric over a data file");
  addModel(eval, o);
  eval->add_option("--weights", o.weights, "Weights (safetensors)")->required()->check(kPath);
  eval->add_option("--data", o.data, "Data (CSV; required when the model has inputs)")->check(kPath);
  eval->add_flag("--json", o.json, "Print one JSON object");
  addThreads(eval, o);
  addMaxMemory(eval, o);
  addDtype(eval, o);

  auto *predict = app.add_subcommand("predict", "The model's outputs for each row, as CSV");
  addModel(predict, o);
  predict->add_option("--weights", o.weights, "Weights (safetensors)")->required()->check(kPath);
  predict->add_option("--data", o.data, "Data (CSV)")->required()->check(kPath);
  predict->add_option("--out", o.out, "Output file (default, or -: standard output)")->check(kPath);
  addThreads(predict, o);
  addMaxMemory(predict, o);
  addDtype(predict, o);

  auto *grad = app.add_subcommand("grad", "Loss and gradient of every param, as safetensors");
  addModel(grad, o);
  grad->add_option("--weights", o.weights, "Weights (safetensors)")->required()->check(kPath);
  grad->add_option("--data", o.data, "Data (CSV), taken as one batch (required when the model has inputs)")->check(kPath);
  grad->add_option("--out", o.out, "Output file (safetensors; - for standard output)")->required()->check(kPath);
  addThreads(grad, o);
  addDtype(grad, o);

  auto *gradcheck = app.add_subcommand("gradcheck", "Compare gradients with central finite differences in float64");
  addModel(gradcheck, o);
  gradcheck->add_option("--weights", o.weights, "Weights (default: from the initialisers)")->check(kPath);
  gradcheck->add_option("--data", o.data, "Data (default: a small random batch)")->check(kPath);
  gradcheck->add_option("--seed", o.seed, "Seed for random weights and data (default 0)")->check(kSeed);
  addThreads(gradcheck, o);

  auto *bench = app.add_subcommand("bench", "Time the compiled step on random data");
  addModel(bench, o);
  bench->add_option("--batch-size", o.batchSize, "Batch size (default 32)")->check(wholeNumber(1));
  bench->add_flag("--json", o.json, "Print one JSON object");
  bench->add_flag("--check-numerics", o.checkNumerics, "Time the step compiled in check mode (train --check-numerics)");
  addThreads(bench, o);
  addMaxMemory(bench, o);
  addDtype(bench, o);

  auto *compile = app.add_subcommand("compile", "Compile the model ahead of time (object file and C header)");
  addModel(compile, o);
  compile->add_option("-o", o.out, "Output file (- for standard output)")->required()->check(kPath);
  compile->add_option("--header", o.header, "Write a C header (- for standard output)")->check(kPath);
  compile->add_option("--emit", o.emit, "obj (default), asm, llvm or shared")
      ->check(CLI::IsMember({"obj", "asm", "llvm", "shared"}));
  // (An empty one is no name: `--target ''` from an unset variable would silently mean the host.)
  const CLI::Validator named([](std::string &s) -> std::string { return s.empty() ? "takes a name, not ''" : ""; }, "");
  compile->add_option("--target", o.target, "Target triple (default: the host)")->check(named);
  compile->add_option("--cpu", o.cpu, "Target CPU (default: the host's; a generic CPU for another --target)")
      ->check(named);
  // The split is fixed in the compiled code (its parts and their scratch memory), and the
  // cores of the machine that will run it are not known here: 0, "all cores" for the other
  // commands, is refused rather than taken as 1.
  compile->add_option("--threads", o.threads,
                      "Threads the compiled step splits large matrix products over, 1 to 1024 (default: 1; "
                      "fixed when compiled, so 0 is refused)")
      ->check(CLI::Validator(
          [](std::string &s) -> std::string {
            long long v = -1;
            if (parsesWhole(s, v) && v == 0)
              return "0 (all cores) is not available for compile: the compiled step is split for a number of "
                     "threads fixed when it is compiled, and the machine that will run it is not known; "
                     "give the number of threads, from 1 to 1024";
            return wholeNumber(1, kMaxThreads)(s);
          },
          "N >= 1"));
  addDtype(compile, o);

  // The command is the first word that is not an option (gradc takes no global option with
  // a value), when it is one.
  const auto commands = std::as_const(app).get_subcommands({});
  auto isCommand = [&](std::string_view w) {
    return std::any_of(commands.begin(), commands.end(), [&](const CLI::App *c) { return c->get_name() == w; });
  };
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') {
      if (isCommand(argv[i])) gCommand = argv[i];
      break;
    }
  gMpiTimeout = &o.mpiTimeout;
  // Without a command CLI11 says only "A subcommand is required", also for a mistyped one
  // (`gradc trian`) or an unknown option alone (`gradc --bogus`): name what was not understood.
  auto noCommand = [&] {
    std::string names;
    std::vector<std::string> list;
    for (const CLI::App *c : commands) {
      names += (names.empty() ? "" : ", ") + c->get_name();
      list.push_back(c->get_name());
    }
    std::string first = argc > 1 ? argv[1] : "";
    return argc <= 1             ? "a command is required: " + names
           : first.empty()       ? "a command is required, not '': " + names
           : first.front() == '-' ? fmt::format("unknown option '{}'; a command is required: {}", first, names)
                                  : fmt::format("unknown command '{}'; the commands are {}{}", first, names,
                                                didYouMean(first, list));
  };
  // A first word that is no command is an error even beside --help or --version, which CLI11
  // would otherwise answer with gradc's help (`gradc trian --help`, exit status 0).
  if (argc > 1 && argv[1][0] != '-' && !isCommand(argv[1])) return badFlag(noCommand());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help, --version
    // CLI11 lists the arguments it did not expect last first (`--seed 3` as "3 --seed"): name
    // them in the order they were written.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::ExtrasError)) {
      std::vector<std::string> extras = app.remaining();
      for (const CLI::App *c : app.get_subcommands())
        for (const std::string &a : c->remaining()) extras.push_back(a);
      if (!extras.empty()) {
        std::string list;
        for (const std::string &a : extras) list += (list.empty() ? "" : " ") + a;
        // A misspelt flag (`--epoch 3`): the command's flag it is closest to.
        std::string hint;
        for (const CLI::App *c : app.get_subcommands()) {
          std::vector<std::string> flags;
          for (const CLI::Option *opt : c->get_options())
            for (const std::string &n : opt->get_lnames()) flags.push_back("--" + n);
          for (const std::string &a : extras)
            if (hint.empty() && a.starts_with("--")) hint = didYouMean(a.substr(0, a.find('=')), flags);
        }
        return badFlag(fmt::format("the following argument{} not expected: {}{}",
                                   extras.size() > 1 ? "s were" : " was", list, hint));
      }
    }
    return badFlag(app.get_subcommands().empty() ? noCommand() : std::string(e.what()));
  }

  o.batchSizeGiven = bench->count("--batch-size") > 0 || train->count("--batch-size") > 0;
  o.seedGiven = train->count("--seed") > 0;
  // The loop plan, LLVM IR and assembly are text only.
  if (inspect->parsed() && o.format == "dot" && (o.stage == "loops" || o.stage == "llvm" || o.stage == "asm")) {
    return badFlag("--format dot is not available for --stage " + o.stage);
  }
  // A float32 run takes its learning rate as a float.
  if (train->parsed() && o.lr && o.dtype != "f64" && std::isinf(static_cast<float>(*o.lr))) {
    return badFlag(fmt::format("--lr {} is too large for float32 (at most {}): use a smaller one or --dtype f64",
                               train->get_option("--lr")->results().back(), std::numeric_limits<float>::max()));
  }
  // Flags whose values only LLVM knows: compile's target and CPU.
  if (compile->parsed())
    if (std::string why = compileFlagError(o); !why.empty()) return badFlag(why);
  // A safetensors file's bytes would garble a terminal, as compile's object file would.
  if (grad->parsed() && o.out == "-" && ::isatty(STDOUT_FILENO))
    return badFlag("--out - would write the safetensors file to the terminal: redirect standard output to a "
                   "file or a pipe");
  if (std::string clash = clashingFiles(o, compile->parsed() ? "-o" : "--out"); !clash.empty())
    return badFlag(clash);
  SourceManager sm;
  try {
    int rc = check->parsed()       ? runCheck(o, sm)
             : inspect->parsed()   ? runInspect(o, sm)
             : train->parsed()     ? runTrain(o, sm)
             : eval->parsed()      ? runEval(o, sm)
             : predict->parsed()   ? runPredict(o, sm)
             : grad->parsed()      ? runGrad(o, sm)
             : gradcheck->parsed() ? runGradcheck(o, sm)
             : bench->parsed()     ? runBench(o, sm)
             : compile->parsed()   ? runCompile(o, sm)
                                   : 2;
    // Output lost to a full disk or a closed standard output is an error, not a success.
    // A reader that went away (train's exit 141) is no error to report, as for any program
    // a closed pipe stops.
    std::cout.flush();
    if (rc == 128 + SIGPIPE) return rc;
    if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
      std::cerr << "gradc: error: cannot write standard output: " << (errno ? std::strerror(errno) : "write error") << "\n";
      return rc == 0 ? 1 : rc;
    }
    return rc;
  } catch (const FlagError &e) {
    return badFlag(e.what());
  } catch (const UserError &e) {
    std::cerr << renderUserError(sm, e);
    return 1;
  } catch (const InternalError &e) {
    std::cerr << "gradc: internal error: " << e.what()
              << "\nThis is a bug in gradc, not in your model. Please report it with the model file.\n";
    return 70;
  } catch (const std::bad_alloc &) {
    std::cerr << outOfMemoryLine(o.model);
    return 1;
  }
}
