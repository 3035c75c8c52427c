// The commands of `gradc` (docs/language.md, "Command line"). main.cpp parses the command line
// into Options and calls one run* function; each lives in its own Cmd*.cpp file. A run*
// function returns the exit status; user errors are thrown as UserError and reported by main.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "support/Diagnostics.h"

namespace gradc::driver {

/// A flag that the model file makes required (`eval`'s --data for a model with inputs): a bad
/// flag as main.cpp reports it, `gradc: error: MSG (see gradc CMD --help)`, exit status 2.
class FlagError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string model;          // MODEL
  // inspect
  std::string stage = "ir";   // ast ir grad opt step loops llvm asm
  std::string format = "text";
  // data and weights
  std::string data, val, weights, init, save, out, metrics;
  // training
  std::optional<int64_t> epochs, steps;
  int64_t batchSize = 32;
  bool batchSizeGiven = false;  // --batch-size on the command line (warned about when not used)
  bool seedGiven = false;       // train --seed on the command line (warned about when not used)
  std::optional<double> lr;
  std::string optimizer;
  uint64_t seed = 0;
  bool noShuffle = false;
  bool dropLast = false;
  int threads = 0;            // 0: all cores
  std::string dtype = "f32";  // f32 or f64
  bool json = false;
  bool checkNumerics = false;
  bool distributed = false;   // --distributed (also on when an MPI launcher started gradc)
  double mpiTimeout = 30;     // --mpi-timeout SECONDS: the longest wait for the other ranks
  std::string maxMemory;      // --max-memory BYTES (K, M, G suffixes); "" = the machine's memory
  // compile
  std::string emit = "obj", header, target, cpu;
};

int runCheck(Options &o, SourceManager &sm);
int runInspect(Options &o, SourceManager &sm);
int runTrain(Options &o, SourceManager &sm);
/// `train` as one rank of data-parallel training (CmdTrainDistributed.cpp).
int runTrainDistributed(Options &o, SourceManager &sm);
/// A bad flag of `train` under an MPI launcher (`gradc: error: MSG\n`), printed once for
/// the job: every rank joins the start-up check, which the ranks with good flags reach after
/// compiling, and only the first rank that failed prints, its rank after `error: ` unless it
/// is rank 0. False (nothing printed) when gradc was not started by a launcher or was built
/// without MPI: the caller prints the line.
bool reportDistributedBadFlag(const std::string &line, double mpiTimeout);
int runEval(Options &o, SourceManager &sm);
int runPredict(Options &o, SourceManager &sm);
int runGrad(Options &o, SourceManager &sm);
int runGradcheck(Options &o, SourceManager &sm);
int runBench(Options &o, SourceManager &sm);
int runCompile(Options &o, SourceManager &sm);
/// What is wrong with `compile`'s --target, --cpu and --emit (a target or CPU LLVM does not
/// know, a shared library for another target), or "" when nothing is: a bad flag.
std::string compileFlagError(const Options &o);

}  // namespace gradc::driver
