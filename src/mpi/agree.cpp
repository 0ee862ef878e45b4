#include "mpi/agree.hpp"

#include <climits>
#include <new>

namespace ckptio::detail {

Failure capture_current_exception() {
  try {
    throw;
  } catch (const Error& e) {
    return Failure{e.kind(), e.what()};
  } catch (const std::bad_alloc&) {
    // Not an I/O error: sizes read from files are checked before memory is taken for them,
    // so this is the machine running out, reported as an unexpected error (tools: exit 1).
    return Failure{ErrorKind::Generic, "out of memory (an allocation failed)"};
  } catch (const std::exception& e) {
    return Failure{ErrorKind::Generic, e.what()};
  } catch (...) {
    return Failure{ErrorKind::Generic, "unknown exception"};
  }
}

std::string agreed_message(int rank, std::string_view operation, const std::string& message) {
  return "[ckptio] [rank " + std::to_string(rank) + "] " + std::string(operation) + ": " + message;
}

std::optional<Failure> agree_failure(const Comm& comm, const std::optional<Failure>& local,
                                     std::string_view operation) {
  const std::int64_t first_failing = comm.allreduce_min(local ? comm.rank() : INT_MAX);
  if (first_failing == INT_MAX) return std::nullopt;
  const int root = static_cast<int>(first_failing);
  std::string payload;
  if (comm.rank() == root) {
    // Messages that already carry the "[ckptio] [rank R]" prefix (an agreed failure being
    // re-agreed) keep it.
    const std::string& m = local->message;
    const std::string text = m.rfind("[ckptio]", 0) == 0 ? m : agreed_message(root, operation, m);
    payload = std::string(1, static_cast<char>(local->kind)) + text;
  }
  comm.bcast_bytes(payload, root);
  return Failure{static_cast<ErrorKind>(payload[0]), payload.substr(1)};
}

void rethrow(const Failure& failure) { throw_error(failure.kind, failure.message); }

void agree(const Comm& comm, const std::optional<Failure>& local, std::string_view operation) {
  if (auto f = agree_failure(comm, local, operation)) rethrow(*f);
}

}  // namespace ckptio::detail
