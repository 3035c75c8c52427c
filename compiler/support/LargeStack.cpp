#include "support/LargeStack.h"

#include <pthread.h>

namespace gradc {

namespace {
struct Job {
  const std::function<void()> *body;
  std::exception_ptr error;
};

void *trampoline(void *arg) {
  auto *job = static_cast<Job *>(arg);
  try {
    (*job->body)();
  } catch (...) {
    job->error = std::current_exception();
  }
  return nullptr;
}
}  // namespace

void runOnLargeStack(const std::function<void()> &body) {
  Job job{&body, nullptr};
  pthread_attr_t attr;
  pthread_t thread;
  bool started = pthread_attr_init(&attr) == 0;
  if (started) {
    started = pthread_attr_setstacksize(&attr, kLargeStackBytes) == 0 &&
              pthread_create(&thread, &attr, trampoline, &job) == 0;
    pthread_attr_destroy(&attr);
  }
  if (!started) {
    body();
    return;
  }
  pthread_join(thread, nullptr);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace gradc
