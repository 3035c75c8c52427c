// Running a deeply recursive piece of work on a stack of its own.
//
// The front end walks expressions by recursion: the parser on parentheses, Sema's
// evaluation, the AST printers (each runs through onLargeStack; the AST's destructor, a few
// words a level, fits any thread's stack). A flat sum of 4,096 terms is a left spine 4,096
// deep, and a def's body is evaluated inside its caller's. On a thread with a 256 MiB stack
// (reserved, not committed: pages are touched only as deep as the recursion goes) that depth
// fits with room to spare also under the sanitizers, whose frames are several times larger,
// and whatever the shell's `ulimit -s`.
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <type_traits>

namespace gradc {

/// The stack of the thread onLargeStack runs on.
constexpr size_t kLargeStackBytes = size_t{256} << 20;

/// Runs `body` on a new thread with a kLargeStackBytes stack and waits for it; an exception
/// it throws is thrown again here. (When no thread can be made, runs it on this one.)
void runOnLargeStack(const std::function<void()> &body);

template <typename F>
auto onLargeStack(F &&f) -> std::invoke_result_t<F> {
  using R = std::invoke_result_t<F>;
  if constexpr (std::is_void_v<R>) {
    runOnLargeStack([&] { f(); });
  } else {
    std::optional<R> result;
    runOnLargeStack([&] { result.emplace(f()); });
    return std::move(*result);
  }
}

}  // namespace gradc
