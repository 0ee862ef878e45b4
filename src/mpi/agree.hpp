// Agreement on failure: a failure on one rank becomes the same exception on every rank.
// Every function here is collective over the communicator.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ckptio/error.hpp"
#include "mpi/comm.hpp"

namespace ckptio::detail {

// A failure captured on one rank, ready to be agreed on.
struct Failure {
  ErrorKind kind = ErrorKind::Generic;
  std::string message;
};

// "[ckptio] [rank R] <operation>: <message>", the form of every agreed error.
std::string agreed_message(int rank, std::string_view operation, const std::string& message);

// Converts the in-flight exception (inside a catch block) to a Failure.
Failure capture_current_exception();

// If any rank passes a failure, every rank throws the failure of the lowest failing rank,
// as "[ckptio] [rank R] <operation>: <message>" with the original error type. Returns
// normally on every rank otherwise. One MPI_Allreduce when nobody failed.
void agree(const Comm& comm, const std::optional<Failure>& local, std::string_view operation);

// Throws the agreed failure.
[[noreturn]] void rethrow(const Failure& failure);

// Like agree, but returns the agreed failure (on every rank) instead of throwing, so the
// caller can clean up collectively first.
std::optional<Failure> agree_failure(const Comm& comm, const std::optional<Failure>& local, std::string_view operation);

// Runs fn on this rank, then agrees: the failure of any rank is thrown on all.
template <class F>
void run_agreed(const Comm& comm, std::string_view operation, F&& fn) {
  std::optional<Failure> failure;
  try {
    std::forward<F>(fn)();
  } catch (...) {
    failure = capture_current_exception();
  }
  agree(comm, failure, operation);
}

// Like run_agreed, but when any rank fails, every rank first calls on_failure(agreed
// failure) (collective clean-up: close a file, remove a partial one), then throws it.
// on_failure must not throw.
template <class F, class OnFailure>
void run_agreed_or(const Comm& comm, std::string_view operation, F&& fn, OnFailure&& on_failure) {
  std::optional<Failure> failure;
  try {
    std::forward<F>(fn)();
  } catch (...) {
    failure = capture_current_exception();
  }
  if (auto agreed = agree_failure(comm, failure, operation)) {
    std::forward<OnFailure>(on_failure)(*agreed);
    rethrow(*agreed);
  }
}

// Rank 0 computes a value as bytes (a resolved path, a list of names, an encoded plan) and
// every rank returns it; a failure on rank 0 is thrown on every rank.
template <class F>
std::string agreed_from_rank0(const Comm& comm, std::string_view operation, F&& compute) {
  std::string value;
  run_agreed(comm, operation, [&] {
    if (comm.rank() == 0) value = std::forward<F>(compute)();
  });
  comm.bcast_bytes(value, 0);
  return value;
}

}  // namespace ckptio::detail
