// ckptio tool: the exit codes every subcommand returns, on every rank.
#pragma once

#include <exception>
#include <string>

#include "ckptio/error.hpp"

namespace ckptio::tool {

inline constexpr int kExitSuccess = 0;
inline constexpr int kExitBadInput = 1;  // integrity or format error in the input
inline constexpr int kExitUsage = 2;     // bad command line or API misuse
inline constexpr int kExitIo = 3;        // I/O error, locked root, file not found

// The exit code for an error of this kind: integrity, format, mismatch and generic errors
// are bad input, usage errors usage, I/O and locked-root errors I/O.
int exit_code_for(ckptio::ErrorKind kind) noexcept;

// A failure turned into what the user sees: the exit code and the message for stderr.
struct Failure {
  int exit_code = kExitBadInput;
  std::string message;
};

// Maps an exception to its exit code and message: ckptio::Error by its kind, a
// std::filesystem::filesystem_error as I/O, any other std::exception as bad input.
Failure describe_failure(const std::exception& error);

}  // namespace ckptio::tool
