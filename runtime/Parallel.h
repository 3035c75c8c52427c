// The thread pool of a multi-threaded step (`--threads N`).
//
// Generated code calls `gradc_parallel_run(task, ctx, parts)` for each large matrix product:
// the calling thread and parts-1 pool workers take the parts one at a time until none is
// left, and the call returns when all are done (fork-join). A worker that is not running
// (its core busy with another process) takes none, and the caller runs them itself. Each part
// computes its own share of the product's column panels, so every output element is summed
// in the same order whatever the thread count: results are bit-identical to a one-thread run.
//
// Workers are started on first use and live until the process exits. Between calls they
// spin for a short while (a training step forks many times within microseconds), then
// sleep on a futex. A call made while another is in progress (a second thread running a
// kernel) runs all its parts on the calling thread instead of waiting.
#pragma once

#include <cstdint>

extern "C" {
typedef void (*gradc_task_fn)(void *ctx, int64_t part, int64_t parts);
/// Runs task(ctx, p, parts) for p = 0 .. parts-1, in parallel, and returns when all are done
/// (more than 65535 parts run one after the other on the calling thread).
void gradc_parallel_run(gradc_task_fn task, void *ctx, int64_t parts);
}
