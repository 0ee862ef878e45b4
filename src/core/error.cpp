#include "ckptio/error.hpp"

namespace ckptio {

void throw_error(ErrorKind kind, const std::string& message) {
  switch (kind) {
    case ErrorKind::Usage:
      throw UsageError(message);
    case ErrorKind::Mismatch:
      throw MismatchError(message);
    case ErrorKind::Format:
      throw FormatError(message);
    case ErrorKind::Io:
      throw IoError(message);
    case ErrorKind::Integrity:
      throw IntegrityError(message);
    case ErrorKind::Locked:
      throw LockedError(message);
    case ErrorKind::Generic:
      break;
  }
  throw Error(message);
}

int exit_code_for(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::Usage:
      return 2;
    case ErrorKind::Io:
    case ErrorKind::Locked:
      return 3;
    case ErrorKind::Format:
    case ErrorKind::Integrity:
    case ErrorKind::Mismatch:
    case ErrorKind::Generic:
      return 1;
  }
  return 1;
}

}  // namespace ckptio
